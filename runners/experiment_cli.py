"""Run one experiment from a shell, for its author: no sandbox, no queue, no database.

    python -m runners.experiments.double_descent --ridge 0.5 --n-train 80
    python -m runners.experiments.embedding_dimension --dims 16 64 --figures /tmp/figs

Every field of the experiment's ``Params`` is an option (``n_train`` -> ``--n-train``;
list fields take several values); the values are checked by ``Params`` itself, as the
service checks them. Prints the metrics, the finding and whether the run supports the
claim; ``--figures DIR`` also writes the figures as PNG files.
"""

from __future__ import annotations

import argparse
import sys
import time
import typing
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from runners import registry


def parser_for(name: str) -> argparse.ArgumentParser:
    spec = registry.spec(name)
    parser = argparse.ArgumentParser(
        prog=f"python -m runners.experiments.{name}", description=spec.TITLE["en"]
    )
    for field, info in spec.Params.model_fields.items():
        annotation = info.annotation
        options: dict[str, typing.Any] = {"dest": field, "default": None}
        if typing.get_origin(annotation) is list:
            options["nargs"] = "+"
        elif typing.get_origin(annotation) is typing.Literal:
            options["choices"] = [str(c) for c in typing.get_args(annotation)]
        default = info.get_default(call_default_factory=True)
        help_text = f"{info.description or ''} (default: {default})"
        parser.add_argument(f"--{field.replace('_', '-')}", help=help_text, **options)
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--figures", type=Path, help="write the figures here as PNG files")
    return parser


def main(name: str, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` for experiment ``name``, run it in this process, print the result."""
    args = parser_for(name).parse_args(argv)
    spec = registry.spec(name)
    given = {k: v for k, v in vars(args).items() if k not in ("seed", "figures") and v is not None}
    try:
        params = spec.Params.model_validate(given)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            field = ".".join(str(p) for p in err["loc"])
            print(f"--{field.replace('_', '-')}: {err['msg']}", file=sys.stderr)
        return 2
    started = time.monotonic()
    result = registry.get(name).run(params, args.seed)
    print(f"{name} ({time.monotonic() - started:.1f} s, seed {args.seed})")
    width = max((len(k) for k in result.metrics), default=0)
    for key, value in result.metrics.items():
        print(
            f"  {key:<{width}}  {value:.6g}"
            if isinstance(value, float)
            else f"  {key:<{width}}  {value}"
        )
    print(result.finding["en"])
    print(f"supports the claim: {'yes' if result.supports_claim else 'no'}")
    if args.figures is not None:
        args.figures.mkdir(parents=True, exist_ok=True)
        langs = result.figure_langs or ("en",)
        per_lang = len(result.figures) // len(langs)
        for i, png in enumerate(result.figures):
            path = args.figures / f"{name}-{i % per_lang + 1}-{langs[i // per_lang]}.png"
            path.write_bytes(png)
            print(f"figure: {path}")
    return 0
