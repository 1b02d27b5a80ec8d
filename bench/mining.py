"""Forum mining, measured: grouping quality on planted duplicate groups (known truth)
and the time and memory of mining a 40,000-post export.

    .venv/bin/python -m bench.mining quality [--split heldout|tuning] [--format jsonl]
    .venv/bin/python -m bench.mining scale [--posts 40000] [--format slack]

``quality`` writes an export of ``bench/eval/mining_groups.yaml`` (one split: every
question a thread of its own, in shuffled time order, the first of each group answered
by staff, chatter and announcements among them, personal data planted in the posts),
mines it, and reports group precision and recall over pairs of threads, how many true
groups came out whole, how many candidates a TA could accept unchanged (exactly one true
group, a staff answer, no planted personal data), and whether any planted value leaked.

``scale`` writes a Slack or jsonl export of that many posts (a question and three replies
per thread: the repeated questions of the evaluation set with everyday variations among
many one-off questions), mines it and prints wall time, CPU time and peak RSS per stage.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import resource
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from bench.common import ROOT, peak_rss_mb, seeded_sqlite

EVAL = ROOT / "bench" / "eval" / "mining_groups.yaml"
START = datetime(2020, 9, 1, 9, 0, tzinfo=UTC)
EMAILS = ("jdoe42@nyu.edu", "hanako.suzuki@example.ac.jp")
PHONES = ("+1 646-555-0132", "080-9876-5432")
STUDENT_IDS = ("N87654321",)
PLANTED = (*EMAILS, *PHONES, *STUDENT_IDS)
PII_SUFFIXES = (
    " You can email me at {email} if that is easier.",
    " 連絡先: {email}",
    " My number is {phone} if a call is easier.",
    " 学籍番号 {sid} です。",
    "\n\nThanks,\nJane Doe",
    "\n\nよろしくお願いします。\n鈴木",
)
CHATTER = (
    "Thanks, that helps!",
    "ありがとうございます、理解できました。",
    "Same question here.",
    "+1, I was wondering too",
)
ANNOUNCEMENTS = (
    "Reminder: homework 2 is due on Friday at midnight.",
    "課題3の締め切りを1週間延長しました。",
    "Office hours move to room 402 this week.",
)


def load_eval(split: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    data = yaml.safe_load(EVAL.read_text(encoding="utf-8"))
    groups = [g for g in data["groups"] if g["split"] == split]
    singles = [s for s in data["singletons"] if s["split"] == split]
    return groups, singles


def _row(
    thread: str, n: int, author: str, role: str, at: datetime, body: str, **extra: Any
) -> dict[str, Any]:
    return {
        "thread_id": thread,
        "post_id": f"{thread}-{n}",
        "parent_id": "" if n == 0 else f"{thread}-0",
        "author": author,
        "author_role": role,
        "created_at": at.isoformat(),
        "body": body,
        **extra,
    }


def quality_export(path: Path, split: str, seed: int = 5) -> dict[str, str]:
    """A jsonl export of the split; returns thread id -> true group (singletons: own id)."""
    rng = random.Random(seed)
    groups, singles = load_eval(split)
    questions = [(g["id"], q, g) for g in groups for q in g["questions"]]
    questions += [(s["id"], s, None) for s in singles]
    rng.shuffle(questions)
    truth: dict[str, str] = {}
    answered: set[str] = set()
    rows: list[dict[str, Any]] = []
    at = START
    for n, (label, q, group) in enumerate(questions):
        at += timedelta(hours=rng.randint(1, 9))
        thread = f"q{n:04d}"
        truth[thread] = label
        body = q["body"]
        if rng.random() < 0.3:  # planted personal data
            suffix = rng.choice(PII_SUFFIXES)
            body += suffix.format(
                email=rng.choice(EMAILS), phone=rng.choice(PHONES), sid=STUDENT_IDS[0]
            )
        rows.append(
            _row(
                thread,
                0,
                f"student{n % 37}",
                "student",
                at,
                body,
                title=q.get("title") or "",
                votes=rng.randint(0, 4),
            )
        )
        if group is not None and label not in answered:
            answered.add(label)
            rows.append(
                _row(thread, 1, "ta-kim", "ta", at + timedelta(hours=2), group["answer"]["text"])
            )
        if rng.random() < 0.4:
            rows.append(
                _row(
                    thread,
                    2,
                    f"student{(n + 5) % 37}",
                    "student",
                    at + timedelta(hours=3),
                    rng.choice(CHATTER),
                )
            )
    for k, text in enumerate(ANNOUNCEMENTS):
        rows.append(_row(f"a{k}", 0, "prof", "instructor", START + timedelta(days=k * 9), text))
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return truth


def _pairs(labels: dict[str, str]) -> set[tuple[str, str]]:
    by: dict[str, list[str]] = {}
    for thread, label in labels.items():
        by.setdefault(label, []).append(thread)
    return {p for members in by.values() for p in itertools.combinations(sorted(members), 2)}


def quality(split: str) -> None:
    from knowledge.tables import Candidate, MinedThread
    from service import create_app

    work = Path(tempfile.mkdtemp(prefix="ra-bench-mining-"))
    truth = quality_export(work / "export.jsonl", split)
    app = create_app({"DATABASE_URL": seeded_sqlite(), "RATELIMIT_ENABLED": False})
    core = app.extensions["core"]
    from knowledge.forum import mining

    core.retriever.warm_up()
    stages: dict[str, float] = {}
    mark = [time.monotonic(), "reading"]

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage != mark[1]:
            stages[str(mark[1])] = time.monotonic() - float(mark[0])
            mark[0], mark[1] = time.monotonic(), stage

    started = time.monotonic()
    summary = mining.mine(
        core.sessions,
        work / "export.jsonl",
        "jsonl",
        "nyu-dl-f20",
        asker=core.retriever,
        progress=progress,
    )
    elapsed = time.monotonic() - started
    stages[str(mark[1])] = time.monotonic() - float(mark[0])
    with core.sessions() as session:
        placed = {t.thread_id: t.candidate_id for t in session.query(MinedThread) if t.candidate_id}
        candidates = {c.id: c for c in session.query(Candidate)}
        got = {thread: str(cid) for thread, cid in placed.items()}
        true_pairs = _pairs({t: truth[t] for t in got})
        found_pairs = _pairs(got)
        tp = len(true_pairs & found_pairs)
        precision = tp / max(len(found_pairs), 1)
        recall = tp / max(len(true_pairs), 1)
        members: dict[int, set[str]] = {}
        for thread, cid in placed.items():
            members.setdefault(cid, set()).add(truth[thread])
        true_groups: dict[str, set[int]] = {}
        for thread, cid in placed.items():
            true_groups.setdefault(truth[thread], set()).add(cid)
        multi = {
            label
            for label, cids in true_groups.items()
            if sum(1 for t in truth.values() if t == label) > 1
        }
        whole = sum(
            1
            for label in multi
            if len(true_groups[label]) == 1 and members[next(iter(true_groups[label]))] == {label}
        )
        texts = {
            cid: json.dumps([c.question, c.answer, c.phrasings, c.sources], ensure_ascii=False)
            for cid, c in candidates.items()
        }
        leaks = sorted({p for text in texts.values() for p in PLANTED if p in text})
        unchanged = sum(
            1
            for cid, c in candidates.items()
            if c.staff_answered
            and c.answer
            and len(members.get(cid, set())) == 1
            and not any(p in texts[cid] for p in PLANTED)
        )
        answered = sum(1 for c in candidates.values() if c.staff_answered)
        pure = sum(1 for cid in candidates if len(members.get(cid, set())) == 1)
    groups, singles = load_eval(split)
    print(
        f"split {split}: {len(groups)} planted groups "
        f"({sum(len(g['questions']) for g in groups)} questions), {len(singles)} one-off "
        f"questions; mined in {elapsed:.1f} s"
    )
    print(
        f"threads {summary.threads}, questions {summary.questions}, "
        f"not kept {dict(summary.skipped)}"
    )
    print(f"candidates {len(candidates)} (pure: one true group or one-off: {pure})")
    print(
        f"pairwise precision {precision:.3f}  recall {recall:.3f}  "
        f"F1 {2 * precision * recall / max(precision + recall, 1e-9):.3f}"
    )
    print(
        "planted groups that came out whole (all their threads, nothing else): "
        f"{whole} of {len(multi)}"
    )
    print(
        f"candidates with a staff answer: {answered}; a TA could accept unchanged "
        f"(one true group, staff answer, no personal data): {unchanged}"
    )
    print(f"already answered by an existing entry: {summary.matched_existing}")
    suggested = sum(1 for c in candidates.values() if c.suggested_runner)
    listed = sum(1 for c in candidates.values() if c.staff_answered or c.asked_count >= 2)
    print(
        f"with a suggested experiment: {suggested}; matching "
        f"{stages.get('matching', 0.0):.1f} s for {listed} listed candidates"
    )
    print(
        f"personal data removed: {summary.removed.as_dict()}; "
        f"planted values in candidates: {leaks or 'none'}"
    )


# -- scale ---------------------------------------------------------------------------------

STAFF_REPLY = (
    "Good question: see the lecture notes on this, and try it with a smaller learning rate first."
)
VARIATIONS = (
    "",
    "Quick question: ",
    "HW{hw}: ",
    "Sorry if this was asked before, ",
    "質問です。",
    "課題{hw}について: ",
)


WORDS = (
    "dropout", "batch", "norm", "weight", "decay", "learning", "rate", "Adam", "momentum",
    "attention", "head", "KL", "prior", "pooling", "stride", "padding", "kernel", "residual",
    "skip", "label", "smoothing", "clipping", "softmax", "temperature", "augmentation",
    "early", "stopping", "layer", "embedding", "hidden", "teacher", "forcing", "beam", "search",
    "discriminator", "generator", "contrastive", "encoder", "decoder", "vocabulary", "GRU",
    "LSTM", "gate", "replay", "critic", "codebook", "spectral", "warmup", "cosine", "schedule",
    "precision", "seed", "tokenizer", "gradient", "Hessian", "curvature", "margin", "hinge",
    "triplet", "anchor", "ViT", "patch", "mask", "causal", "positional", "sinusoid", "graph",
    "adjacency", "diffusion", "noise", "score", "energy", "flow", "Jacobian", "latent",
    "posterior", "variance", "bias", "initialization", "Xavier", "ReLU", "GELU", "sigmoid",
    "checkpoint", "optimizer", "scheduler", "loader", "shuffle", "epoch", "overfitting",
)  # fmt: skip
OPENINGS = ("Why does", "How do", "What is the role of", "When should I use", "Is it OK to mix")
OPENINGS_JA = ("なぜ", "どうやって", "どのような時に")


def _scale_question(rng: random.Random, pool: list[str], n: int) -> str:
    """A repeated question of the evaluation set (30 %), else a one-off: random course
    terms after a question opening, so that one-offs rarely look alike (the pessimistic
    case for mining: every one a candidate of its own)."""
    roll = rng.random()
    if roll < 0.3:
        text = rng.choice(pool)
    elif roll < 0.85:
        terms = " ".join(rng.sample(WORDS, rng.randint(4, 7)))
        text = f"{rng.choice(OPENINGS)} {terms} in lab {n % 13}?"
    else:
        terms = "と".join(rng.sample(WORDS, 3))
        text = f"{rng.choice(OPENINGS_JA)}{terms}を使うのですか？（演習{n % 11}）"
    return rng.choice(VARIATIONS).format(hw=n % 7 + 1) + text


def scale_export(directory: Path, posts: int, fmt: str, seed: int = 3) -> Path:
    rng = random.Random(seed)
    groups, singles = load_eval("tuning")
    pool = [q["body"] for g in groups for q in g["questions"]] + [s["body"] for s in singles]
    threads = posts // 4
    if fmt == "jsonl":
        path = directory / "big.jsonl"
        with path.open("w", encoding="utf-8") as out:
            for n in range(threads):
                at = START + timedelta(minutes=7 * n)
                thread = f"t{n}"
                out.write(
                    json.dumps(
                        _row(
                            thread, 0, f"s{n % 300}", "student", at, _scale_question(rng, pool, n)
                        ),
                        ensure_ascii=False,
                    )
                    + "\n"
                )
                out.write(
                    json.dumps(
                        _row(
                            thread,
                            1,
                            "ta-kim",
                            "ta",
                            at + timedelta(minutes=30),
                            STAFF_REPLY,
                        )
                    )
                    + "\n"
                )
                for k in (2, 3):
                    out.write(
                        json.dumps(
                            _row(
                                thread,
                                k,
                                f"s{(n + k) % 300}",
                                "student",
                                at + timedelta(minutes=40 + k),
                                rng.choice(CHATTER),
                            ),
                            ensure_ascii=False,
                        )
                        + "\n"
                    )
        return path
    root = directory / "slack-export"
    (root / "qa").mkdir(parents=True)
    users = [{"id": f"U{k}", "name": f"student{k}"} for k in range(300)]
    users.append({"id": "UTA", "name": "ta-kim", "is_admin": True})
    (root / "users.json").write_text(json.dumps(users))
    (root / "channels.json").write_text(json.dumps([{"id": "C1", "name": "qa"}]))
    days: dict[str, list[dict[str, Any]]] = {}
    for n in range(threads):
        at = START + timedelta(minutes=7 * n)
        ts = f"{at.timestamp():.6f}"
        replies = [
            (
                "UTA",
                30,
                STAFF_REPLY,
            ),
            (f"U{(n + 2) % 300}", 42, rng.choice(CHATTER)),
            (f"U{(n + 3) % 300}", 43, rng.choice(CHATTER)),
        ]
        day = at.date().isoformat()
        days.setdefault(day, []).append(
            {
                "type": "message",
                "user": f"U{n % 300}",
                "ts": ts,
                "thread_ts": ts,
                "reply_count": len(replies),
                "text": _scale_question(rng, pool, n),
            }
        )
        for user, minutes, text in replies:
            moment = at + timedelta(minutes=minutes)
            days.setdefault(moment.date().isoformat(), []).append(
                {
                    "type": "message",
                    "user": user,
                    "ts": f"{moment.timestamp():.6f}",
                    "thread_ts": ts,
                    "text": text,
                }
            )
    for day, messages in days.items():
        (root / "qa" / f"{day}.json").write_text(json.dumps(messages, ensure_ascii=False))
    return root


def scale(posts: int, fmt: str) -> None:
    from knowledge.forum import mining
    from service import create_app

    work = Path(tempfile.mkdtemp(prefix="ra-bench-mining-"))
    t = time.monotonic()
    path = scale_export(work, posts, fmt)
    print(f"generated a {fmt} export of {posts} posts in {time.monotonic() - t:.1f} s")
    app = create_app({"DATABASE_URL": seeded_sqlite(), "RATELIMIT_ENABLED": False})
    core = app.extensions["core"]
    core.retriever.warm_up()
    stages: dict[str, float] = {}
    last = [time.monotonic(), "start"]

    def progress(stage: str, done: int, total: int | None) -> None:
        if stage != last[1]:
            now = time.monotonic()
            stages[str(last[1])] = now - float(last[0])
            last[0], last[1] = now, stage

    rss_before = peak_rss_mb()
    cpu = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    summary = mining.mine(
        core.sessions, path, fmt, "nyu-dl-f20", asker=core.retriever, progress=progress
    )
    elapsed = time.monotonic() - started
    stages[str(last[1])] = time.monotonic() - float(last[0])
    after = resource.getrusage(resource.RUSAGE_SELF)
    used = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    print(
        f"mined {summary.posts} posts, {summary.threads} threads, {summary.questions} "
        f"questions into {summary.new_candidates} candidates"
    )
    print(
        f"wall {elapsed:.1f} s, CPU {used:.1f} s; peak RSS {peak_rss_mb():.0f} MB "
        f"(before mining {rss_before:.0f} MB)"
    )
    print("stages: " + ", ".join(f"{k} {v:.1f} s" for k, v in stages.items() if k != "start"))
    print(f"summary: {json.dumps(summary.as_dict(), ensure_ascii=False)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    q = sub.add_parser("quality")
    q.add_argument("--split", default="heldout", choices=("heldout", "tuning"))
    s = sub.add_parser("scale")
    s.add_argument("--posts", type=int, default=40_000)
    s.add_argument("--format", default="slack", choices=("slack", "jsonl"))
    args = parser.parse_args()
    if args.what == "quality":
        quality(args.split)
    else:
        scale(args.posts, args.format)


if __name__ == "__main__":
    main()
