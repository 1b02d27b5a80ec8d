"""Running an experiment from a shell, as its author does (``python -m``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runners import experiment_cli, registry


def test_an_experiment_runs_from_a_shell_with_its_parameters(tmp_path: Path) -> None:
    argv = ["--n-train", "20", "--n-draws", "1", "--n-points", "5", "--figures", str(tmp_path)]
    res = subprocess.run(
        [sys.executable, "-m", "runners.experiments.double_descent", *argv],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert "peak_test_error" in res.stdout and "supports the claim:" in res.stdout
    assert list(tmp_path.glob("double_descent-*.png"))


def test_every_registered_experiment_has_a_shell_entry() -> None:
    for name in registry.names():
        source = (Path(registry.source_files(name)[-1])).read_text()
        assert f'main("{name}")' in source, name
        options = experiment_cli.parser_for(name).format_help()
        for field in registry.spec(name).Params.model_fields:
            assert f"--{field.replace('_', '-')}" in options


def test_a_value_out_of_bounds_is_refused_by_the_params_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert experiment_cli.main("double_descent", ["--ridge", "99"]) == 2
    assert "--ridge: Input should be less than or equal to 10" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # an unknown option, as argparse refuses it
        experiment_cli.main("double_descent", ["--no-such-option", "1"])
