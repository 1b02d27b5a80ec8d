"""Readable line diffs between two versions of an entry (revision history, stale saves)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Any

from knowledge.schema import LANGS


@dataclass(frozen=True)
class DiffLine:
    kind: str  # add, del, hunk, meta or same
    text: str


def entry_lines(snapshot: dict[str, Any] | None) -> list[str]:
    """An entry snapshot (EntryData.canonical()) as labelled lines, fields in a fixed order."""
    if not snapshot:
        return []
    lines: list[str] = []
    for lang in LANGS:
        if lang in snapshot.get("question", {}):
            lines.append(f"question.{lang}: {snapshot['question'][lang]}")
    for lang in LANGS:
        for alias in snapshot.get("aliases", {}).get(lang, []):
            lines.append(f"alias.{lang}: {alias}")
    if snapshot.get("tags"):
        lines.append("tags: " + ", ".join(snapshot["tags"]))
    runner = snapshot.get("runner")
    if runner:
        params = json.dumps(runner.get("params", {}), sort_keys=True, ensure_ascii=False)
        lines.append(f"experiment: {runner['name']} {params}")
    for c in snapshot.get("citations", []):
        link = c.get("url") or c.get("doi") or ""
        authors = "; ".join(c.get("authors", []))
        lines.append(
            f"citation [{c['key']}]: {c['title']} / {authors} / {c['year']} / {c['venue']} / {link}"
        )
    for lang in LANGS:
        if lang in snapshot.get("answer", {}):
            lines.append(f"answer.{lang}:")
            lines.extend("  " + line for line in snapshot["answer"][lang].splitlines())
    return lines


def diff(
    old: dict[str, Any] | None, new: dict[str, Any] | None, old_label: str, new_label: str
) -> list[DiffLine]:
    """A unified diff of two snapshots with two lines of context; empty when equal."""
    out: list[DiffLine] = []
    for line in difflib.unified_diff(
        entry_lines(old), entry_lines(new), old_label, new_label, n=2, lineterm=""
    ):
        if line.startswith(("---", "+++")):
            out.append(DiffLine("meta", line))
        elif line.startswith("@@"):
            out.append(DiffLine("hunk", line))
        elif line.startswith("+"):
            out.append(DiffLine("add", line))
        elif line.startswith("-"):
            out.append(DiffLine("del", line))
        else:
            out.append(DiffLine("same", line))
    return out
