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

from typing import Any

import matplotlib
import torch
from torch import nn

from runners.experiments._optim import Adam
from runners.labels import num
from runners.result import Result, Text, figures_in_each_language
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

    finding = _finding(p, dims, val_acc, best, best_dim, saturation_dim, saturated, underfits)

    def draw(t: Text) -> list[Any]:
        tol = f"{SATURATION_TOL:g}"
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(dims, val_acc, "o-", label=t("validation accuracy", "検証精度"))
        ax.plot(dims, train_acc, "s--", alpha=0.6, label=t("training accuracy", "訓練精度"))
        ax.axvline(
            k,
            color="gray",
            linestyle=":",
            label=t(f"intrinsic dimension k = {k}", f"内在次元 k = {k}"),
        )
        ax.axhspan(
            best - SATURATION_TOL,
            best,
            color="green",
            alpha=0.12,
            label=t(f"within {tol} of the best", f"最高から {tol} 以内"),
        )
        ax.set_xscale("log", base=2)
        ax.set_xticks(dims, [str(m) for m in dims])
        ax.set_xlabel(t("embedding dimension m", "埋め込み次元 m"))
        ax.set_ylabel(t("accuracy", "精度"))
        ax.set_title(
            t(
                f"Accuracy vs embedding size ({p.n_classes} classes, k = {k})",
                f"埋め込み次元と精度（{p.n_classes} クラス、k = {k}）",
            )
        )
        # Below the axes, so that it covers neither the points nor the k line or the band.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
        return [fig]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series={
            "dims": [float(m) for m in dims],
            "val_acc": val_acc,
            "train_acc": train_acc,
        },
        **figures_in_each_language(draw),
    )


def _sizes(dims: list[int], sep: str, last: str) -> str:
    return sep.join(str(m) for m in dims[:-1]) + f"{last}{dims[-1]}"


def _finding(
    p: Params,
    dims: list[int],
    val_acc: list[float],
    best: float,
    best_dim: int,
    saturation_dim: int,
    saturated: bool,
    underfits: bool,
) -> dict[str, str]:
    """The finding in plain words, in both languages."""
    k = p.intrinsic_dim
    half = f"{k / 2:g}"
    tol = f"{SATURATION_TOL:g}"
    at_or_above = [(a, m) for m, a in zip(dims, val_acc, strict=True) if m >= k]
    well_below = [a for m, a in zip(dims, val_acc, strict=True) if 2 * m <= k]
    en = [
        f"The inputs have intrinsic dimension k = {k}. A model was trained at each "
        f"embedding dimension m = {_sizes(dims, ', ', ' and ')} and its accuracy measured on "
        f"{N_VAL} examples it was not trained on. The best validation accuracy was "
        f"{num(best)}, at m = {best_dim}"
    ]
    ja = [
        f"入力の内在次元は k = {k} です。埋め込み次元 m = {_sizes(dims, '、', '、')} のそれぞれで"
        f"モデルを訓練し、訓練に使っていない {N_VAL} 件で精度を測りました。検証精度の最高は "
        f"m = {best_dim} での {num(best)} "
    ]
    if saturation_dim < best_dim:
        en[-1] += f", and accuracy first came within {tol} of it at m = {saturation_dim}."
        ja[-1] += f"で、最高との差が初めて {tol} 以内に入ったのは m = {saturation_dim} でした。"
    elif best_dim > dims[0]:
        en[-1] += f", and no smaller m came within {tol} of it."
        ja[-1] += f"で、それより小さい m で最高との差が {tol} 以内のものはありませんでした。"
    else:
        en[-1] += "."
        ja[-1] += "でした。"
    if not at_or_above or not well_below:
        if not at_or_above and not well_below:
            en.append(f"But no size tried was k/2 = {half} or less, and none was k = {k} or more")
            ja.append(f"しかし試した次元には k/2 = {half} 以下のものも k = {k} 以上のものもなく")
        elif not at_or_above:
            en.append(f"But no size tried was k = {k} or more")
            ja.append(f"しかし試した次元には k = {k} 以上のものがなく")
        else:
            en.append(f"But no size tried was k/2 = {half} or less")
            ja.append(f"しかし試した次元には k/2 = {half} 以下のものがなく")
        en[-1] += ", so this sweep cannot show whether accuracy stops improving at k."
        ja[-1] += "、この掃引では精度が k で頭打ちになるかどうかは分かりません。"
        return {"en": " ".join(en), "ja": "".join(ja)}

    worst, worst_dim = min(at_or_above)
    shortfall = best - worst
    gap = best - max(well_below)
    if shortfall > 0:
        en.append(f"With m of {k} or more, accuracy was at most {num(shortfall)} below the best;")
        ja.append(f"m が {k} 以上では、精度は最高より最大でも {num(shortfall)} 低いだけでした。")
    else:
        en.append(f"Every m of {k} or more reached the best accuracy;")
        ja.append(f"m が {k} 以上では、どれも最高の精度に達しました。")
    if gap > 0:
        en.append(f"with m of {half} or less, it was at least {num(gap)} below.")
        ja.append(f"一方、m が {half} 以下では少なくとも {num(gap)} 低くなりました。")
    else:
        en.append(f"with m of {half} or less, it already reached the best.")
        ja.append(f"m が {half} 以下でも、すでに最高の精度に達していました。")
    if saturated and underfits:
        en.append(
            "So accuracy climbs until the embedding is as large as the intrinsic dimension "
            "and hardly improves after that."
        )
        ja.append(
            "つまり、精度は埋め込み次元が内在次元に届くまで上がり、それより大きくしても"
            "ほとんど伸びません。"
        )
    if not underfits:
        few = p.n_classes - 1 < k
        en.append(
            "So a smaller embedding was already enough here"
            + (
                f": {p.n_classes} classes can be told apart in {p.n_classes - 1} "
                f"directions, fewer than k = {k}."
                if few
                else "."
            )
        )
        ja.append(
            "つまり、ここではもっと小さい埋め込みで足りました。"
            + (
                f"{p.n_classes} クラスは {p.n_classes - 1} 方向あれば見分けられ、"
                f"k = {k} より少なくて済みます。"
                if few
                else ""
            )
        )
    if not saturated:
        en.append(
            f"Accuracy had not settled by m = {k}: at m = {worst_dim} it was "
            f"{num(shortfall)} below the best, more than {tol}."
        )
        ja.append(
            f"また、m = {k} の時点で精度はまだ落ち着いていませんでした。m = {worst_dim} では"
            f"最高より {num(shortfall)} 低く、{tol} を超えています。"
        )
    return {"en": " ".join(en), "ja": "".join(ja)}


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("embedding_dimension"))
