"""Ask latency in-process (warm): median over repeated calls of the full ask pipeline.

.venv/bin/python -m bench.ask_latency [--repeat 20]
"""

from __future__ import annotations

import argparse
import time

from bench.common import peak_rss_mb, seeded_sqlite, summary_ms

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
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
