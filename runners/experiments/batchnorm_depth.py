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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from runners.result import Result, figure_png  # noqa: E402
from runners.specs.batchnorm_depth import Params

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
        ratio_plain,
        ratio_bn,
        loss_plain,
        loss_bn,
        slope,
        supports,
        stable,
        lower,
        plain.diverged,
        normed.diverged,
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
    figures = [
        _figure_stats(plain, normed, p),
        _figure_loss(plain.losses, normed.losses, p),
        _figure_noise(noise, slope),
    ]
    return Result(
        metrics=metrics, figures=figures, finding=finding, supports_claim=supports, series=series
    )


def _finding(
    p: Params,
    ratio_plain: float,
    ratio_bn: float,
    loss_plain: float,
    loss_bn: float,
    slope: float,
    supports: bool,
    stable: bool,
    lower: bool,
    plain_diverged: bool,
    bn_diverged: bool,
) -> dict[str, str]:
    if plain_diverged:
        drift_en = (
            "the no-BN arm diverged (non-finite loss), while deep-layer std changed by a "
            f"factor of {ratio_bn:.2f} with BN"
        )
        drift_ja = (
            "BN なしの側は発散した（損失が非有限）一方、深い層の標準偏差の変動は "
            f"BN ありで {ratio_bn:.2f} 倍"
        )
    else:
        drift_en = (
            f"deep-layer std changed by a factor of {ratio_plain:.2f} without BN vs "
            f"{ratio_bn:.2f} with BN"
        )
        drift_ja = (
            f"深い層の標準偏差の変動は BN なしで {ratio_plain:.2f} 倍、BN ありで {ratio_bn:.2f} 倍"
        )
    nums_en = (
        f"{drift_en}; late training loss at learning rate {p.learning_rate:g} was "
        f"{loss_plain:.3f} without BN vs {loss_bn:.3f} with BN; batch-mean noise fell with "
        f"slope {slope:.2f} in log-log (1/sqrt(B) is -0.5)"
    )
    nums_ja = (
        f"{drift_ja}、学習率 {p.learning_rate:g} での終盤の訓練損失は BN なし "
        f"{loss_plain:.3f}、BN あり {loss_bn:.3f}、バッチ平均のばらつきの両対数の傾きは "
        f"{slope:.2f}（1/sqrt(B) なら -0.5）"
    )
    if plain_diverged or bn_diverged:
        nums_en += f"; losses after divergence count as {LOSS_CAP:g}"
        nums_ja += f"、発散後の損失は {LOSS_CAP:g} として数えた"
    if supports:
        en = f"The claim showed: {nums_en}."
        ja = f"主張は確認された: {nums_ja}。"
    else:
        if not lower:
            why_en = "batch norm did not reach a clearly lower loss"
            why_ja = "バッチ正規化で損失がはっきり低くはならなかった"
        elif not stable:
            why_en = "the deep layer's statistics were not more stable with batch norm"
            why_ja = "バッチ正規化ありでも深い層の統計量が安定しなかった"
        else:
            why_en = "the batch-mean noise did not follow 1/sqrt(B)"
            why_ja = "バッチ平均のばらつきが 1/sqrt(B) に従わなかった"
        en = f"The claim did not show here: {why_en} ({nums_en})."
        ja = f"この設定では主張は示されなかった: {why_ja}（{nums_ja}）。"
    return {"en": en, "ja": ja}


def _figure_stats(plain: _Arm, normed: _Arm, p: Params) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(plain.check_steps, plain.stds, marker=".", label="std, no BN")
    ax.plot(normed.check_steps, normed.stds, marker=".", label="std, with BN")
    ax.plot(plain.check_steps, plain.means, linestyle="--", color="tab:blue", label="mean, no BN")
    ax.plot(
        normed.check_steps, normed.means, linestyle="--", color="tab:orange", label="mean, with BN"
    )
    ax.set_xlabel("training step")
    ax.set_ylabel(f"activation statistic (hidden layer {p.depth})")
    ax.set_title(f"Deepest hidden layer during training (depth {p.depth})")
    ax.legend()
    return figure_png(fig)


def _smooth(values: list[float], k: int) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    k = max(1, min(k, len(arr)))
    return np.convolve(arr, np.ones(k) / k, mode="valid")


def _figure_loss(loss_plain: list[float], loss_bn: list[float], p: Params) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    k = max(1, p.steps // 30)
    start = k - 1
    sm_plain, sm_bn = _smooth(loss_plain, k), _smooth(loss_bn, k)
    ax.plot(range(start, start + len(sm_plain)), sm_plain, label="no BN")
    ax.plot(range(start, start + len(sm_bn)), sm_bn, label="with BN")
    ax.axvspan(
        p.steps - max(1, p.steps // 4),
        p.steps,
        color="gray",
        alpha=0.15,
        label="averaged for the metric",
    )
    ax.set_xlabel("training step")
    ax.set_ylabel(f"training loss (moving average of {k})")
    ax.set_title(f"Cross-entropy at learning rate {p.learning_rate:g}")
    ax.legend()
    return figure_png(fig)


def _figure_noise(noise: list[float], slope: float) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    sizes = np.asarray(NOISE_BATCH_SIZES, dtype=float)
    ax.plot(sizes, noise, marker="o", label=f"measured (slope {slope:.2f})")
    ax.plot(
        sizes,
        noise[0] * np.sqrt(sizes[0] / sizes),
        linestyle="--",
        color="gray",
        label="1/sqrt(B) reference",
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size B")
    ax.set_ylabel("std of the batch mean (avg over units)")
    ax.set_title("Noise of the batch-mean estimate, deepest layer")
    ax.legend()
    return figure_png(fig)


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("batchnorm_depth"))
