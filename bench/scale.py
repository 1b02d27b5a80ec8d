"""Ask latency and memory for synthetic knowledge bases of 1k, 10k and 100k entries.

    .venv/bin/python -m bench.scale [--sizes 1000 10000 100000]

Each size runs in a fresh process. Synthetic entries get six index units each (the
question, one answer paragraph and the whole answer, in English and Japanese, as a TA's
alias-free entry has) with random unit vectors and random terms: the vectors are
synthetic, the query side is the real pipeline (real model, real BM25, real database).
Prints index load time, start-up to first answer, ask p50/p99 (in-process, warm), peak
RSS, and for a TA's edit the time until the process answers from it and the CPU it spent
catching up.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench.common import percentile

UNITS_PER_ENTRY = 6
QUESTIONS = [
    "Why was backpropagation controversial?",
    "Is online SGD better than minibatches?",
    "なぜアテンションのロジットを√dで割るのですか？",
    "バッチ正規化をVAEで使ってもいいですか？",
    "When is the final exam?",
    "What is double descent?",
]


def build(size: int, url: str) -> None:
    """Seed entries + ``size`` synthetic ones, inserted in bulk."""
    from sqlalchemy import insert

    from bench.common import ROOT
    from knowledge import importer, migrate
    from knowledge.db import make_engine, make_sessionmaker
    from knowledge.embedders import E5Small, vector_name
    from knowledge.entry_store import bump_version
    from knowledge.tables import Course, Embedding, Entry, IndexUnit

    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    importer.import_path(factory, ROOT / "knowledge" / "content")
    rng = np.random.default_rng(0)
    vocab = [f"term{i}" for i in range(20_000)]
    with factory() as session, session.begin():
        course_id = session.scalar(
            insert(Course).values(code="synthetic", title="synthetic").returning(Course.id)
        )
        for start in range(0, size, 5000):
            n = min(5000, size - start)
            entries = [
                {
                    "course_id": course_id,
                    "slug": f"synthetic-{start + i}",
                    "question": {
                        "en": f"Synthetic question {start + i}?",
                        "ja": f"合成の質問 {start + i}？",
                    },
                    "aliases": {},
                    "answer": {"en": "Synthetic.", "ja": "合成。"},
                    "tags": [],
                    "version": 1,
                    "content_hash": f"{start + i:064d}",
                }
                for i in range(n)
            ]
            ids = session.scalars(insert(Entry).returning(Entry.id), entries).all()
            units, embeddings = [], []
            for entry_id in ids:
                for u in range(UNITS_PER_ENTRY):
                    h = f"s{entry_id}-{u}"
                    kind = ("question", "passage", "answer")[u // 2]
                    terms = " ".join(rng.choice(vocab, size=8 if kind == "question" else 40))
                    units.append(
                        {
                            "entry_id": entry_id,
                            "kind": kind,
                            "lang": "en" if u % 2 else "ja",
                            "text": terms,
                            "text_hash": h,
                            "terms": terms,
                        }
                    )
                    v = rng.standard_normal(E5Small.dim).astype("<f4")
                    v /= np.linalg.norm(v)
                    embeddings.append(
                        {
                            "model": vector_name(E5Small.name, kind),
                            "text_hash": h,
                            "dim": E5Small.dim,
                            "vector": v.tobytes(),
                        }
                    )
            session.execute(insert(IndexUnit), units)
            session.execute(insert(Embedding), embeddings)
        bump_version(session)
    engine.dispose()


def edit_visible(retriever: Any) -> tuple[float, float]:
    """A TA's edit (one alias added to a seed entry, through the editing core): seconds
    from its commit until this process answers from the new version, and the CPU seconds
    this process spent catching up (the web processes' part of an edit)."""
    from knowledge import editing
    from knowledge.entry_store import entry_data

    def add_alias(entry: Any) -> Any:
        data = entry_data(entry)
        english = [*data.aliases.get("en", []), f"scale bench alias {time.time_ns()}"]
        return data.model_copy(update={"aliases": {**data.aliases, "en": english}})

    before = retriever.index().version
    editing.update(retriever.factory, "double-descent", add_alias, author="bench", expected=[])
    committed = time.perf_counter()
    cpu = 0.0
    while True:
        started = time.process_time()
        index = retriever.index()
        cpu += time.process_time() - started
        if index.version != before:
            return time.perf_counter() - committed, cpu
        time.sleep(0.005)


def measure(url: str, repeat: int) -> dict[str, float]:
    import resource

    from knowledge.ask import Retriever
    from knowledge.db import make_engine, make_sessionmaker

    started = time.perf_counter()
    retriever = Retriever(make_sessionmaker(make_engine(url)))
    retriever.warm_up()
    retriever.ask(QUESTIONS[0], log=False)
    first_answer = time.perf_counter() - started
    started = time.perf_counter()
    retriever.refresh(force=True)
    reload_s = time.perf_counter() - started
    timings = []
    for _ in range(repeat):
        for q in QUESTIONS:
            t = time.perf_counter()
            retriever.ask(q, log=False)
            timings.append((time.perf_counter() - t) * 1000)
    visible_s, edit_cpu_s = edit_visible(retriever)
    return {
        "entries": len(retriever.index().entries),
        "first_answer_s": first_answer,
        "index_reload_s": reload_s,
        "p50_ms": float(np.median(timings)),
        "p99_ms": percentile(timings, 99),
        "edit_visible_s": visible_s,
        "edit_cpu_s": edit_cpu_s,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child mode
    args = parser.parse_args()
    if args.one is not None:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='ra-scale-')}/scale.db"
        t = time.perf_counter()
        build(args.one, url)
        built = time.perf_counter() - t
        print(json.dumps({"build_s": built, **measure(url, args.repeat)}))
        return
    print(
        f"{'entries':>8} {'build s':>8} {'first answer s':>15} {'reload s':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'peak RSS MB':>12} {'edit visible s':>15} "
        f"{'edit CPU s':>11}"
    )
    for size in args.sizes:
        out = (
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.scale",
                    "--one",
                    str(size),
                    "--repeat",
                    str(args.repeat),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        m = json.loads(out)
        print(
            f"{m['entries']:>8} {m['build_s']:>8.1f} {m['first_answer_s']:>15.2f} "
            f"{m['index_reload_s']:>9.2f} {m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} "
            f"{m['peak_rss_mb']:>12.0f} {m['edit_visible_s']:>15.2f} {m['edit_cpu_s']:>11.2f}"
        )


if __name__ == "__main__":
    main()
