"""Double descent of minimum-norm least squares on random ReLU features.

``n`` noisy training points come from a linear function of ``input_dim`` Gaussian
inputs. Each model draws ``p`` random ReLU features (scaled by 1/sqrt(p)) and fits the
output weights by least squares: for ``ridge = 0`` the minimum-norm solution (the
pseudo-inverse, which interpolates once p >= n), otherwise ridge regression. The test
error (mean squared error against the noise-free function on fresh inputs) is the
median over several feature draws, for p from n/10 to 10n on a log grid.
"""

from __future__ import annotations

import math
from typing import Any

import matplotlib
import torch

from runners.labels import num, ratio_phrase
from runners.result import Result, Text, figures_in_each_language
from runners.specs.double_descent import PEAK_FACTOR, Params

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

N_TEST = 1000


def _fit_predict(
    feats: torch.Tensor, y: torch.Tensor, test_feats: torch.Tensor, ridge: float
) -> tuple[torch.Tensor, float, float]:
    """Least-squares output weights via the SVD; returns test predictions, train MSE, norm."""
    u, s, vh = torch.linalg.svd(feats, full_matrices=False)
    if ridge > 0:
        filt = s / (s**2 + ridge)
    else:  # pseudo-inverse with the usual cut-off for numerically zero singular values
        cut = s.max() * max(feats.shape) * torch.finfo(feats.dtype).eps
        filt = torch.where(s > cut, 1.0 / s, torch.zeros_like(s))
    w = vh.T @ (filt * (u.T @ y))
    train_mse = ((feats @ w - y) ** 2).mean().item()
    return test_feats @ w, train_mse, w.norm().item()


def run(params: Params, seed: int) -> Result:
    torch.set_num_threads(1)
    p = params
    n, d = p.n_train, p.input_dim
    dt = torch.float64
    gen = torch.Generator().manual_seed(seed)
    teacher = torch.randn(d, generator=gen, dtype=dt) / math.sqrt(d)
    x = torch.randn(n, d, generator=gen, dtype=dt)
    x_test = torch.randn(N_TEST, d, generator=gen, dtype=dt)
    y = x @ teacher + p.noise * torch.randn(n, generator=gen, dtype=dt)
    y_test = x_test @ teacher

    grid = torch.linspace(-1.0, 1.0, p.n_points, dtype=dt).tolist()
    counts = sorted({max(1, round(n * 10**t)) for t in grid} | {n})
    test_err: list[float] = []
    train_err: list[float] = []
    weight_norm: list[float] = []
    for nf in counts:
        errs, trs, norms = [], [], []
        for _ in range(p.n_draws):
            w_in = torch.randn(d, nf, generator=gen, dtype=dt) / math.sqrt(d)
            feats = torch.relu(x @ w_in) / math.sqrt(nf)
            test_feats = torch.relu(x_test @ w_in) / math.sqrt(nf)
            pred, tr, nrm = _fit_predict(feats, y, test_feats, p.ridge)
            errs.append(((pred - y_test) ** 2).mean().item())
            trs.append(tr)
            norms.append(nrm)
        test_err.append(float(torch.tensor(errs).median().item()))
        train_err.append(float(torch.tensor(trs).median().item()))
        weight_norm.append(float(torch.tensor(norms).median().item()))

    peak = max(test_err)
    peak_p = counts[test_err.index(peak)]
    err_left, err_right = test_err[0], test_err[-1]
    ratio_left = peak / err_left
    ratio_right = peak / err_right
    peak_near_n = n / 2 <= peak_p <= 2 * n
    supports = bool(peak_near_n and min(ratio_left, ratio_right) >= PEAK_FACTOR)
    err_at_n = test_err[counts.index(n)]

    metrics: dict[str, float | int | bool] = {
        "peak_test_error": peak,
        "peak_feature_count": peak_p,
        "peak_feature_count_over_n": peak_p / n,
        "test_error_at_p_equal_n": err_at_n,
        "test_error_smallest_p": err_left,
        "test_error_largest_p": err_right,
        "peak_over_smallest_p_error": ratio_left,
        "peak_over_largest_p_error": ratio_right,
        "min_test_error": min(test_err),
        "train_error_largest_p": train_err[-1],
        "peak_near_interpolation_threshold": peak_near_n,
    }

    left = ratio_phrase(ratio_left, f"the error at p = {counts[0]}", f"p = {counts[0]} の誤差")
    right = ratio_phrase(ratio_right, f"the error at p = {counts[-1]}", f"p = {counts[-1]} の誤差")
    setting = {
        "en": f"With ridge {num(p.ridge)} and n = {n} training points",
        "ja": f"リッジ {num(p.ridge)}、訓練点 n = {n} のとき",
    }
    if supports:
        outcome = {
            "en": "a sharp peak at the interpolation threshold.",
            "ja": "補間しきい値にはっきりした山が現れました。",
        }
    elif peak_near_n:
        outcome = {
            "en": f"the error is highest near p = n, but less than {PEAK_FACTOR:g} times "
            "both ends, so there is no sharp peak.",
            "ja": f"誤差は p = n の近くで最大ですが、両端の {PEAK_FACTOR:g} 倍に届かず、"
            "はっきりした山はありません。",
        }
    else:
        outcome = {
            "en": "the highest error is not near p = n, so there is no peak at the "
            "interpolation threshold.",
            "ja": "誤差が最大になるのは p = n の近くではなく、補間しきい値に山はありません。",
        }
    finding = {
        "en": (
            f"{setting['en']}, the median test error was highest at p = {peak_p} features "
            f"(p/n = {peak_p / n:.2f}): {num(peak)}, {left['en']} ({num(err_left)}) and "
            f"{right['en']} ({num(err_right)}). So {outcome['en']}"
        ),
        "ja": (
            f"{setting['ja']}、テスト誤差の中央値は特徴数 p = {peak_p}（p/n = {peak_p / n:.2f}）"
            f"で最大の {num(peak)} となり、{left['ja']}（{num(err_left)}）、"
            f"{right['ja']}（{num(err_right)}）でした。{outcome['ja']}"
        ),
    }

    def draw(t: Text) -> list[Any]:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(
            counts,
            test_err,
            "o-",
            label=t(
                f"test error (median of {p.n_draws} draws)", f"テスト誤差（{p.n_draws} 回の中央値）"
            ),
        )
        floor = 1e-3
        ax.plot(
            counts,
            [max(v, floor) for v in train_err],
            "s--",
            alpha=0.6,
            label=t(
                f"training error (drawn at {floor:g} when below)",
                f"訓練誤差（{floor:g} 未満は {floor:g} に描画）",
            ),
        )
        ax.axvline(n, color="gray", linestyle=":", label=f"p = n = {n}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(t("number of random features p", "ランダム特徴の数 p"))
        ax.set_ylabel(t("mean squared error", "平均二乗誤差"))
        if p.ridge == 0:
            kind = t("minimum-norm least squares", "最小ノルム最小二乗")
        else:
            kind = t(f"ridge {num(p.ridge)}", f"リッジ {num(p.ridge)}")
        ax.set_title(t(f"Random ReLU features, {kind}", f"ランダム ReLU 特徴、{kind}"))
        # Below the axes, so that it never covers the curves' points.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)
        return [fig]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series={
            "feature_counts": [float(c) for c in counts],
            "test_error": test_err,
            "train_error": train_err,
            "weight_norm": weight_norm,
        },
        **figures_in_each_language(draw),
    )


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("double_descent"))
