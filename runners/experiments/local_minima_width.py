"""XOR from many random inits: wider hidden layers get stuck in poor minima less often.

Entry: ``backprop-controversy``. A 2-H-1 network (tanh or sigmoid hidden units,
sigmoid output, cross-entropy loss) is trained on the four XOR points with
full-batch gradient descent (or Adam) from a few hundred random inits per hidden
width. All inits of one width are trained at once as one batched tensor
(``torch.bmm``), with the backward pass written out by hand as the chain rule.
The metric is the share of inits whose final loss is near zero. A separate check
compares those hand-written backprop gradients with central finite differences.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from runners.result import Result, figure_png  # noqa: E402
from runners.specs.local_minima_width import Params

# Thresholds behind ``supports_claim``.
MIN_SHARE_GAIN = 0.15  # widest share minus narrowest share
MIN_WIDEST_SHARE = 0.95
MONOTONE_TOLERANCE = 0.05  # a wider net may lose at most this much share to a narrower one
GRADCHECK_TOLERANCE = 1e-6
LOSS_CAP = 100.0  # loss recorded for an init whose training diverged


_X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
_Y = [0.0, 1.0, 1.0, 0.0]


def _init(n: int, width: int, gen: torch.Generator, dtype: torch.dtype) -> list[torch.Tensor]:
    """Random weights for ``n`` independent 2-width-1 networks."""
    w1 = torch.randn(n, width, 2, generator=gen, dtype=dtype)
    b1 = torch.randn(n, width, 1, generator=gen, dtype=dtype)
    w2 = torch.randn(n, 1, width, generator=gen, dtype=dtype) / math.sqrt(width)
    b2 = torch.zeros(n, 1, 1, dtype=dtype)
    return [w1, b1, w2, b2]


def _forward_backward(
    ps: list[torch.Tensor], xt: torch.Tensor, y: torch.Tensor, activation: str
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Per-network mean cross-entropy and its gradients, by the chain rule.

    ``xt`` is (n, 2, 4) inputs as columns, ``y`` is (4,) targets.
    """
    w1, b1, w2, b2 = ps
    a = torch.bmm(w1, xt) + b1  # (n, H, 4)
    if activation == "tanh":
        h = torch.tanh(a)
        dh_da = 1.0 - h * h
    else:
        h = torch.sigmoid(a)
        dh_da = h * (1.0 - h)
    z = torch.bmm(w2, h) + b2  # (n, 1, 4)
    # Cross-entropy with logits, averaged over the four points.
    loss = (torch.nn.functional.softplus(z) - y * z).mean(dim=(1, 2))
    dz = (torch.sigmoid(z) - y) / y.numel()  # (n, 1, 4)
    gw2 = torch.bmm(dz, h.transpose(1, 2))
    gb2 = dz.sum(dim=2, keepdim=True)
    da = torch.bmm(w2.transpose(1, 2), dz) * dh_da  # (n, H, 4)
    gw1 = torch.bmm(da, xt.transpose(1, 2))
    gb1 = da.sum(dim=2, keepdim=True)
    return loss, [gw1, gb1, gw2, gb2]


