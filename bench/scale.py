"""Ask latency and memory for synthetic knowledge bases of 1k, 10k and 100k entries.

    .venv/bin/python -m bench.scale [--sizes 1000 10000 100000] [--no-snapshot]

Each size is built in a fresh process and measured in another (so the build does not
count in the measured process's memory). Synthetic entries get six index units each
(the question, one answer paragraph and the whole answer, in English and Japanese, as a
TA's alias-free entry has) with random terms, and vectors drawn to look like real ones:
each entry is centred on a blend of the multilingual-e5-small vectors of two real texts
of the evaluation set, its units spread around it with the covariance of those vectors
(cosine about 0.93 with the centre), the six sharing part of their draw. Isotropic noise
vectors, or one Gaussian, have no neighbourhoods as text does: on them no nearest-
neighbour graph finds the exact top-10 (measured recall 0.3-0.8); nor do centres on the
942 texts alone (a hundred entries on each, identical topics no knowledge base has).
The query side is the real pipeline (real model, real BM25, real database), in one
thread per encoder call as a web process runs (``EMBED_THREADS=1``).

The build writes the index snapshot (``kb snapshot``: database read, graph when large,
files) after inserting the rows; its time is part of ``build s`` and printed apart.
Prints, per size: build time, start-up to first answer (mapping the snapshot), a forced
reload, ask p50/p99 (in-process, warm), peak RSS, for a TA's edit the time until the
process answers from it and the CPU it spent catching up, and the recall at top-10 of
the graph against exact search (real questions' vectors), where there is a graph.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.common import ROOT, percentile

UNITS_PER_ENTRY = 6
SHARED = 0.7  # share of a unit's draw common to its entry (the rest its own)
QUESTIONS = [
    "Why was backpropagation controversial?",
    "Is online SGD better than minibatches?",
    "なぜアテンションのロジットを√dで割るのですか？",
    "バッチ正規化をVAEで使ってもいいですか？",
    "When is the final exam?",
    "What is double descent?",
]


def eval_texts() -> list[str]:
    """The evaluation set's questions: real text in both languages."""
    texts = []
    for path in sorted((ROOT / "bench" / "eval").glob("*.yaml")):
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=yaml.CSafeLoader) or {}
        texts += [q["q"] for q in raw.get("questions", []) if isinstance(q, dict) and "q" in q]
    return texts


def vector_model() -> tuple[np.ndarray, np.ndarray]:
    """(real e5 passage vectors of the evaluation texts, Cholesky factor of their
    covariance): synthetic entries are drawn around the real vectors."""
    from knowledge import embedders
    from knowledge.embedders import E5Small

    vectors = embedders.get(E5Small.name).encode(eval_texts())
    cov = np.cov(vectors, rowvar=False) + 1e-6 * np.eye(vectors.shape[1])
    return vectors, np.linalg.cholesky(cov)


def build(size: int, url: str, snapshots: Path | None) -> dict[str, float]:
    """Seed entries + ``size`` synthetic ones, inserted in bulk; then the snapshot."""
    from sqlalchemy import insert

    from knowledge import importer, index_sync, migrate
    from knowledge.ask import Retriever
    from knowledge.db import make_engine, make_sessionmaker
    from knowledge.embedders import E5Small, vector_name
    from knowledge.entry_store import bump_version
    from knowledge.tables import Course, Embedding, Entry, IndexUnit

    started = time.perf_counter()
    migrate.upgrade(url)
    engine = make_engine(url)
    factory = make_sessionmaker(engine)
    importer.import_path(factory, ROOT / "knowledge" / "content")
    centres, factor = vector_model()
    rng = np.random.default_rng(0)
    vocab = np.array([f"term{i}" for i in range(20_000)])
    kinds = ("question", "question", "passage", "passage", "answer", "answer")
    with factory() as session, session.begin():
        course_id = session.scalar(
            insert(Course).values(code="synthetic", title="synthetic").returning(Course.id)
        )
        conn = session.connection()
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
            # A topic between two real texts: a continuum, as many courses' entries are.
            mix = rng.random((n, 1))
            centre = mix * centres[rng.integers(0, len(centres), n)]
            centre += (1 - mix) * centres[rng.integers(0, len(centres), n)]
            centre = (centre / np.linalg.norm(centre, axis=1, keepdims=True))[:, None, :]
            shared = rng.standard_normal((n, 1, E5Small.dim))
            own = rng.standard_normal((n, UNITS_PER_ENTRY, E5Small.dim))
            draws = SHARED * shared + np.sqrt(1 - SHARED**2) * own
            vectors = (centre + draws @ factor.T).reshape(-1, E5Small.dim).astype("<f4")
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            words = rng.integers(0, len(vocab), size=(n * UNITS_PER_ENTRY, 40))
            units, embeddings = [], []
            for row, (entry_id, u) in enumerate(
                (e, u) for e in ids for u in range(UNITS_PER_ENTRY)
            ):
                h = f"s{entry_id}-{u}"
                kind = kinds[u]
                terms = " ".join(vocab[words[row, : 8 if kind == "question" else 40]])
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
                embeddings.append(
                    {
                        "model": vector_name(E5Small.name, kind),
                        "text_hash": h,
                        "dim": E5Small.dim,
                        "vector": vectors[row].tobytes(),
                    }
                )
            conn.execute(insert(IndexUnit.__table__), units)
            conn.execute(insert(Embedding.__table__), embeddings)
        bump_version(session)
    rows_s = time.perf_counter() - started
    snapshot_s = 0.0
    if snapshots is not None:
        started = time.perf_counter()
        retriever = Retriever(factory, options=options(snapshots))
        index_sync.build_snapshot(factory, retriever.models, retriever.options)
        snapshot_s = time.perf_counter() - started
    engine.dispose()
    return {"build_s": rows_s + snapshot_s, "rows_s": rows_s, "snapshot_s": snapshot_s}


