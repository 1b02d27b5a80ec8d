"""Approximate nearest units (HNSW, ``usearch``) for indexes too big to score exhaustively.

Above ``Settings.INDEX_ANN_MIN_UNITS`` unit vectors, scoring every row for every
question costs more than the rest of the pipeline (600k rows of int8 are 230 MB to read
per question). The graph finds the best few hundred units; their entries are then
scored exactly (``knowledge.index``). usearch was chosen over hnswlib and faiss: it
is maintained, ships wheels for this platform, stores int8 vectors, and maps
a saved graph from its file (``view``), so the web processes of one host share one copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

# usearch's i8 maps components in [-1, 1] to [-127, 127], and an e5 unit vector's are
# near +-0.05: given as is, most of the 8 bits are lost (recall at k=10 0.86 against 0.97
# in f16). So rows go in as our own int8 rows / 127 (stored exactly, the scale does not
# matter to a cosine) and questions divided by their largest component.
CONNECTIVITY = 16  # graph degree
EXPANSION_ADD = 64  # candidates kept while inserting
EXPANSION_SEARCH = 64  # candidates kept while searching (usearch uses at least k)
BATCH = 50_000  # rows dequantised per insert call


class Ann:
    def __init__(self, index: Any) -> None:
        self._index = index

    @staticmethod
    def _new(dim: int) -> Any:
        # onnxruntime must be loaded first: loaded after usearch's SIMD library, its
        # import crashes the process (a segmentation fault; tests/test_index_catch_up.py).
        import onnxruntime  # noqa: F401
        from usearch.index import Index

        return Index(
            ndim=dim,
            metric="cos",
            dtype="i8",
            connectivity=CONNECTIVITY,
            expansion_add=EXPANSION_ADD,
            expansion_search=EXPANSION_SEARCH,
        )

    @classmethod
    def build(cls, rows: np.ndarray, threads: int = 0) -> Ann:
        """From int8 ``rows`` (``knowledge.dense.quantize_rows``); keys are row numbers."""
        index = cls._new(rows.shape[1])
        for lo in range(0, len(rows), BATCH):
            hi = min(lo + BATCH, len(rows))
            vectors = np.asarray(rows[lo:hi], dtype=np.float32) / 127.0
            index.add(np.arange(lo, hi, dtype=np.uint64), vectors, threads=threads)
        return cls(index)

    def save(self, path: Path) -> None:
        self._index.save(str(path))

    @classmethod
    def open(cls, path: Path, dim: int) -> Ann:
        """Map a saved graph read-only (pages shared between processes)."""
        index = cls._new(dim)
        index.view(str(path))
        return cls(index)

    def __len__(self) -> int:
        return len(self._index)

    def search(self, query: np.ndarray, k: int) -> np.ndarray:
        """Row numbers of about the ``k`` rows nearest ``query`` (best first)."""
        query = np.asarray(query, dtype=np.float32)
        found = self._index.search(query / (np.abs(query).max() or 1.0), k, threads=1)
        return np.asarray(found.keys, dtype=np.int64)
