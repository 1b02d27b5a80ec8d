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
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from runners.labels import num  # noqa: E402
from runners.result import Result, Text, figures_in_each_language  # noqa: E402
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

    finding = _finding(widths, shares, grad_rel, worst_drop, several, widest_ok, grad_ok, p)
    series: dict[str, list[float]] = {
        "widths": [float(w) for w in widths],
        "success_share": shares,
    }
    for w in widths:
        series[f"median_loss_curve_width_{w}"] = curves[w]

    def draw(t: Text) -> list[Any]:
        return [_figure_share(widths, shares, p, t), _figure_losses(widths, finals, p, t)]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series=series,
        **figures_in_each_language(draw),
    )


def _percent(share: float) -> str:
    return f"{num(100 * share)}%"


def _finding(
    widths: list[int],
    shares: list[float],
    grad_rel: float,
    worst_drop: float,
    several: bool,
    widest_ok: bool,
    grad_ok: bool,
    p: Params,
) -> dict[str, str]:
    thr = num(p.success_loss)
    lr = num(p.learning_rate)
    if p.optimizer == "gd":
        method_en, method_ja = (
            f"plain gradient descent, learning rate {lr}",
            f"通常の勾配降下法、学習率 {lr}",
        )
    else:
        method_en, method_ja = f"Adam, learning rate {lr}", f"Adam、学習率 {lr}"
    act_en, act_ja = ("tanh", " tanh ") if p.activation == "tanh" else ("sigmoid", "シグモイド")
    where_en = "At each hidden width" if several else f"At hidden width {widths[0]}"
    where_ja = "隠れ層の幅ごとに" if several else f"隠れ層の幅 {widths[0]} で"
    setup_en = (
        f"{where_en}, {p.n_inits} networks with {act_en} hidden units were trained on XOR "
        f"from different random starts for {p.steps} steps ({method_en}); a start counted "
        f"as a success if its final loss fell below {thr}."
    )
    setup_ja = (
        f"{where_ja}、活性化関数が{act_ja}のネットワーク {p.n_inits} 個を、"
        f"それぞれ異なるランダムな初期値から XOR で {p.steps} ステップ学習させました"
        f"（{method_ja}）。最終損失が {thr} を下回ったものを成功と数えています。"
    )
    each_en = [f"{_percent(s)} at width {w}" for w, s in zip(widths, shares, strict=True)]
    pairs_en = each_en[0] if len(each_en) == 1 else f"{', '.join(each_en[:-1])} and {each_en[-1]}"
    pairs_ja = "、".join(f"幅 {w} で {_percent(s)}" for w, s in zip(widths, shares, strict=True))
    gain = shares[-1] - shares[0]
    gap = num(grad_rel)
    if grad_ok:
        grad_en = (
            "The hand-written backprop gradients matched finite differences (largest "
            f"relative gap {gap})."
        )
        grad_ja = f"手で書いた誤差逆伝播の勾配は有限差分の勾配と一致しました（最大相対差 {gap}）。"
    else:
        grad_en = (
            "The hand-written backprop gradients differed from finite differences by up to "
            f"{gap} relative to the largest gradient, more than rounding explains."
        )
        grad_ja = (
            f"手で書いた誤差逆伝播の勾配は有限差分の勾配と最大 {gap}（相対差）ずれており、"
            "丸め誤差では説明できない大きさでした。"
        )

    if not several:
        result_en = (
            f"Only one width was run, so nothing can be compared across widths: "
            f"{_percent(shares[0])} of the starts succeeded at width {widths[0]}."
        )
        result_ja = (
            f"幅を 1 種類しか試していないため、幅どうしを比べることはできません。"
            f"幅 {widths[0]} では初期値の {_percent(shares[0])} が成功しました。"
        )
        meaning_en = "To see whether width helps, run at least two widths."
        meaning_ja = "幅の効果を見るには、2 種類以上の幅を試してください。"
    elif not grad_ok:
        result_en = f"The share of starts that succeeded was {pairs_en}."
        result_ja = f"成功した初期値の割合は、{pairs_ja}でした。"
        meaning_en = "So the gradients used for training are not trustworthy at these settings."
        meaning_ja = "この設定では、学習に使った勾配を信頼できないということです。"
    elif not widest_ok:
        result_en = (
            f"The share of starts that succeeded was {pairs_en}: even the widest network "
            f"succeeded from only {_percent(shares[-1])} of its starts, short of "
            f"{_percent(MIN_WIDEST_SHARE)}."
        )
        result_ja = (
            f"成功した初期値の割合は、{pairs_ja}でした。最も広いネットワークでも成功は"
            f"初期値の {_percent(shares[-1])} にとどまり、"
            f"{_percent(MIN_WIDEST_SHARE)} に届きませんでした。"
        )
        meaning_en = "So at these settings even the widest network did not fit XOR reliably."
        meaning_ja = (
            "この設定では、最も広いネットワークでも XOR を確実には学習できなかったということです。"
        )
    elif worst_drop > MONOTONE_TOLERANCE:
        result_en = (
            f"The share of starts that succeeded was {pairs_en}: a wider network did worse "
            f"than a narrower one, by up to {num(100 * worst_drop)} percentage points."
        )
        result_ja = (
            f"成功した初期値の割合は、{pairs_ja}でした。幅を広げたのに成功の割合が"
            f"最大 {num(100 * worst_drop)} ポイント下がったところがあります。"
        )
        meaning_en = "So at these settings the share did not rise steadily with width."
        meaning_ja = "この設定では、成功の割合は幅とともに着実に上がるわけではないということです。"
    elif gain < MIN_SHARE_GAIN:
        if gain > 0:
            rise_en = (
                f"a rise of only {num(100 * gain)} percentage points from the narrowest to "
                "the widest network"
            )
            rise_ja = (
                f"最も狭い幅から最も広い幅への上昇は {num(100 * gain)} ポイントにとどまりました"
            )
        else:
            rise_en = "so the widest network did no better than the narrowest"
            rise_ja = "最も広いネットワークは最も狭いものより成功しやすくはありませんでした"
        result_en = f"The share of starts that succeeded was {pairs_en}, {rise_en}."
        result_ja = f"成功した初期値の割合は、{pairs_ja}で、{rise_ja}。"
        meaning_en = (
            "So at these settings even the narrowest network rarely got stuck, and width "
            "made little difference."
        )
        meaning_ja = (
            "この設定では、最も狭いネットワークでもあまり止まらず、幅による違いは"
            "小さいということです。"
        )
    else:
        result_en = f"The runs showed the share of successes rising with width: {pairs_en}."
        result_ja = f"成功した初期値の割合は幅とともに上がりました（{pairs_ja}）。"
        meaning_en = (
            "So the wider networks got stuck in a poor local minimum far less often than the "
            "narrowest one."
        )
        meaning_ja = (
            "広いネットワークほど、質の悪い局所解で止まることがずっと少なかったということです。"
        )
    return {
        "en": f"{setup_en} {result_en} {grad_en} {meaning_en}",
        "ja": f"{setup_ja}{result_ja}{grad_ja}{meaning_ja}",
    }


