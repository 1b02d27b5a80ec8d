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

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from runners.result import Result, figure_png  # noqa: E402
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

    finding = _finding(p, online, full, ratio, worst_drop, supports, margin_ok)
    series = {
        "batch_sizes": [float(b) for b in sizes],
        "loss_after_budget": losses,
        "tuned_lr": best_lrs,
        # Wall-clock seconds vary from run to run, so they stay out of the metrics.
        "wall_clock_s_per_epoch": wall,
    }
    figures = [
        _figure_loss(sizes, losses, best_lrs, loss_opt, loss_init, p),
        _figure_wall(sizes, wall),
    ]
    return Result(
        metrics=metrics, figures=figures, finding=finding, supports_claim=supports, series=series
    )


def _time_epoch(x: torch.Tensor, y: torch.Tensor, batch: int, lr: torch.Tensor) -> float:
    """Best of three wall-clock times for one epoch of a single model."""
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        _train(x, y, batch, lr, x.shape[0] // batch)
        best = min(best, time.perf_counter() - t0)
    return best


def _finding(
    p: Params,
    online: float,
    full: float,
    ratio: float,
    worst_drop: float,
    supports: bool,
    margin_ok: bool,
) -> dict[str, str]:
    setting_en = (
        "with one epoch for every batch size"
        if p.budget == "examples"
        else "with equal numbers of updates (not examples)"
    )
    setting_ja = (
        "全バッチサイズで 1 エポックとした場合"
        if p.budget == "examples"
        else "更新回数（事例数ではなく）をそろえた場合"
    )
    nums_en = (
        f"online loss {online:.4g} vs full-batch {full:.4g} (ratio {ratio:.3g}); "
        f"largest loss decrease from a larger batch {max(worst_drop, 0.0):.1%}"
    )
    nums_ja = (
        f"オンラインの損失 {online:.4g}、全バッチ {full:.4g}（比 {ratio:.3g}）、"
        f"バッチを大きくしたときの最大の損失低下 {max(worst_drop, 0.0):.1%}"
    )
    if supports:
        en = (
            f"The claim showed {setting_en}: {nums_en}, so online SGD made the most "
            "progress per example."
        )
        ja = (
            f"{setting_ja}、主張は確認された: {nums_ja}。"
            "事例あたりではオンライン SGD が最も進んだ。"
        )
    else:
        why_en = (
            "full batch was not clearly worse than online"
            if not margin_ok
            else "the loss fell as the batch grew"
        )
        why_ja = (
            "全バッチがオンラインよりはっきり悪くはならなかった"
            if not margin_ok
            else "バッチを大きくすると損失が下がった"
        )
        en = f"The claim did not show {setting_en}: {why_en} ({nums_en})."
        ja = f"{setting_ja}、主張は示されなかった: {why_ja}（{nums_ja}）。"
    return {"en": en, "ja": ja}


def _figure_loss(
    sizes: list[int],
    losses: list[float],
    lrs: list[float],
    loss_opt: float,
    loss_init: float,
    p: Params,
) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    label = "one epoch, tuned step" if p.budget == "examples" else "equal updates, tuned step"
    floor = 1e-9
    excess = [max(loss - loss_opt, floor) for loss in losses]
    ax.plot(sizes, excess, marker="o", label=label)
    for b, ex, lr in zip(sizes, excess, lrs, strict=True):
        ax.annotate(f"lr={lr:.3g}", (b, ex), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.axhline(loss_init - loss_opt, color="gray", linestyle=":", label="at the start (w = 0)")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("training loss above least-squares optimum")
    ax.set_title("Excess loss after the budget vs batch size")
    ax.legend()
    return figure_png(fig)


def _figure_wall(sizes: list[int], wall: list[float]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(sizes, [w * 1000 for w in wall], marker="s", color="tab:orange", label="one epoch")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(sizes)
    ax.set_xticklabels([str(b) for b in sizes])
    ax.set_xlabel("batch size")
    ax.set_ylabel("wall-clock per epoch (ms, best of 3)")
    ax.set_title("Time per epoch vs batch size (one CPU thread)")
    ax.legend()
    return figure_png(fig)


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("online_vs_minibatch"))
