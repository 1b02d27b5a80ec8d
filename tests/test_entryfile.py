"""Entry file parsing: errors name the file, line and field; dump() round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest

from knowledge import entryfile
from knowledge.entryfile import EntryFileError

GOOD = """---
slug: tiny
course: demo
question:
  en: "What is a tiny entry?"
aliases:
  en: ["small entry"]
tags: [demo]
citations:
  - key: doe2020
    title: "A title"
    authors: ["Jane Doe"]
    year: 2020
    venue: "Nowhere"
    url: "https://example.org/paper"
---
<!-- en -->
It is small [@doe2020].
"""


def test_good_file_parses_and_round_trips() -> None:
    entry = entryfile.parse(GOOD, "tiny.md")
    assert entry.question == {"en": "What is a tiny entry?"}
    assert entryfile.parse(entryfile.dump(entry)) == entry


@pytest.mark.parametrize(
    ("text", "line", "field"),
    [
        (GOOD.replace("year: 2020", "year: soon"), 13, "citations.0.year"),
        (GOOD.replace("slug: tiny", "slug: Not A Slug"), 2, "slug"),
        (GOOD.replace("[@doe2020]", "[@ghost]"), 18, "answer.en"),
        (GOOD.replace('    url: "https://example.org/paper"\n', ""), 10, "citations.0"),
        (GOOD.replace("question:\n  en:", "question:\n  fr:"), 5, "question.fr"),
        (GOOD.replace("tags: [demo]", "tags: [demo"), 9, "front matter"),
        (GOOD.replace("<!-- en -->\n", ""), 17, "answer"),
        (GOOD.replace("---\nslug", "slug", 1), 1, "front matter"),
    ],
)
def test_errors_name_line_and_field(text: str, line: int, field: str) -> None:
    with pytest.raises(EntryFileError) as info:
        entryfile.parse(text, "bad.md")
    err = info.value
    assert (err.path, err.field) == ("bad.md", field), str(err)
    assert err.line == line, str(err)
    assert str(err).startswith(f"bad.md:{line}: {field}: ")


def test_non_utf8_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "latin1.md"
    path.write_bytes(GOOD.replace("tiny entry", "tiny entr\xe9").encode("latin-1"))
    with pytest.raises(EntryFileError, match="UTF-8"):
        entryfile.load(path)
