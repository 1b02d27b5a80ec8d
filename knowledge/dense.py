"""Cosine of a question with every stored unit vector, as one int8 product.

A float32 matrix-vector product over every unit is bound by memory bandwidth: 60k units
of 384 dimensions (10k entries) are 92 MB to read per question, about 7 ms here. Rows
quantised to int8 (one scale per row) are a quarter of that, and ONNX Runtime's integer
product, with the matrix packed once when the index loads, scores them in about 0.8 ms.
A cosine moves by at most about 0.002 (``tests/test_dense.py``), well inside the gaps the
ranker works with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

ZERO_POINT = 128  # the question is quantised to uint8 around it (ONNX MatMulInteger)
ZERO = np.array(ZERO_POINT, dtype=np.uint8)


def quantize_questions(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 rows around ``ZERO_POINT``, step per row): row ≈ (uint8 row - 128) * step, the
    left operand of ``integer_product``."""
    step = np.abs(rows).max(axis=1) / 127.0
    step[step == 0] = 1.0
    return (np.round(rows / step[:, None]) + ZERO_POINT).astype(np.uint8), step


def integer_product(constant: np.ndarray | None = None, threads: int = 1) -> Any:  # noqa: ANN401
    """An ONNX Runtime session of ``(question - zero) @ units`` in int32 (MatMulInteger):
    inputs ``question`` (uint8 rows), ``zero`` and, unless ``constant`` (int8 (dim, n),
    packed once) is given, ``units``."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    inputs = [
        helper.make_tensor_value_info("question", TensorProto.UINT8, ["rows", "dim"]),
        helper.make_tensor_value_info("zero", TensorProto.UINT8, []),
    ]
    initializer = []
    if constant is None:
        inputs.append(helper.make_tensor_value_info("units", TensorProto.INT8, ["dim", "n"]))
    else:
        initializer.append(numpy_helper.from_array(constant, "units"))
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["question", "units", "zero"], ["dots"])],
        "integer_product",
        inputs,
        [helper.make_tensor_value_info("dots", TensorProto.INT32, ["rows", "n"])],
        initializer=initializer,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def quantize_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 rows, float32 scale per row): row ≈ int8 row * scale."""
    scale = np.abs(matrix).max(axis=1) / 127.0
    scale[scale == 0] = 1.0
    return np.round(matrix / scale[:, None]).astype(np.int8), scale.astype(np.float32)


class Int8Rows:
    """Unit vectors, int8 per row, scored against one question at a time."""

    def __init__(self, matrix: np.ndarray, threads: int = 1) -> None:
        quantized, scale = quantize_rows(np.asarray(matrix, dtype=np.float32))
        self._pack(quantized, scale, threads)

    @classmethod
    def from_quantized(cls, quantized: np.ndarray, scale: np.ndarray, threads: int = 1) -> Int8Rows:
        """Of rows already quantised by ``quantize_rows``."""
        rows = cls.__new__(cls)
        rows._pack(quantized, scale, threads)
        return rows

    def _pack(self, quantized: np.ndarray, scale: np.ndarray, threads: int) -> None:
        self.rows, self.dim = quantized.shape
        self.scale = scale
        self._session = None
        if not self.rows:
            return
        # A constant, so that ONNX Runtime packs it for its integer kernels once.
        self._session = integer_product(np.ascontiguousarray(quantized.T), threads)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """(rows,) float32 cosines of ``query`` (normalised) with every row."""
        if self._session is None:
            return np.zeros(self.rows, dtype=np.float32)
        q, step = quantize_questions(query[None, :])
        (dots,) = self._session.run(None, {"question": q, "zero": ZERO})
        return dots[0].astype(np.float32) * self.scale * step[0]