def _train(
    width: int, p: Params, gen: torch.Generator, xt: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, list[float]]:
    """Train ``p.n_inits`` nets of one width; final losses and the median loss curve."""
    ps = _init(p.n_inits, width, gen, torch.float32)
    xt = xt.expand(p.n_inits, 2, 4)
    m = [torch.zeros_like(t) for t in ps]
    v = [torch.zeros_like(t) for t in ps]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    curve: list[float] = []
    every = max(1, p.steps // 100)
    for step in range(1, p.steps + 1):
        loss, grads = _forward_backward(ps, xt, y, p.activation)
        if step % every == 1 or every == 1:
            curve.append(float(_capped(loss).median()))
        for i, g in enumerate(grads):
            if p.optimizer == "gd":
                ps[i] -= p.learning_rate * g
            else:
                m[i].mul_(beta1).add_(g, alpha=1 - beta1)
                v[i].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                mhat = m[i] / (1 - beta1**step)
                vhat = v[i] / (1 - beta2**step)
                ps[i] -= p.learning_rate * mhat / (vhat.sqrt() + eps)
    final, _ = _forward_backward(ps, xt, y, p.activation)
    return _capped(final), curve


def _capped(loss: torch.Tensor) -> torch.Tensor:
    """Losses with non-finite values (a diverged init) replaced by ``LOSS_CAP``."""
    return torch.nan_to_num(loss, nan=LOSS_CAP, posinf=LOSS_CAP).clamp(max=LOSS_CAP)


def _gradcheck(width: int, activation: str, gen: torch.Generator) -> float:
    """Largest |backprop - finite difference|, relative to the largest gradient component."""
    dtype = torch.float64
    ps = _init(1, width, gen, dtype)
    xt = torch.tensor(_X, dtype=dtype).T.unsqueeze(0)
    y = torch.tensor(_Y, dtype=dtype)
    _, grads = _forward_backward(ps, xt, y, activation)
    h = 1e-6
    worst_diff = 0.0
    largest = 0.0
    for i, t in enumerate(ps):
        flat = t.view(-1)
        gflat = grads[i].reshape(-1)
        for j in range(flat.numel()):
            old = float(flat[j])
            flat[j] = old + h
            up = float(_forward_backward(ps, xt, y, activation)[0][0])
            flat[j] = old - h
            down = float(_forward_backward(ps, xt, y, activation)[0][0])
            flat[j] = old
            fd = (up - down) / (2 * h)
            bp = float(gflat[j])
            worst_diff = max(worst_diff, abs(bp - fd))
            largest = max(largest, abs(bp))
    # Relative to the largest gradient component, so tiny components do not
    # turn rounding noise into a large ratio.
    return worst_diff / max(largest, 1e-12)


def run(params: Params, seed: int) -> Result:
    """Train every width from ``params.n_inits`` random inits and compare success shares."""
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    p = params
    gen = torch.Generator().manual_seed(seed)
    widths = sorted(set(p.widths))
    xt = torch.tensor(_X).T.unsqueeze(0)
    y = torch.tensor(_Y)

    shares: list[float] = []
    medians: list[float] = []
    finals: dict[int, np.ndarray] = {}
    curves: dict[int, list[float]] = {}
    for w in widths:
        final, curve = _train(w, p, gen, xt, y)
        finals[w] = final.numpy().astype(float)
        curves[w] = curve
        shares.append(int((final < p.success_loss).sum()) / p.n_inits)
        medians.append(float(final.median()))
    grad_rel = _gradcheck(max(widths), p.activation, gen)

    narrow, wide = shares[0], shares[-1]
    gain = wide - narrow
    worst_drop = max((shares[i] - shares[i + 1] for i in range(len(shares) - 1)), default=0.0)
    several = len(widths) >= 2
    rises = several and gain >= MIN_SHARE_GAIN and worst_drop <= MONOTONE_TOLERANCE
    widest_ok = wide >= MIN_WIDEST_SHARE
    grad_ok = grad_rel <= GRADCHECK_TOLERANCE
    supports = bool(rises and widest_ok and grad_ok)

    metrics: dict[str, int | float | bool] = {}
    for w, s, med in zip(widths, shares, medians, strict=True):
        metrics[f"success_share_width_{w}"] = s
        metrics[f"median_final_loss_width_{w}"] = med
    metrics.update(
        {
            "narrowest_width": widths[0],
            "widest_width": widths[-1],
            "success_share_narrowest": narrow,
            "success_share_widest": wide,
            "success_share_gain": gain,
            "largest_share_drop_with_width": max(worst_drop, 0.0),
            "gradcheck_max_rel_diff": grad_rel,
            "n_inits_per_width": p.n_inits,
        }
    )

    finding = _finding(widths, shares, grad_rel, supports, several, widest_ok, grad_ok, p)
    series: dict[str, list[float]] = {
        "widths": [float(w) for w in widths],
        "success_share": shares,
    }
    for w in widths:
        series[f"median_loss_curve_width_{w}"] = curves[w]
    figures = [_figure_share(widths, shares, p), _figure_losses(widths, finals, p)]
    return Result(
        metrics=metrics, figures=figures, finding=finding, supports_claim=supports, series=series
    )


def _finding(
    widths: list[int],
    shares: list[float],
    grad_rel: float,
    supports: bool,
    several: bool,
    widest_ok: bool,
    grad_ok: bool,
    p: Params,
) -> dict[str, str]:
    pairs = ", ".join(f"{w}: {s:.1%}" for w, s in zip(widths, shares, strict=True))
    if supports:
        en = (
            f"The claim showed: the share of {p.n_inits} inits reaching loss < {p.success_loss:g} "
            f"rose with width ({pairs}), and backprop matched finite differences "
            f"(max relative difference {grad_rel:.1e})."
        )
        ja = (
            f"主張は確認された: 損失 < {p.success_loss:g} に達した初期値の割合"
            f"（各幅 {p.n_inits} 個）は幅とともに上がり（{pairs}）、誤差逆伝播の勾配は"
            f"有限差分と一致した（最大相対差 {grad_rel:.1e}）。"
        )
    else:
        if not several:
            why_en = "only one width was run, so a rise with width cannot show"
            why_ja = "幅が 1 種類だけなので、幅とともに上がるかは示せない"
        elif not grad_ok:
            why_en = f"backprop and finite differences differed by {grad_rel:.1e}"
            why_ja = f"誤差逆伝播と有限差分の差が {grad_rel:.1e} あった"
        elif not widest_ok:
            why_en = f"the widest net succeeded in only {shares[-1]:.1%} of inits"
            why_ja = f"最も広いネットワークの成功率が {shares[-1]:.1%} にとどまった"
        else:
            why_en = "the success share did not rise clearly with width"
            why_ja = "成功率が幅とともにはっきり上がらなかった"
        en = (
            f"The claim did not show here: {why_en} (success share by width: {pairs}; "
            f"gradient check max relative difference {grad_rel:.1e})."
        )
        ja = (
            f"この設定では主張は示されなかった: {why_ja}（幅ごとの成功率: {pairs}、"
            f"勾配チェックの最大相対差 {grad_rel:.1e}）。"
        )
    return {"en": en, "ja": ja}


def _figure_share(widths: list[int], shares: list[float], p: Params) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    n = p.n_inits
    err = [1.96 * math.sqrt(max(s * (1 - s), 1e-12) / n) for s in shares]
    ax.errorbar(widths, shares, yerr=err, marker="o", capsize=4, label="success share (95% CI)")
    ax.axhline(MIN_WIDEST_SHARE, color="gray", linestyle="--", label=f"{MIN_WIDEST_SHARE:.0%}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths)
    ax.set_xticklabels([str(w) for w in widths])
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel("hidden width")
    ax.set_ylabel(f"share of inits with loss < {p.success_loss:g}")
    ax.set_title(f"XOR: success share vs width ({n} inits each)")
    ax.legend(loc="lower right")
    return figure_png(fig)


def _figure_losses(widths: list[int], finals: dict[int, np.ndarray], p: Params) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.logspace(-5, 0.5, 40)
    for w in widths:
        vals = np.clip(np.nan_to_num(finals[w], posinf=3.0), 1e-5, 3.0)
        ax.hist(vals, bins=bins.tolist(), histtype="step", linewidth=1.5, label=f"width {w}")
    ax.axvline(p.success_loss, color="gray", linestyle="--", label="success threshold")
    ax.set_xscale("log")
    ax.set_xlabel("final mean cross-entropy")
    ax.set_ylabel("number of inits")
    ax.set_title(f"XOR: final loss per init ({p.n_inits} inits per width)")
    ax.legend(loc="upper center")
    return figure_png(fig)


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("local_minima_width"))
