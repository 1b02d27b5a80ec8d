"""Ask latency in-process (warm): median over repeated calls of the full ask pipeline,
then where an ask's CPU goes: the query encoder alone, the rest of retrieval, the log row.

.venv/bin/python -m bench.ask_latency [--repeat 20]

It runs as a web worker does (``service/gunicorn_conf.py``): one inference thread unless
EMBED_THREADS says otherwise, so CPU time is not inflated by idle threads spinning.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from bench.common import peak_rss_mb, seeded_sqlite, summary_ms

if TYPE_CHECKING:
    from knowledge.ask import Retriever

QUESTIONS = [
    "Why was backpropagation controversial?",
    "Is online SGD better than minibatches?",
    "なぜアテンションのロジットを√dで割るのですか？",
    "バッチ正規化をVAEで使ってもいいですか？",
    "When is the final exam?",
    "What is double descent?",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", os.environ.setdefault("EMBED_THREADS", "1"))

    from knowledge.ask import Retriever
    from knowledge.db import make_engine, make_sessionmaker

    url = seeded_sqlite()
    retriever = Retriever(make_sessionmaker(make_engine(url)))
    started = time.perf_counter()
    retriever.warm_up()
    print(f"warm-up (index + models): {time.perf_counter() - started:.2f} s")

    for log in (False, True):
        timings = []
        for _ in range(args.repeat):
            for q in QUESTIONS:
                t = time.perf_counter()
                retriever.ask(q, log=log)
                timings.append(time.perf_counter() - t)
        label = "ask + ask-log write" if log else "ask (no logging)   "
        print(f"{label}: {summary_ms(timings)}")
    print_cpu_split(retriever, args.repeat)
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


def cpu_ms(call: Callable[[str], object], repeat: int) -> float:
    """Mean CPU milliseconds (this process, all threads) of ``call`` over the questions."""
    started = time.process_time()
    for _ in range(repeat):
        for q in QUESTIONS:
            call(q)
    return (time.process_time() - started) * 1000 / (repeat * len(QUESTIONS))


def print_cpu_split(retriever: Retriever, repeat: int) -> None:
    """The same questions timed three ways, so the encoder's share is measured, not guessed."""
    from knowledge import embedders

    model = retriever.model.token_model or retriever.models[0]
    encode = (
        (lambda q: embedders.encode_query_tokens(model, q))
        if retriever.model.uses_tokens
        else (lambda q: embedders.encode_query(model, q))
    )
    encoder = cpu_ms(encode, repeat)
    bare = cpu_ms(lambda q: retriever.ask(q, log=False), repeat)
    logged = cpu_ms(lambda q: retriever.ask(q, log=True), repeat)
    print(
        f"CPU per ask: {logged:.2f} ms = query encoder {encoder:.2f} ms "
        f"({encoder / logged:.0%}) + rest of retrieval {bare - encoder:.2f} ms "
        f"+ ask-log write {logged - bare:.2f} ms"
    )


if __name__ == "__main__":
    main()
