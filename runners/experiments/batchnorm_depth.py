"""A deep MLP with and without batch normalisation, on inputs normalised once.

Entry: ``batchnorm-vs-dataset-normalization``. The inputs are standardised once
over the whole dataset, which fixes only the first layer's inputs. A deep ReLU
MLP (He init) is trained by minibatch SGD on a synthetic classification task,
once with plain layers and once with batch normalisation before every ReLU,
from the same initial weights and the same minibatches. We record the mean and
std of the deepest hidden layer's output on a fixed probe batch during training,
the training loss averaged over the last quarter of training, and, on the
trained BN network, how the noise of a batch mean shrinks with the batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from runners.labels import num, ratio_phrase  # noqa: E402
from runners.result import Result, Text, figures_in_each_language  # noqa: E402
from runners.specs.batchnorm_depth import Params  # noqa: E402

# Thresholds behind ``supports_claim``.
MAX_BN_STD_RATIO = 1.5  # max/min of the deep layer's std over training, BN arm
MIN_LOSS_REDUCTION = 0.2  # BN's late loss must be at least 20% below no-BN's
SLOPE_RANGE = (-0.6, -0.4)  # log-log slope of batch-mean std vs batch size

N_FEATURES = 20
N_CLASSES = 10
N_CHECKPOINTS = 30
PROBE_SIZE = 256
NOISE_BATCH_SIZES = [4, 16, 64, 256]
NOISE_REPEATS = 400
LOSS_CAP = 10.0  # loss recorded for steps after an arm diverged (non-finite loss)


def _dataset(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs with uneven scales and offsets, standardised once; labels from a random teacher."""
    d = N_FEATURES
    raw = torch.randn(n, d, generator=gen) * (0.2 + 3 * torch.rand(d, generator=gen))
    raw = raw + 2 * torch.randn(d, generator=gen)
    x = (raw - raw.mean(0)) / raw.std(0)
    t1 = torch.randn(d, 64, generator=gen) / math.sqrt(d)
    t2 = torch.randn(64, N_CLASSES, generator=gen) / 8
    y = (torch.tanh(2 * x @ t1) @ t2).argmax(dim=1)
    return x, y


def _init(p: Params, gen: torch.Generator) -> dict[str, list[torch.Tensor]]:
    dims = [N_FEATURES] + [p.width] * p.depth
    return {
        "w": [
            torch.randn(dims[i], dims[i + 1], generator=gen) * math.sqrt(2 / dims[i])
            for i in range(p.depth)
        ],
        "b": [torch.zeros(p.width) for _ in range(p.depth)],
        "gamma": [torch.ones(p.width) for _ in range(p.depth)],
        "beta": [torch.zeros(p.width) for _ in range(p.depth)],
        "out": [
            torch.randn(p.width, N_CLASSES, generator=gen) / math.sqrt(p.width),
            torch.zeros(N_CLASSES),
        ],
    }


