"""Why dot-product attention divides its logits by sqrt(d).

Queries and keys with independent unit-variance components give logits q.k whose
variance is d. For each d in the sweep we draw a few hundred queries, each with its
own set of keys, and measure the logit variance, the softmax entropy and the norm of the
softmax's Jacobian (the factor every gradient through the attention weights is
multiplied by), with the logits left as they are and divided by sqrt(d).
"""

from __future__ import annotations

import math

import matplotlib
import torch

from runners.result import Result, figure_png
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

    d0, d1 = dims[0], dims[-1]
    verdict_en = "so the claim showed" if supports else "so the claim did not show here"
    verdict_ja = "主張が示された" if supports else "この設定では主張は示されなかった"
    arm_en = "logits scaled by 1/sqrt(d)" if p.scale else "unscaled logits"
    arm_ja = "1/sqrt(d) でスケーリングした" if p.scale else "スケーリングしない"
    finding = {
        "en": (
            f"For the {arm_en} under test, variance/d stayed within {t_var_dev:.1%} of 1 and, "
            f"from d={d0} to d={d1}, the softmax entropy fell to {t_ent_ratio:.2f} and the "
            f"gradient norm to {t_grad_ratio:.2f} of their starting values, while scaled "
            f"logits kept variance within {s_var_dev:.1%} of 1 and entropy within "
            f"{s_ent_spread:.1%}, {verdict_en}."
        ),
        "ja": (
            f"{arm_ja}ロジットでは 分散/d と 1 との差は最大 {t_var_dev:.1%} で、d={d0} から "
            f"d={d1} までに softmax のエントロピーは初めの {t_ent_ratio:.2f} 倍、勾配ノルムは "
            f"{t_grad_ratio:.2f} 倍になった。スケーリングしたロジットの分散と 1 との差は最大 "
            f"{s_var_dev:.1%}、エントロピーの変動は {s_ent_spread:.1%}。{verdict_ja}。"
        ),
    }

    series: dict[str, list[float]] = {"dims": [float(d) for d in dims]}
    for name, a in arms.items():
        for key, values in a.items():
            series[f"{name}_{key}"] = values

    return Result(
        metrics=metrics,
        figures=[_figure_variance(dims, arms), _figure_saturation(dims, arms, p)],
        finding=finding,
        supports_claim=supports,
        series=series,
    )


def _figure_variance(dims: list[int], arms: dict[str, dict[str, list[float]]]) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(dims, arms["unscaled"]["var"], "o-", label="unscaled q.k")
    ax.plot(dims, arms["scaled"]["var"], "s-", label="scaled q.k / sqrt(d)")
    # The references are drawn over the data (the unscaled points lie on variance = d).
    ax.plot(dims, dims, "--", color="black", linewidth=1.2, zorder=3, label="variance = d")
    ax.axhline(1.0, color="black", linestyle=":", linewidth=1.2, zorder=3, label="variance = 1")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("dimension d")
    ax.set_ylabel("logit variance")
    ax.set_title("Logit variance vs dimension")
    ax.legend()
    return figure_png(fig)


def _figure_saturation(
    dims: list[int], arms: dict[str, dict[str, list[float]]], p: Params
) -> bytes:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7, 4))
    for name, marker in (("unscaled", "o-"), ("scaled", "s-")):
        ax1.plot(dims, arms[name]["entropy"], marker, label=name)
        ax2.plot(dims, arms[name]["grad"], marker, label=name)
    ax1.axhline(math.log(p.n_keys), color="gray", linestyle="--", label="uniform: log(n_keys)")
    for ax, ylabel in ((ax1, "softmax entropy (nats)"), (ax2, "softmax Jacobian norm")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("dimension d")
        ax.set_ylabel(ylabel)
        ax.legend()
    ax1.set_title("Entropy")
    ax2.set_title("Gradient norm")
    fig.suptitle(f"Softmax over {p.n_keys} keys: saturation without scaling")
    fig.tight_layout()
    return figure_png(fig)


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("attention_scaling"))
