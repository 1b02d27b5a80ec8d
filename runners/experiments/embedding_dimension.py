"""Validation accuracy against embedding size on a task of known intrinsic dimension.

Inputs live in a 32-dimensional space but are generated from a ``k``-dimensional
latent point (plus small isotropic noise). Each of ``n_classes`` classes is a Gaussian
blob around its own centre in that latent space; the centres are whitened so every
latent direction separates the classes about equally. A classifier whose only path
from input to label is an embedding of size ``m`` (input -> m-dim linear embedding ->
linear class scores) is trained for each ``m`` in the sweep. Accuracy should rise with
``m`` and stop improving once ``m`` reaches ``k``.
"""

from __future__ import annotations

import matplotlib
import torch
from torch import nn

from runners.experiments._optim import Adam
from runners.result import Result, figure_png
from runners.specs.embedding_dimension import SATURATION_TOL, UNDERFIT_GAP, Params

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

INPUT_DIM = 32
NOISE_STD = 0.05
N_VAL = 2000
WITHIN_STD = 0.16  # times sqrt(k): classes about equally hard to separate for every k
LR = 0.03


def _make_task(p: Params, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    k = p.intrinsic_dim
    centres = torch.randn(p.n_classes, k, generator=gen)
    # Whiten the centres so every latent direction separates the classes equally.
    c = centres - centres.mean(0)
    evals, evecs = torch.linalg.eigh(c.T @ c / p.n_classes)
    centres = c @ evecs @ torch.diag(evals.clamp_min(1e-6).rsqrt()) @ evecs.T
    basis, _ = torch.linalg.qr(torch.randn(INPUT_DIM, k, generator=gen))  # orthonormal columns
    n = p.n_train + N_VAL
    labels = torch.randint(0, p.n_classes, (n,), generator=gen)
    z = centres[labels] + WITHIN_STD * k**0.5 * torch.randn(n, k, generator=gen)
    x = z @ basis.T + NOISE_STD * torch.randn(n, INPUT_DIM, generator=gen)
    return x[: p.n_train], labels[: p.n_train], x[p.n_train :], labels[p.n_train :]


def _fit(
    m: int, p: Params, xtr: torch.Tensor, ytr: torch.Tensor, xva: torch.Tensor, yva: torch.Tensor
) -> tuple[float, float]:
    model = nn.Sequential(nn.Linear(INPUT_DIM, m), nn.Linear(m, p.n_classes))
    opt = Adam(list(model.parameters()), lr=LR)
    for _ in range(p.train_steps):
        loss = nn.functional.cross_entropy(model(xtr), ytr)
        loss.backward()
        opt.step()
    with torch.no_grad():
        train_acc = (model(xtr).argmax(1) == ytr).float().mean().item()
        val_acc = (model(xva).argmax(1) == yva).float().mean().item()
    return train_acc, val_acc


def run(params: Params, seed: int) -> Result:
    torch.set_num_threads(1)
    p = params
    k = p.intrinsic_dim
    dims = sorted(set(p.dims))
    gen = torch.Generator().manual_seed(seed)
    xtr, ytr, xva, yva = _make_task(p, gen)
    train_acc: list[float] = []
    val_acc: list[float] = []
    for m in dims:
        torch.manual_seed(seed)
        tr, va = _fit(m, p, xtr, ytr, xva, yva)
        train_acc.append(tr)
        val_acc.append(va)

    best = max(val_acc)
    best_dim = dims[val_acc.index(best)]
    saturation_dim = next(
        m for m, a in zip(dims, val_acc, strict=True) if a >= best - SATURATION_TOL
    )
    at_or_above = [a for m, a in zip(dims, val_acc, strict=True) if m >= k]
    well_below = [a for m, a in zip(dims, val_acc, strict=True) if 2 * m <= k]
    has_both = bool(at_or_above) and bool(well_below)
    worst_at_or_above = min(at_or_above, default=0.0)
    best_well_below = max(well_below, default=0.0)
    saturated = bool(at_or_above) and best - worst_at_or_above <= SATURATION_TOL
    underfits = bool(well_below) and best - best_well_below >= UNDERFIT_GAP
    supports = bool(has_both and saturated and underfits)

    metrics: dict[str, float | int | bool] = {
        "intrinsic_dim": k,
        "best_val_acc": best,
        "best_dim": best_dim,
        "saturation_dim": saturation_dim,
        "sweep_covers_both_sides": has_both,
        "saturates_by_k": saturated,
        "small_dims_underfit": underfits,
    }
    if at_or_above:  # only defined when the sweep reaches k
        metrics["min_val_acc_dims_at_least_k"] = worst_at_or_above
        metrics["shortfall_dims_at_least_k"] = best - worst_at_or_above
    if well_below:
        metrics["max_val_acc_dims_at_most_half_k"] = best_well_below
        metrics["gap_dims_at_most_half_k"] = best - best_well_below

    if not has_both:
        why_en = f"the sweep {dims} does not include both a dimension >= {k} and one <= {k / 2:g}"
        why_ja = f"掃引 {dims} に {k} 以上と {k / 2:g} 以下の両方の次元が含まれていない"
        finding = {
            "en": (
                f"Best validation accuracy {best:.3f} at embedding dimension {best_dim} "
                f"(within {SATURATION_TOL:.0%} from dimension {saturation_dim}), but "
                f"{why_en}, so the claim did not show here."
            ),
            "ja": (
                f"最良の検証精度は埋め込み次元 {best_dim} の {best:.3f}（次元 {saturation_dim} "
                f"から {SATURATION_TOL:.0%} 以内）だが、{why_ja}ため、"
                "この設定では主張は示されなかった。"
            ),
        }
    else:
        verdict_en = "so the claim showed" if supports else "so the claim did not show here"
        verdict_ja = "主張が示された" if supports else "この設定では主張は示されなかった"
        finding = {
            "en": (
                f"With intrinsic dimension {k}, validation accuracy reached {best:.3f} "
                f"(dimension {best_dim}) and came within {SATURATION_TOL:.0%} of it from "
                f"dimension {saturation_dim}; dimensions >= {k} were at most "
                f"{best - worst_at_or_above:.3f} below the best and dimensions <= {k / 2:g} "
                f"at least {best - best_well_below:.3f} below, {verdict_en}."
            ),
            "ja": (
                f"内在次元 {k} で検証精度は最高 {best:.3f}（次元 {best_dim}）、次元 "
                f"{saturation_dim} から最良の {SATURATION_TOL:.0%} 以内に達した。"
                f"{k} 以上の次元は最良より最大 {best - worst_at_or_above:.3f} 低く、"
                f"{k / 2:g} 以下の次元は少なくとも {best - best_well_below:.3f} 低い。"
                f"{verdict_ja}。"
            ),
        }

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(dims, val_acc, "o-", label="validation accuracy")
    ax.plot(dims, train_acc, "s--", alpha=0.6, label="training accuracy")
    ax.axvline(k, color="gray", linestyle=":", label=f"intrinsic dimension k = {k}")
    ax.axhspan(best - SATURATION_TOL, best, color="green", alpha=0.12, label="within tolerance")
    ax.set_xscale("log", base=2)
    ax.set_xticks(dims, [str(m) for m in dims])
    ax.set_xlabel("embedding dimension m")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy vs embedding size ({p.n_classes} classes, k = {k})")
    ax.legend()
    return Result(
        metrics=metrics,
        figures=[figure_png(fig)],
        finding=finding,
        supports_claim=supports,
        series={
            "dims": [float(m) for m in dims],
            "val_acc": val_acc,
            "train_acc": train_acc,
        },
    )


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("embedding_dimension"))