def _forward(
    net: dict[str, list[torch.Tensor]], x: torch.Tensor, bn: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Logits, the deepest hidden layer's output, and its pre-activation before BN."""
    h = x
    pre = x
    for i, w in enumerate(net["w"]):
        pre = h @ w
        if bn:
            a = (pre - pre.mean(0)) / torch.sqrt(pre.var(0, unbiased=False) + 1e-5)
            a = a * net["gamma"][i] + net["beta"][i]
        else:
            a = pre + net["b"][i]
        h = torch.relu(a)
    return h @ net["out"][0] + net["out"][1], h, pre


@dataclass
class _Arm:
    """What training one arm produced."""

    net: dict[str, list[torch.Tensor]]
    losses: list[float] = field(default_factory=list)
    stds: list[float] = field(default_factory=list)
    means: list[float] = field(default_factory=list)
    check_steps: list[float] = field(default_factory=list)
    diverged: bool = False


def _train_arm(
    p: Params,
    bn: bool,
    init: dict[str, list[torch.Tensor]],
    x: torch.Tensor,
    y: torch.Tensor,
    batches: torch.Tensor,
    probe: torch.Tensor,
) -> _Arm:
    net = {k: [t.clone().requires_grad_() for t in v] for k, v in init.items()}
    arm = _Arm(net=net)
    trainable = net["w"] + net["out"] + (net["gamma"] + net["beta"] if bn else net["b"])
    every = max(1, p.steps // N_CHECKPOINTS)

    def record(step: int) -> None:
        with torch.no_grad():
            _, h, _ = _forward(net, probe, bn)
        s, m = float(h.std()), float(h.mean())
        if math.isfinite(s) and math.isfinite(m):
            arm.stds.append(s)
            arm.means.append(m)
            arm.check_steps.append(float(step))

    record(0)
    for t in range(p.steps):
        if arm.diverged:
            arm.losses.append(LOSS_CAP)
            continue
        idx = batches[t]
        logits, _, _ = _forward(net, x[idx], bn)
        loss = torch.nn.functional.cross_entropy(logits, y[idx])
        value = float(loss.detach())
        if not math.isfinite(value):
            arm.diverged = True
        value = min(value, LOSS_CAP) if math.isfinite(value) else LOSS_CAP
        arm.losses.append(value)
        if arm.diverged:
            continue
        grads = torch.autograd.grad(loss, trainable)
        with torch.no_grad():
            for param, g in zip(trainable, grads, strict=True):
                param -= p.learning_rate * g
        if (t + 1) % every == 0:
            record(t + 1)
    return arm


def _batch_noise(
    net: dict[str, list[torch.Tensor]], x: torch.Tensor, gen: torch.Generator
) -> tuple[list[float], float]:
    """Std over random batches of a batch mean of the deepest pre-BN activation, per batch size."""
    with torch.no_grad():
        _, _, pre = _forward(net, x, bn=True)
    pre = pre.double()
    noise = []
    for b in NOISE_BATCH_SIZES:
        idx = torch.randint(0, x.shape[0], (NOISE_REPEATS, b), generator=gen)
        batch_means = pre[idx].mean(dim=1)  # (repeats, width)
        noise.append(float(batch_means.std(dim=0).mean()))
    slope = float(np.polyfit(np.log(NOISE_BATCH_SIZES), np.log(noise), 1)[0])
    return noise, slope


def _late_mean(losses: list[float]) -> float:
    k = max(1, len(losses) // 4)
    return float(sum(losses[-k:]) / k)


def _ratio(values: list[float]) -> float:
    lo = min(values)
    return float(max(values) / lo) if lo > 0 else math.inf


def run(params: Params, seed: int) -> Result:
    """Train the same deep MLP with and without BN and compare statistics and loss."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    p = params
    gen = torch.Generator().manual_seed(seed)
    x, y = _dataset(p.n_examples, gen)
    init = _init(p, gen)
    batches = torch.randint(0, p.n_examples, (p.steps, p.batch_size), generator=gen)
    probe = x[:PROBE_SIZE]

    plain = _train_arm(p, False, init, x, y, batches, probe)
    normed = _train_arm(p, True, init, x, y, batches, probe)
    noise, slope = _batch_noise(normed.net, x, gen)

    loss_plain = _late_mean(plain.losses)
    loss_bn = _late_mean(normed.losses)
    ratio_plain = _ratio(plain.stds)
    ratio_bn = _ratio(normed.stds)
    mean_drift_plain = max(plain.means) - min(plain.means)
    mean_drift_bn = max(normed.means) - min(normed.means)
    reduction = 1.0 - loss_bn / loss_plain if loss_plain > 0 else 0.0

    # A diverged no-BN arm is the extreme of drift, even if few stats were recorded.
    stable = ratio_bn <= MAX_BN_STD_RATIO and (ratio_bn < ratio_plain or plain.diverged)
    lower = reduction >= MIN_LOSS_REDUCTION
    slope_ok = SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]
    supports = bool(stable and lower and slope_ok)

    metrics: dict[str, int | float | bool] = {
        "deep_std_drift_ratio_no_bn": ratio_plain,
        "deep_std_drift_ratio_bn": ratio_bn,
        "deep_mean_drift_no_bn": float(mean_drift_plain),
        "deep_mean_drift_bn": float(mean_drift_bn),
        "late_loss_no_bn": loss_plain,
        "late_loss_bn": loss_bn,
        "bn_loss_reduction": reduction,
        "no_bn_diverged": bool(plain.diverged),
        "bn_diverged": bool(normed.diverged),
        "batch_mean_noise_slope": slope,
    }
    for b, s in zip(NOISE_BATCH_SIZES, noise, strict=True):
        metrics[f"batch_mean_std_b{b}"] = s

    finding = _finding(
        p,
        plain,
        normed,
        noise,
        slope,
        (ratio_plain, ratio_bn),
        (loss_plain, loss_bn),
        (stable, lower, slope_ok),
    )
    series: dict[str, list[float]] = {
        "checkpoint_steps_no_bn": plain.check_steps,
        "deep_std_no_bn": plain.stds,
        "deep_mean_no_bn": plain.means,
        "checkpoint_steps_bn": normed.check_steps,
        "deep_std_bn": normed.stds,
        "deep_mean_bn": normed.means,
        "loss_no_bn": plain.losses,
        "loss_bn": normed.losses,
        "noise_batch_sizes": [float(b) for b in NOISE_BATCH_SIZES],
        "batch_mean_std": noise,
    }

    def draw(t: Text) -> list[Any]:
        return [
            _figure_stats(t, plain, normed, p),
            _figure_loss(t, plain.losses, normed.losses, p),
            _figure_noise(t, noise, slope),
        ]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series=series,
        **figures_in_each_language(draw),
    )


def _finding(
    p: Params,
    plain: _Arm,
    normed: _Arm,
    noise: list[float],
    slope: float,
    ratios: tuple[float, float],
    losses: tuple[float, float],
    checks: tuple[bool, bool, bool],
) -> dict[str, str]:
    """What was measured and what it shows, in plain words in both languages.

    ``ratios`` and ``losses``: (without BN, with BN); ``checks``: (stable, lower, slope_ok).
    """
    ratio_plain, ratio_bn = ratios
    loss_plain, loss_bn = losses
    stable, lower, slope_ok = checks
    layers = "hidden layer" if p.depth == 1 else "hidden layers"
    setup = {
        "en": f"The same network with {p.depth} {layers} was trained at learning rate "
        f"{num(p.learning_rate)}, once without and once with batch normalisation.",
        "ja": f"隠れ層 {p.depth} 層の同じネットワークを、学習率 {num(p.learning_rate)} で"
        "バッチ正規化なしとありの 2 通りに学習させました。",
    }

    # How much the spread (standard deviation) of the deepest hidden layer drifted.
    drift_bn = ratio_phrase(ratio_bn, "its smallest", "最小値")
    if plain.diverged:
        drift = {
            "en": "Without batch normalisation training diverged (the loss stopped being a "
            "finite number). With it, the largest spread of the deepest hidden layer during "
            f"training was {drift_bn['en']}.",
            "ja": "バッチ正規化なしでは学習が発散しました（損失が有限の値でなくなりました）。"
            f"バッチ正規化ありでは、学習中の最も深い隠れ層の標準偏差の最大値は{drift_bn['ja']}"
            "でした。",
        }
    else:
        drift_plain = ratio_phrase(ratio_plain, "its smallest", "最小値")
        if drift_plain == drift_bn:  # both "about the same as its smallest"
            drift = {
                "en": "During training, the largest spread (standard deviation) of the "
                f"deepest hidden layer was {drift_bn['en']} both without and with batch "
                "normalisation.",
                "ja": "学習中の最も深い隠れ層の標準偏差の最大値は、バッチ正規化のありなしに"
                f"かかわらず{drift_bn['ja']}でした。",
            }
        else:
            drift = {
                "en": "During training, the largest spread (standard deviation) of the "
                f"deepest hidden layer was {drift_plain['en']} without batch normalisation, "
                f"and {drift_bn['en']} with it.",
                "ja": "学習中の最も深い隠れ層の標準偏差の最大値は、バッチ正規化なしでは"
                f"{drift_plain['ja']}、ありでは{drift_bn['ja']}でした。",
            }
        if normed.diverged:
            drift["en"] += " Training with batch normalisation diverged."
            drift["ja"] += "バッチ正規化ありの学習は発散しました。"

    if loss_plain > 0:
        compared = ratio_phrase(loss_bn / loss_plain, "the loss without it", "なしの場合")
        compared_en, compared_ja = f", {compared['en']}", f" と、{compared['ja']}"
    else:
        compared_en, compared_ja = "", " "
    loss = {
        "en": "Over the last quarter of training the average loss was "
        f"{num(loss_plain)} without batch normalisation and {num(loss_bn)} with it"
        f"{compared_en}.",
        "ja": "学習の最後の 4 分の 1 での平均の損失は、バッチ正規化なしで "
        f"{num(loss_plain)}、ありで {num(loss_bn)}{compared_ja}でした。",
    }
    if plain.diverged or normed.diverged:
        loss["en"] += f" Steps after the divergence count as a loss of {num(LOSS_CAP)}."
        loss["ja"] += f"発散した後のステップは損失 {num(LOSS_CAP)} として数えています。"

    sizes = NOISE_BATCH_SIZES
    spread = {
        "en": "In the trained network with batch normalisation, the spread of a batch mean "
        f"fell from {num(noise[0])} at batch size {sizes[0]} to {num(noise[-1])} at batch "
        f"size {sizes[-1]}: a slope of {slope:.2f} on a log-log plot, where a fall like "
        "1/√(batch size) has slope -0.5.",
        "ja": "学習後のバッチ正規化ありのネットワークでは、バッチ平均のばらつきはバッチサイズ "
        f"{sizes[0]} での {num(noise[0])} からバッチサイズ {sizes[-1]} での {num(noise[-1])} "
        f"まで小さくなりました。両対数グラフでの傾きは {slope:.2f} で、1/√(バッチサイズ) "
        "に比例して小さくなる場合の傾きは -0.5 です。",
    }

    if stable and lower and slope_ok:
        meaning = {
            "en": "This showed that normalising the inputs once does not keep a deep layer "
            "normalised during training; batch normalisation does, and here it also let the "
            "network reach a clearly lower loss.",
            "ja": "つまり、入力を一度正規化するだけでは学習中に深い層の正規化は保たれず、"
            "バッチ正規化なら保たれます。この設定ではバッチ正規化によって損失もはっきり"
            "低くなりました。",
        }
    else:
        # What fell short, in English and in Japanese (a clause that continues, one that ends).
        short: list[tuple[str, str, str]] = []
        if ratio_bn > MAX_BN_STD_RATIO:
            short.append(
                (
                    "even with batch normalisation the deep layer's spread changed by more "
                    f"than {num(MAX_BN_STD_RATIO)} times",
                    f"バッチ正規化ありでも深い層の標準偏差が {num(MAX_BN_STD_RATIO)} 倍を超えて"
                    "変わり",
                    f"バッチ正規化ありでも深い層の標準偏差が {num(MAX_BN_STD_RATIO)} 倍を超えて"
                    "変わりました",
                )
            )
        elif not stable:
            short.append(
                (
                    "the deep layer was no steadier with batch normalisation than without",
                    "バッチ正規化ありでも深い層はなしより安定せず",
                    "バッチ正規化ありでも深い層はなしより安定しませんでした",
                )
            )
        if not lower:
            cut = f"{MIN_LOSS_REDUCTION:.0%}"
            short.append(
                (
                    f"batch normalisation did not lower the loss by {cut} or more",
                    f"バッチ正規化で損失が {cut} 以上は下がらず",
                    f"バッチ正規化で損失が {cut} 以上は下がりませんでした",
                )
            )
        if not slope_ok:
            short.append(
                (
                    "the spread of a batch mean did not fall like 1/√(batch size)",
                    "バッチ平均のばらつきは 1/√(バッチサイズ) のようには小さくならず",
                    "バッチ平均のばらつきは 1/√(バッチサイズ) のようには小さくなりませんでした",
                )
            )
        clauses_ja = [ja for _, ja, _ in short[:-1]] + [short[-1][2]]
        meaning = {
            "en": f"Here {_and([en for en, _, _ in short])}.",
            "ja": f"この設定では、{'、'.join(clauses_ja)}。",
        }
    parts = (setup, drift, loss, spread, meaning)
    return {"en": " ".join(s["en"] for s in parts), "ja": "".join(s["ja"] for s in parts)}


def _and(parts: list[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def _legend_below(ax: Any) -> None:
    """The legend under the axes, so that it never covers the curves' points."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)


def _figure_stats(t: Text, plain: _Arm, normed: _Arm, p: Params) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        plain.check_steps,
        plain.stds,
        marker=".",
        label=t("std, without batch norm", "標準偏差（バッチ正規化なし）"),
    )
    ax.plot(
        normed.check_steps,
        normed.stds,
        marker=".",
        label=t("std, with batch norm", "標準偏差（バッチ正規化あり）"),
    )
    ax.plot(
        plain.check_steps,
        plain.means,
        linestyle="--",
        color="tab:blue",
        label=t("mean, without batch norm", "平均（バッチ正規化なし）"),
    )
    ax.plot(
        normed.check_steps,
        normed.means,
        linestyle="--",
        color="tab:orange",
        label=t("mean, with batch norm", "平均（バッチ正規化あり）"),
    )
    ax.set_xlabel(t("training step", "学習ステップ"))
    ax.set_ylabel(
        t(
            f"activation statistic (hidden layer {p.depth})",
            f"活性の統計量（第 {p.depth} 隠れ層）",
        )
    )
    ax.set_title(
        t(
            f"Deepest hidden layer during training (depth {p.depth})",
            f"学習中の最も深い隠れ層（深さ {p.depth}）",
        )
    )
    _legend_below(ax)
    return fig


def _smooth(values: list[float], k: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    k = max(1, min(k, len(arr)))
    return np.convolve(arr, np.ones(k) / k, mode="valid")


def _figure_loss(t: Text, loss_plain: list[float], loss_bn: list[float], p: Params) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    k = max(1, p.steps // 30)
    start = k - 1
    sm_plain, sm_bn = _smooth(loss_plain, k), _smooth(loss_bn, k)
    ax.plot(
        range(start, start + len(sm_plain)),
        sm_plain,
        label=t("without batch norm", "バッチ正規化なし"),
    )
    ax.plot(range(start, start + len(sm_bn)), sm_bn, label=t("with batch norm", "バッチ正規化あり"))
    ax.axvspan(
        p.steps - max(1, p.steps // 4),
        p.steps,
        color="gray",
        alpha=0.15,
        label=t("last quarter, averaged for the metric", "指標で平均をとる最後の 4 分の 1"),
    )
    ax.set_xlabel(t("training step", "学習ステップ"))
    ax.set_ylabel(
        t(f"training loss (moving average of {k})", f"訓練損失（{k} ステップの移動平均）")
    )
    ax.set_title(
        t(
            f"Cross-entropy at learning rate {num(p.learning_rate)}",
            f"学習率 {num(p.learning_rate)} での交差エントロピー",
        )
    )
    _legend_below(ax)
    return fig


def _figure_noise(t: Text, noise: list[float], slope: float) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = np.asarray(NOISE_BATCH_SIZES, dtype=float)
    ax.plot(
        sizes,
        noise,
        marker="o",
        label=t(f"measured (slope {slope:.2f})", f"測定値（傾き {slope:.2f}）"),
    )
    ax.plot(
        sizes,
        noise[0] * np.sqrt(sizes[0] / sizes),
        linestyle="--",
        color="gray",
        label=t("1/√B reference", "1/√B の参照線"),
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(t("batch size B", "バッチサイズ B"))
    ax.set_ylabel(
        t("std of the batch mean (avg over units)", "バッチ平均の標準偏差（ユニットで平均）")
    )
    ax.set_title(
        t("Noise of the batch-mean estimate, deepest layer", "最も深い層でのバッチ平均のばらつき")
    )
    _legend_below(ax)
    return fig


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("batchnorm_depth"))
