"""Every seed entry is complete, bilingual, and cites what it lists (and lists what it cites)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from knowledge import entryfile
from knowledge.schema import cited_keys
from runners import registry

CONTENT = Path(__file__).resolve().parent.parent / "knowledge" / "content" / "nyu-dl-f20"
FACTS = Path(__file__).resolve().parents[2] / "shared" / "KNOWLEDGE_FACTS.md"
SLUGS = [
    "backprop-controversy",
    "online-vs-minibatch-sgd",
    "batchnorm-vs-dataset-normalization",
    "batchnorm-in-vae",
    "embedding-dimension",
    "attention-sqrt-d-scaling",
    "double-descent",
    "agi",
]


def test_exactly_the_seed_slugs() -> None:
    assert sorted(p.stem for p in CONTENT.glob("*.md")) == sorted(SLUGS)


@pytest.mark.parametrize("slug", SLUGS)
def test_entry_is_complete(slug: str) -> None:
    entry = entryfile.load(CONTENT / f"{slug}.md")
    assert entry.slug == slug
    assert entry.course == "nyu-dl-f20"
    assert set(entry.question) == {"en", "ja"} == set(entry.answer)
    for lang in ("en", "ja"):
        assert len(entry.aliases.get(lang, [])) >= 3, f"{lang} aliases"
    words = len(re.sub(r"\[@[^\]]*\]", "", entry.answer["en"]).split())
    assert 150 <= words <= 400, f"English answer has {words} words"
    ja_chars = len(re.sub(r"\s|\[@[^\]]*\]", "", entry.answer["ja"]))
    assert 300 <= ja_chars <= 1200, f"Japanese answer has {ja_chars} characters"
    keys = {c.key for c in entry.citations}
    assert entry.citations, "every seed entry cites its sources"
    for lang in ("en", "ja"):
        used = set(cited_keys(entry.answer[lang]))
        assert used <= keys, f"{lang} cites unknown {used - keys}"
        assert used == keys, f"{lang} never cites {keys - used}"
    for c in entry.citations:
        assert c.title and c.authors and c.year and c.venue and (c.url or c.doi)
    if slug == "agi":
        assert entry.runner is None
        assert "opinion" in entry.answer["en"][:400].lower()
        assert "意見" in entry.answer["ja"][:300]
    else:
        assert entry.runner is not None and entry.runner.name in registry.names()


@pytest.mark.skipif(not FACTS.exists(), reason="shared/KNOWLEDGE_FACTS.md is not beside the repo")
@pytest.mark.parametrize("slug", SLUGS)
def test_citations_match_the_facts_sheet(slug: str) -> None:
    facts = FACTS.read_text(encoding="utf-8")
    entry = entryfile.load(CONTENT / f"{slug}.md")
    for c in entry.citations:
        ids = re.findall(r"arxiv\.org/abs/([\d.]+)", c.url or "")
        ids += [c.doi] if c.doi else []
        for ident in ids:
            assert ident in facts, f"{c.key}: {ident} is not in KNOWLEDGE_FACTS.md"
        assert str(c.year) in facts, f"{c.key}: year {c.year}"
        surname = c.authors[0].split()[-1]
        assert surname in facts or c.title[:40] in facts, f"{c.key}: not in KNOWLEDGE_FACTS.md"