def options(snapshots: Path | None) -> Any:  # noqa: ANN401
    from knowledge.index_sync import IndexOptions
    from knowledge.settings import settings

    s = settings()
    return IndexOptions(
        snapshot_dir=snapshots,
        snapshot_min_units=s.INDEX_SNAPSHOT_MIN_UNITS,
        ann_min_units=s.INDEX_ANN_MIN_UNITS,
        delta_max=s.INDEX_DELTA_MAX,
    )


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


def graph_recall(index: Any) -> tuple[float, float] | None:  # noqa: ANN401
    """Recall of the exact top-10 units for real questions: among the graph's 10 nearest,
    and among the units it hands the pipeline (``knowledge.index.ANN_UNITS``), which are
    scored exactly: the pipeline's top-10 after re-scoring."""
    from knowledge import embedders
    from knowledge.index import ANN_UNITS

    if not index.base.ann:
        return None
    model, graph = next(iter(index.base.ann.items()))
    dense = index.base.segment.dense[model]
    questions = eval_texts()[1::4][:200]  # not the texts the entries are centred on
    at_10 = at_candidates = 0
    for question in questions:
        query = embedders.encode_query(model, question)
        exact = np.zeros(len(dense.codes), dtype=np.float32)
        for lo in range(0, len(exact), 100_000):
            rows = np.asarray(dense.rows[lo : lo + 100_000], dtype=np.float32)
            exact[lo : lo + 100_000] = (rows @ query) * dense.scale[lo : lo + 100_000]
        top = set(np.argpartition(-exact, 10)[:10].tolist())
        at_10 += len(top & set(graph.search(query, 10).tolist()))
        at_candidates += len(top & set(graph.search(query, ANN_UNITS).tolist()))
    return at_10 / (10 * len(questions)), at_candidates / (10 * len(questions))


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux
    carries that over exec, so a child started by the building process would report
    the builder's peak."""
    with open("/proc/self/status", encoding="utf-8") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure(url: str, snapshots: Path | None, repeat: int) -> dict[str, Any]:
    from knowledge.ask import Retriever
    from knowledge.db import make_engine, make_sessionmaker

    started = time.perf_counter()
    retriever = Retriever(make_sessionmaker(make_engine(url)), options=options(snapshots))
    retriever.warm_up()
    retriever.ask(QUESTIONS[0], log=False)
    first_answer = time.perf_counter() - started
    source = retriever.index().base.source
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
    rss = peak_rss_mb()
    index = retriever.index()
    return {
        "entries": index.size,
        "source": source,
        "graph": index.uses_ann,
        "first_answer_s": first_answer,
        "index_reload_s": reload_s,
        "p50_ms": float(np.median(timings)),
        "p99_ms": percentile(timings, 99),
        "edit_visible_s": visible_s,
        "edit_cpu_s": edit_cpu_s,
        "peak_rss_mb": rss,
        "recall": graph_recall(index),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument(
        "--no-snapshot", action="store_true", help="measure starts that read the database"
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # child: build, then measure
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)  # grandchild: url, dir
    args = parser.parse_args()
    if args.measure:
        url, directory = args.measure
        snapshots = Path(directory) if directory else None
        print(json.dumps(measure(url, snapshots, args.repeat)))
        return
    if args.one is not None:
        work = Path(tempfile.mkdtemp(prefix="ra-scale-"))
        url = f"sqlite:///{work}/scale.db"
        snapshots = None if args.no_snapshot else work / "snapshots"
        built = build(args.one, url, snapshots)
        out = _child(["--measure", url, str(snapshots or "")], args.repeat)
        print(json.dumps({**built, **out}))
        return
    print(
        f"{'entries':>8} {'build s':>8} {'(snapshot s)':>12} {'first answer s':>15} "
        f"{'reload s':>9} {'p50 ms':>8} {'p99 ms':>8} {'peak RSS MB':>12} "
        f"{'edit visible s':>15} {'edit CPU s':>11} {'recall@10':>10} {'rescored':>9}"
        "  index",
        flush=True,
    )
    for size in args.sizes:
        extra = ["--no-snapshot"] if args.no_snapshot else []
        m = _child(["--one", str(size), *extra], args.repeat)
        recall = m["recall"] or ("-", "-")
        at_10, in_candidates = (f"{r:.4f}" if isinstance(r, float) else r for r in recall)
        print(
            f"{m['entries']:>8} {m['build_s']:>8.1f} {m['snapshot_s']:>12.1f} "
            f"{m['first_answer_s']:>15.2f} {m['index_reload_s']:>9.2f} {m['p50_ms']:>8.1f} "
            f"{m['p99_ms']:>8.1f} {m['peak_rss_mb']:>12.0f} {m['edit_visible_s']:>15.2f} "
            f"{m['edit_cpu_s']:>11.3f} {at_10:>10} {in_candidates:>9}  "
            f"{m['source']}{', graph' if m['graph'] else ''}",
            flush=True,
        )


def _child(args: list[str], repeat: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", *args, "--repeat", str(repeat)],
        capture_output=True,
        text=True,
        env={**os.environ, "EMBED_THREADS": os.environ.get("EMBED_THREADS", "1")},
    )
    if done.returncode:
        sys.exit(f"bench.scale {' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
