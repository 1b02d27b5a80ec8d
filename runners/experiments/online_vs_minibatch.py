"""One epoch of SGD at batch sizes from 1 (online) to the full dataset.

Entry: ``online-vs-minibatch-sgd``. The model is linear least-squares regression
on a synthetic, redundant dataset: a few distinct prototype inputs, each repeated
many times with a little jitter. Every batch size sees the same number of
examples (one epoch, same shuffled order; a last partial batch is dropped) and
gets its own step size, the best of a fixed geometric grid. All grid values are
trained at once as one batch of weight vectors. The loss on the whole training
set after the epoch is compared across batch sizes; wall-clock time per epoch is
measured with the chosen step.
Setting ``budget`` to ``"updates"`` gives every batch size as many updates as
online SGD makes in one epoch instead, so large batches see far more examples.
"""

from __future__ import annotations

import math
import time
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from runners.labels import num, ratio_phrase  # noqa: E402
from runners.result import Result, Text, figures_in_each_language  # noqa: E402
from runners.specs.online_vs_minibatch import Params

# Thresholds behind ``supports_claim``.
MIN_FULL_OVER_ONLINE = 2.0  # full-batch loss must be at least this multiple of online loss
NO_FALL_TOLERANCE = 0.10  # a larger batch may lower the loss by at most this fraction

# Step sizes tried for every batch size: 2^-12 ... 2^1.
LR_GRID = [2.0**k for k in range(-12, 2)]
BATCH_GROWTH = 8