def _figure_share(widths: list[int], shares: list[float], p: Params, t: Text) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    n = p.n_inits
    thr = num(p.success_loss)
    err = [1.96 * math.sqrt(max(s * (1 - s), 1e-12) / n) for s in shares]
    ax.errorbar(
        widths,
        shares,
        yerr=err,
        marker="o",
        capsize=4,
        label=t("share of starts that succeeded (95% CI)", "成功した初期値の割合（95% 信頼区間）"),
    )
    ax.axhline(
        MIN_WIDEST_SHARE,
        color="gray",
        linestyle="--",
        label=t(f"{MIN_WIDEST_SHARE:.0%} of starts", f"初期値の {MIN_WIDEST_SHARE:.0%}"),
    )
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths)
    ax.set_xticklabels([str(w) for w in widths])
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlabel(t("hidden-layer width", "隠れ層の幅"))
    ax.set_ylabel(t(f"share of starts with final loss < {thr}", f"最終損失が {thr} 未満の割合"))
    ax.set_title(
        t(
            f"XOR: share of successful starts by width ({n} starts each)",
            f"XOR: 幅ごとの成功の割合（各 {n} 個の初期値）",
        )
    )
    # Below the axes, so that it never covers the points.
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
    return fig


def _figure_losses(widths: list[int], finals: dict[int, np.ndarray], p: Params, t: Text) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.logspace(-5, 0.5, 40)
    for w in widths:
        vals = np.clip(np.nan_to_num(finals[w], posinf=3.0), 1e-5, 3.0)
        ax.hist(
            vals,
            bins=bins.tolist(),
            histtype="step",
            linewidth=1.5,
            label=t(f"width {w}", f"幅 {w}"),
        )
    ax.axvline(
        p.success_loss, color="gray", linestyle="--", label=t("success threshold", "成功のしきい値")
    )
    ax.set_xscale("log")
    ax.set_xlabel(t("final mean cross-entropy", "最終的な平均交差エントロピー"))
    ax.set_ylabel(t("number of starts", "初期値の数"))
    ax.set_title(
        t(
            f"XOR: final loss of each start ({p.n_inits} starts per width)",
            f"XOR: 初期値ごとの最終損失（幅ごとに {p.n_inits} 個）",
        )
    )
    # Below the axes, so that it never covers the bars.
    ax.legend(
        loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=min(len(widths) + 1, 5), fontsize=8
    )
    return fig


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("local_minima_width"))
