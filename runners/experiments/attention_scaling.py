"""Why dot-product attention divides its logits by sqrt(d).

Queries and keys with independent unit-variance components give logits q.k whose
variance is d. For each d in the sweep we draw a few hundred queries, each with its
own set of keys, and measure the logit variance, the softmax entropy and the norm of the
softmax's Jacobian (the factor every gradient through the attention weights is
multiplied by), with the logits left as they are and divided by sqrt(d).
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import torch

from runners.labels import num, ratio_phrase
from runners.result import Result, Text, figures_in_each_language
from runners.specs.attention_scaling import SATURATION_FACTOR, STEADY_TOL, VAR_TOL, Params

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

QUERY_CHUNK = 32


def _softmax_stats(logits: torch.Tensor) -> tuple[float, float, float]:
    """Mean entropy (nats), mean Frobenius norm of the softmax Jacobian, mean max weight."""
    logp = torch.log_softmax(logits, dim=-1)
    prob = logp.exp()
    entropy = -(prob * logp).sum(-1)
    # Jacobian J = diag(p) - p p^T;  ||J||_F^2 = sum p^2 - 2 sum p^3 + (sum p^2)^2
    s2 = (prob**2).sum(-1)
    s3 = (prob**3).sum(-1)
    jac = (s2 - 2 * s3 + s2**2).clamp_min(0).sqrt()
    return entropy.mean().item(), jac.mean().item(), prob.max(-1).values.mean().item()


def run(params: Params, seed: int) -> Result:
    torch.set_num_threads(1)
    p = params
    dims = sorted(set(p.dims))
    gen = torch.Generator().manual_seed(seed)
    arms: dict[str, dict[str, list[float]]] = {"unscaled": {}, "scaled": {}}
    for name in arms:
        arms[name] = {"var": [], "var_over_d": [], "entropy": [], "grad": [], "max_weight": []}
    for d in dims:
        # Each query attends over its own independent set of keys (one sequence each),
        # processed in chunks to bound memory.
        chunks = []
        for start in range(0, p.n_queries, QUERY_CHUNK):
            nq = min(QUERY_CHUNK, p.n_queries - start)
            q = torch.randn(nq, 1, d, generator=gen)
            k = torch.randn(nq, p.n_keys, d, generator=gen)
            chunks.append((q @ k.transpose(1, 2)).squeeze(1).double())
        raw = torch.cat(chunks)
        for name, logits in (("unscaled", raw), ("scaled", raw / math.sqrt(d))):
            a = arms[name]
            var = logits.var().item()
            ent, grad, mx = _softmax_stats(logits)
            a["var"].append(var)
            a["var_over_d"].append(var / d)
            a["entropy"].append(ent)
            a["grad"].append(grad)
            a["max_weight"].append(mx)

    tested_name = "scaled" if p.scale else "unscaled"
    other_name = "unscaled" if p.scale else "scaled"
    t, o = arms[tested_name], arms[other_name]

    def saturation(a: dict[str, list[float]]) -> tuple[float, float, float, bool]:
        worst_var = max(abs(v - 1) for v in a["var_over_d"])
        ent_ratio = a["entropy"][-1] / a["entropy"][0]
        grad_ratio = a["grad"][-1] / a["grad"][0]
        shows = (
            worst_var <= VAR_TOL
            and ent_ratio < SATURATION_FACTOR
            and grad_ratio < SATURATION_FACTOR
        )
        return worst_var, ent_ratio, grad_ratio, shows

    def steadiness(a: dict[str, list[float]]) -> tuple[float, float, bool]:
        worst_var = max(abs(v - 1) for v in a["var"])
        ent_spread = max(a["entropy"]) / min(a["entropy"]) - 1
        return worst_var, ent_spread, worst_var <= VAR_TOL and ent_spread <= STEADY_TOL

    t_var_dev, t_ent_ratio, t_grad_ratio, t_saturates = saturation(t)
    s_var_dev, s_ent_spread, s_steady = steadiness(arms["scaled"])
    supports = bool(t_saturates and s_steady)

    metrics: dict[str, float | bool] = {
        "tested_arm_is_scaled": p.scale,
        "tested_max_abs_var_over_d_minus_1": t_var_dev,
        "tested_entropy_ratio_last_to_first": t_ent_ratio,
        "tested_grad_norm_ratio_last_to_first": t_grad_ratio,
        "tested_entropy_at_max_d": t["entropy"][-1],
        "tested_max_weight_at_max_d": t["max_weight"][-1],
        "other_entropy_ratio_last_to_first": o["entropy"][-1] / o["entropy"][0],
        "scaled_max_abs_var_minus_1": s_var_dev,
        "scaled_entropy_spread": s_ent_spread,
        "unscaled_var_over_d_at_max_d": arms["unscaled"]["var_over_d"][-1],
        "scaled_var_at_max_d": arms["scaled"]["var"][-1],
        "tested_saturates": t_saturates,
        "scaled_steady": s_steady,
    }

    finding = _finding(p, dims, arms, t_var_dev, s_var_dev, s_ent_spread)

    series: dict[str, list[float]] = {"dims": [float(d) for d in dims]}
    for name, a in arms.items():
        for key, values in a.items():
            series[f"{name}_{key}"] = values

    def draw(t: Text) -> list[Any]:
        return [_figure_variance(dims, arms, t), _figure_saturation(dims, arms, p, t)]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series=series,
        **figures_in_each_language(draw),
    )


def _pct(x: float) -> str:
    return f"{num(100 * x, 2)}%"


def _ja(phrase: dict[str, str]) -> str:
    """The Japanese of a ``ratio_phrase``, spaced from the kana that follows it."""
    text = phrase["ja"]
    return f"{text} " if text[-1].isascii() else text


def _finding(
    p: Params,
    dims: list[int],
    arms: dict[str, dict[str, list[float]]],
    t_var_dev: float,
    s_var_dev: float,
    s_ent_spread: float,
) -> dict[str, str]:
    """The finding in plain words, in both languages."""
    d0, d1 = dims[0], dims[-1]
    tested = arms["scaled" if p.scale else "unscaled"]
    other = arms["unscaled" if p.scale else "scaled"]

    def change(values: list[float]) -> dict[str, str]:
        return ratio_phrase(values[-1] / values[0], f"that at d = {d0}", f"d = {d0} での値")

    en: list[str] = []
    ja: list[str] = []
    if p.scale:
        en.append(
            f"Divided by √d, the logits q·k / √d kept a variance within {_pct(s_var_dev)} of "
            f"1 at every d from {d0} to {d1}, instead of growing with d."
            if s_var_dev <= VAR_TOL
            else f"Divided by √d, the variance of the logits q·k / √d was up to "
            f"{_pct(s_var_dev)} away from 1 between d = {d0} and d = {d1}."
        )
        ja.append(
            f"√d で割ったロジット q·k / √d の分散は d とともに増えず、d = {d0} から {d1} まで"
            f"のどの d でも 1 との差は {_pct(s_var_dev)} 以内でした。"
            if s_var_dev <= VAR_TOL
            else f"√d で割ったロジット q·k / √d の分散は、d = {d0} から {d1} までの間で"
            f" 1 から最大 {_pct(s_var_dev)} 離れていました。"
        )
    else:
        en.append(
            f"Without scaling, the logits q·k had a variance close to d: variance / d stayed "
            f"within {_pct(t_var_dev)} of 1 at every d from {d0} to {d1}."
            if t_var_dev <= VAR_TOL
            else f"Without scaling, the variance of the logits q·k was not close to d: "
            f"variance / d was up to {_pct(t_var_dev)} away from 1 between d = {d0} and "
            f"d = {d1}."
        )
        ja.append(
            f"スケーリングしないロジット q·k の分散はほぼ d で、d = {d0} から {d1} までのどの d "
            f"でも、分散を d で割った値と 1 との差は {_pct(t_var_dev)} 以内でした。"
            if t_var_dev <= VAR_TOL
            else f"スケーリングしないロジット q·k の分散は d に近くなく、d = {d0} から {d1} "
            f"までの間で、分散を d で割った値は 1 から最大 {_pct(t_var_dev)} 離れていました。"
        )
    ent, grad = change(tested["entropy"]), change(tested["grad"])
    top = num(tested["max_weight"][-1])
    en.append(
        f"For the softmax over {p.n_keys} keys, the entropy at d = {d1} was {ent['en']}, "
        f"and the gradient norm was {grad['en']}; at d = {d1} the largest of the "
        f"{p.n_keys} attention weights was {top} on average."
    )
    ja.append(
        f"{p.n_keys} 個のキーへの softmax のエントロピーは、d = {d1} では {ent['ja']}、"
        f"勾配ノルムは {_ja(grad)}でした。d = {d1} では、{p.n_keys} 個のアテンション重みの"
        f"うち最大のものが平均 {top} でした。"
    )
    steady_var = s_var_dev <= VAR_TOL
    steady_ent = s_ent_spread <= STEADY_TOL
    if p.scale:
        unscaled = change(other["entropy"])
        en.append(f"Without scaling, by contrast, the entropy at d = {d1} was {unscaled['en']}.")
        ja.append(
            f"一方、スケーリングしないと、d = {d1} でのエントロピーは {_ja(unscaled)}でした。"
        )
        if steady_ent:
            en.append("So dividing by √d keeps the softmax from saturating as d grows.")
            ja.append("つまり、√d で割れば、d が大きくなっても softmax は飽和しません。")
        else:
            en.append(
                f"Even divided by √d, though, the entropy changed by {_pct(s_ent_spread)} across d."
            )
            ja.append(
                f"ただし、√d で割っても、d によるエントロピーの変化は {_pct(s_ent_spread)} "
                "ありました。"
            )
        return {"en": " ".join(en), "ja": "".join(ja)}

    if steady_var:
        en.append(f"Divided by √d, the logits kept a variance within {_pct(s_var_dev)} of 1,")
        ja.append(f"√d で割ると、分散と 1 との差は {_pct(s_var_dev)} 以内、")
    else:
        en.append(f"Divided by √d, the logits had a variance up to {_pct(s_var_dev)} away from 1,")
        ja.append(f"√d で割ると、分散は 1 から最大 {_pct(s_var_dev)} 離れ、")
    en.append(f"and the entropy changed by at most {_pct(s_ent_spread)} across d.")
    ja.append(f"d によるエントロピーの変化は {_pct(s_ent_spread)} 以内でした。")
    half = f"{SATURATION_FACTOR:.0%}"
    ent_fell = tested["entropy"][-1] / tested["entropy"][0] < SATURATION_FACTOR
    grad_fell = tested["grad"][-1] / tested["grad"][0] < SATURATION_FACTOR
    if ent_fell and grad_fell:
        en.append(
            "So without dividing by √d, larger dimensions make the softmax put nearly all "
            "its weight on one key, and the gradients through it shrink"
            + ("; dividing by √d keeps the entropy steady." if steady_ent else ".")
        )
        ja.append(
            "つまり、√d で割らないと、次元が大きいほど softmax はほぼ一つのキーに重みを集中"
            "させ、そこを通る勾配が小さくなります"
            + ("。√d で割れば、エントロピーは d によらずほぼ一定です。" if steady_ent else "。")
        )
    else:
        if not ent_fell and not grad_fell:
            why_en = "neither the entropy nor the gradient norm"
            why_ja = "エントロピーも勾配ノルムも"
        elif not ent_fell:
            why_en, why_ja = "the entropy", "エントロピーは"
        else:
            why_en, why_ja = "the gradient norm", "勾配ノルムは"
        verb = "fell" if not ent_fell and not grad_fell else "did not fall"
        en.append(
            "So over this range of d, the softmax without scaling did not clearly saturate: "
            f"{why_en} {verb} below {half} of its value at d = {d0}."
        )
        ja.append(
            "つまり、この d の範囲では、スケーリングしなくても softmax ははっきりとは飽和し"
            f"ませんでした。{why_ja} d = {d0} での値の {half} 未満には下がっていません。"
        )
    return {"en": " ".join(en), "ja": "".join(ja)}


def _figure_variance(dims: list[int], arms: dict[str, dict[str, list[float]]], t: Text) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(
        dims,
        arms["unscaled"]["var"],
        "o-",
        label=t("without scaling: q·k", "スケーリングなし: q·k"),
    )
    ax.plot(
        dims,
        arms["scaled"]["var"],
        "s-",
        label=t("divided by √d: q·k / √d", "√d で割る: q·k / √d"),
    )
    # The references are drawn over the data (the unscaled points lie on variance = d).
    ax.plot(
        dims,
        dims,
        "--",
        color="black",
        linewidth=1.2,
        zorder=3,
        label=t("variance = d", "分散 = d"),
    )
    ax.axhline(
        1.0,
        color="black",
        linestyle=":",
        linewidth=1.2,
        zorder=3,
        label=t("variance = 1", "分散 = 1"),
    )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel(t("dimension d", "次元 d"))
    ax.set_ylabel(t("logit variance", "ロジットの分散"))
    ax.set_title(t("Logit variance vs dimension", "次元とロジットの分散"))
    ax.legend()
    return fig


def _figure_saturation(
    dims: list[int], arms: dict[str, dict[str, list[float]]], p: Params, t: Text
) -> Any:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 4))
    names = {
        "unscaled": t("without scaling", "スケーリングなし"),
        "scaled": t("divided by √d", "√d で割る"),
    }
    for name, marker in (("unscaled", "o-"), ("scaled", "s-")):
        ax1.plot(dims, arms[name]["entropy"], marker, label=names[name])
        ax2.plot(dims, arms[name]["grad"], marker, label=names[name])
    ax1.axhline(
        math.log(p.n_keys),
        color="gray",
        linestyle="--",
        label=t(f"uniform weights: log {p.n_keys}", f"一様な重み: log {p.n_keys}"),
    )
    for ax, ylabel in (
        (ax1, t("softmax entropy (nats)", "softmax のエントロピー（ナット）")),
        (ax2, t("softmax Jacobian norm", "softmax のヤコビアンのノルム")),
    ):
        ax.set_xscale("log", base=2)
        ax.set_xlabel(t("dimension d", "次元 d"))
        ax.set_ylabel(ylabel)
        ax.legend()
    ax1.set_title(t("Entropy", "エントロピー"))
    ax2.set_title(t("Gradient norm", "勾配ノルム"))
    fig.suptitle(
        t(
            f"Softmax over {p.n_keys} keys: saturation without scaling",
            f"{p.n_keys} 個のキーへの softmax: スケーリングしないと飽和する",
        )
    )
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("attention_scaling"))