def _dataset(p: Params, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    dt = torch.float64
    d = p.n_features
    protos = torch.randn(p.n_prototypes, d, generator=gen, dtype=dt)
    x = protos.repeat(p.redundancy, 1)
    x = x + p.jitter * torch.randn(x.shape, generator=gen, dtype=dt)
    w_true = torch.randn(d, generator=gen, dtype=dt) / math.sqrt(d)
    y = x @ w_true + p.label_noise * torch.randn(x.shape[0], generator=gen, dtype=dt)
    perm = torch.randperm(x.shape[0], generator=gen)
    return x[perm], y[perm]


def _loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Half mean squared error of each row of ``w`` (shape (L, d)) on all of ``x``."""
    return 0.5 * ((w @ x.T - y) ** 2).mean(dim=1)


def _train(
    x: torch.Tensor, y: torch.Tensor, batch: int, lrs: torch.Tensor, n_updates: int
) -> torch.Tensor:
    """Plain SGD from zero for each step size in ``lrs``; returns the weights (L, d)."""
    n, d = x.shape
    per_pass = n // batch
    w = torch.zeros(len(lrs), d, dtype=x.dtype)
    step = lrs[:, None] / batch
    for t in range(n_updates):
        i = (t % per_pass) * batch
        xb = x[i : i + batch]
        resid = w @ xb.T - y[i : i + batch]
        w = w - step * (resid @ xb)
    return w


def _least_squares(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Least-squares weights from the normal equations, with a negligible ridge.

    The ridge (1e-9 of the mean eigenvalue) keeps rank-deficient data solvable;
    ``torch.linalg.lstsq`` was avoided because its last bits varied between calls.
    """
    gram = x.T @ x
    ridge = 1e-9 * float(torch.diagonal(gram).mean()) + 1e-12
    eye = torch.eye(gram.shape[0], dtype=gram.dtype)
    return torch.linalg.solve(gram + ridge * eye, x.T @ y)


def _batch_sizes(n: int) -> list[int]:
    sizes = []
    b = 1
    while b < n:
        sizes.append(b)
        b *= BATCH_GROWTH
    sizes.append(n)
    return sizes


def run(params: Params, seed: int) -> Result:
    """Compare the loss after one epoch (or equal updates) across batch sizes."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    p = params
    gen = torch.Generator().manual_seed(seed)
    x, y = _dataset(p, gen)
    n = x.shape[0]
    sizes = _batch_sizes(n)
    lrs = torch.tensor(LR_GRID, dtype=x.dtype)

    loss_opt = float(_loss(_least_squares(x, y)[None], x, y)[0])
    loss_init = float(_loss(torch.zeros(1, x.shape[1], dtype=x.dtype), x, y)[0])

    losses: list[float] = []
    best_lrs: list[float] = []
    updates: list[int] = []
    wall: list[float] = []
    for b in sizes:
        n_updates = n // b if p.budget == "examples" else n
        w = _train(x, y, b, lrs, n_updates)
        final = torch.nan_to_num(_loss(w, x, y), nan=math.inf, posinf=math.inf)
        k = int(torch.argmin(final))
        losses.append(float(final[k]))
        best_lrs.append(LR_GRID[k])
        updates.append(n_updates)
        wall.append(_time_epoch(x, y, b, lrs[k : k + 1]))

    online, full = losses[0], losses[-1]
    ratio = full / max(online, 1e-300)
    drops = [
        (losses[i] - losses[i + 1]) / losses[i] if losses[i] > 0 else 0.0
        for i in range(len(losses) - 1)
    ]
    worst_drop = max(drops, default=0.0)
    margin_ok = ratio >= MIN_FULL_OVER_ONLINE
    no_fall = worst_drop <= NO_FALL_TOLERANCE
    supports = bool(margin_ok and no_fall)

    metrics: dict[str, int | float | bool] = {
        "dataset_size": n,
        "initial_loss": loss_init,
        "least_squares_loss": loss_opt,
    }
    for b, loss, lr, u in zip(sizes, losses, best_lrs, updates, strict=True):
        metrics[f"loss_batch_{b}"] = loss
        metrics[f"tuned_lr_batch_{b}"] = lr
        metrics[f"updates_batch_{b}"] = u
    metrics.update(
        {
            "loss_online": online,
            "loss_full_batch": full,
            "excess_loss_online": online - loss_opt,
            "excess_loss_full_batch": full - loss_opt,
            "full_over_online_loss_ratio": ratio,
            "largest_relative_loss_drop_with_batch": worst_drop,
            "examples_seen_online": updates[0],
            "examples_seen_full_batch": updates[-1] * n,
        }
    )

    finding = _finding(p, sizes, losses, loss_opt, ratio, worst_drop, supports, margin_ok)
    series = {
        "batch_sizes": [float(b) for b in sizes],
        "loss_after_budget": losses,
        "tuned_lr": best_lrs,
        # Wall-clock seconds vary from run to run, so they stay out of the metrics.
        "wall_clock_s_per_epoch": wall,
    }

    def draw(t: Text) -> list[Any]:
        return [
            _figure_loss(sizes, losses, best_lrs, loss_opt, loss_init, p, t),
            _figure_wall(sizes, wall, t),
        ]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series=series,
        **figures_in_each_language(draw),
    )


def _time_epoch(x: torch.Tensor, y: torch.Tensor, batch: int, lr: torch.Tensor) -> float:
    """Best of three wall-clock times for one epoch of a single model."""
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        _train(x, y, batch, lr, x.shape[0] // batch)
        best = min(best, time.perf_counter() - t0)
    return best


def _percent(fraction: float) -> str:
    return f"{num(100 * fraction, 2)}%"


def _finding(
    p: Params,
    sizes: list[int],
    losses: list[float],
    loss_opt: float,
    ratio: float,
    worst_drop: float,
    supports: bool,
    margin_ok: bool,
) -> dict[str, str]:
    n = sizes[-1]
    online, full = losses[0], losses[-1]
    listed_en = f"{', '.join(str(b) for b in sizes[:-1])} and {n}"
    listed_ja = "、".join(str(b) for b in sizes)
    if p.budget == "examples":
        setup_en = (
            f"Batch sizes {listed_en} (the whole dataset of {n} examples) were each trained "
            "for one epoch, so each saw every example exactly once; each batch size got the "
            "best learning rate from a fixed list."
        )
        setup_ja = (
            f"バッチサイズ {listed_ja}（{n} 件のデータ全体）のそれぞれで 1 エポックだけ、"
            "つまり全事例をちょうど 1 回ずつ見て学習させました。学習率はバッチサイズごとに、"
            "決まった候補の中から最もよいものを選んでいます。"
        )
    else:
        setup_en = (
            f"Batch sizes {listed_en} (the whole dataset of {n} examples) each made {n} "
            "updates, as many as online SGD makes in one epoch, with the best learning rate "
            f"from a fixed list; so the full batch saw {num(n * n)} examples, against {n} "
            "for online SGD."
        )
        setup_ja = (
            f"バッチサイズ {listed_ja}（{n} 件のデータ全体）のどれでも、オンライン SGD の"
            f" 1 エポックと同じ {n} 回だけ重みを更新しました。学習率はバッチサイズごとに、"
            "決まった候補の中から最もよいものを選んでいます。そのため全バッチでは"
            f" {num(n * n)} 件と、オンライン SGD の {n} 件よりはるかに多くの事例を見ています。"
        )
    rel = ratio_phrase(ratio, "the online loss", "オンラインの損失")
    loss_en = (
        f"The training loss ended at {num(online)} with online SGD (batch size 1) and at "
        f"{num(full)} with full-batch gradient descent, so the full-batch loss was "
        f"{rel['en']} (the lowest possible loss is {num(loss_opt)})."
    )
    loss_ja = (
        f"学習後の訓練損失はオンライン SGD（バッチサイズ 1）で {num(online)}、全バッチ勾配降下法で"
        f" {num(full)} となり、全バッチの損失は{rel['ja']}でした（達成できる最小の損失は"
        f" {num(loss_opt)}）。"
    )
    if worst_drop <= 0:
        drop_en = "Making the batch larger never lowered the loss."
        drop_ja = "バッチを大きくして損失が下がることは一度もありませんでした。"
    elif worst_drop < 0.001:
        drop_en = "Making the batch larger lowered the loss by less than 0.1%."
        drop_ja = "バッチを大きくしても、損失の低下は 0.1% 未満でした。"
    elif worst_drop <= NO_FALL_TOLERANCE:
        drop_en = f"Making the batch larger lowered the loss by {_percent(worst_drop)} at most."
        drop_ja = f"バッチを大きくしたときの損失の低下は、最大でも {_percent(worst_drop)} でした。"
    else:
        drops = [
            (losses[i] - losses[i + 1]) / losses[i] if losses[i] > 0 else 0.0
            for i in range(len(losses) - 1)
        ]
        i = drops.index(worst_drop)
        drop_en = (
            f"Going from batch size {sizes[i]} to {sizes[i + 1]} lowered the loss by "
            f"{_percent(worst_drop)}."
        )
        drop_ja = (
            f"バッチサイズを {sizes[i]} から {sizes[i + 1]} にすると、損失は "
            f"{_percent(worst_drop)} 下がりました。"
        )
    if supports:
        meaning_en = (
            "This showed that, for the same number of examples seen, online SGD made the "
            "most progress."
            if p.budget == "examples"
            else "This showed online SGD ahead even though the larger batches saw more examples."
        )
        meaning_ja = (
            "見る事例の数が同じなら、オンライン SGD が最も学習を進めたということです。"
            if p.budget == "examples"
            else "大きなバッチの方が多くの事例を見たにもかかわらず、"
            "オンライン SGD が最も学習を進めたということです。"
        )
    elif p.budget == "updates":
        meaning_en = (
            "With equal updates instead of equal examples, the larger batches see far more "
            "data and are no longer held back."
        )
        meaning_ja = (
            "事例数ではなく更新回数をそろえると、大きなバッチははるかに多くのデータを見るため、"
            "もう不利にはならないということです。"
        )
    elif not margin_ok:
        meaning_en = "So here online SGD was not clearly ahead of the full batch."
        meaning_ja = "この設定では、オンライン SGD が全バッチよりはっきり優れているとは言えません。"
    else:
        meaning_en = "So here a larger batch sometimes made more progress per example."
        meaning_ja = (
            "この設定では、大きなバッチの方が事例あたりで学習が進むこともあるということです。"
        )
    return {
        "en": f"{setup_en} {loss_en} {drop_en} {meaning_en}",
        "ja": f"{setup_ja}{loss_ja}{drop_ja}{meaning_ja}",
    }


def _figure_loss(
    sizes: list[int],
    losses: list[float],
    lrs: list[float],
    loss_opt: float,
    loss_init: float,
    p: Params,
    t: Text,
) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    if p.budget == "examples":
        label = t("one epoch, tuned learning rate", "1 エポック、学習率は調整済み")
    else:
        label = t("equal updates, tuned learning rate", "更新回数をそろえ、学習率は調整済み")
    floor = 1e-9
    excess = [max(loss - loss_opt, floor) for loss in losses]
    ax.plot(sizes, excess, marker="o", label=label)
    for i, (b, ex, lr) in enumerate(zip(sizes, excess, lrs, strict=True)):
        # Below the point where the line climbs steeply to the next one, so that the line
        # does not cross the text.
        rising = i + 1 < len(excess) and excess[i + 1] > 2 * ex
        ax.annotate(
            t(f"lr {num(lr)}", f"学習率 {num(lr)}"),
            (b, ex),
            textcoords="offset points",
            xytext=(6, -12) if rising else (4, 6),
            fontsize=8,
        )
    ax.axhline(
        loss_init - loss_opt,
        color="gray",
        linestyle=":",
        label=t("before training (all weights 0)", "学習前（重みはすべて 0）"),
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel(t("batch size", "バッチサイズ"))
    ax.set_ylabel(
        t("training loss above the least-squares optimum", "訓練損失のうち最小二乗解を上回る分")
    )
    ax.set_title(
        t("Excess loss after training vs batch size", "バッチサイズごとの学習後の超過損失")
    )
    # Below the axes, so that it never covers the points.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    return fig


def _figure_wall(sizes: list[int], wall: list[float], t: Text) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        sizes,
        [w * 1000 for w in wall],
        marker="s",
        color="tab:orange",
        label=t("one epoch", "1 エポック"),
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel(t("batch size", "バッチサイズ"))
    ax.set_ylabel(
        t("wall-clock time per epoch (ms, best of 3)", "1 エポックの実時間（ms、3 回の最短）")
    )
    ax.set_title(
        t(
            "Time per epoch vs batch size (one CPU thread)",
            "バッチサイズごとの 1 エポックの時間（CPU 1 スレッド）",
        )
    )
    # Below the axes, so that it never covers the points.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), fontsize=8)
    return fig


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("online_vs_minibatch"))
