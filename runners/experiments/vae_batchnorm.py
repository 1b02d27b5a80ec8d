"""Batch norm in a VAE encoder makes one example's encoding depend on its batch-mates.

A tiny VAE is trained on synthetic data twice: once with the chosen normalisation in
the encoder and once with none (the reference). For a few fixed examples we then put
each one into many batches whose other members are drawn at random, and measure how
far its latent mean moves. Without batch statistics the rows are computed
independently, so the shift is zero up to rounding; with batch norm it is not. We also
compare the ELBO of held-out data in train mode (batch statistics) and eval mode
(running statistics).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import matplotlib
import numpy as np
import torch
from torch import nn

from runners.experiments._optim import Adam
from runners.labels import num
from runners.result import Result, Text, figures_in_each_language
from runners.specs.vae_batchnorm import Params

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the Agg backend)

DATA_DIM = 16
SOURCE_DIM = 2
LIKELIHOOD_VAR = 0.1
REL_SHIFT_THRESHOLD = 0.01
ZERO_SHIFT_TOL = 1e-6
N_FIXED = 8
N_HELDOUT = 512
# Each normalisation in words: (English, Japanese).
NORM_NAMES = {
    "batch": ("batch normalisation", "バッチ正規化"),
    "layer": ("layer normalisation", "レイヤー正規化"),
    "group": ("group normalisation", "グループ正規化"),
    "none": ("no normalisation", "正規化なし"),
}


class _Encoder(nn.Module):
    def __init__(self, norm: str, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.fc = nn.Linear(DATA_DIM, hidden)
        if norm == "batch":
            self.norm: nn.Module = nn.BatchNorm1d(hidden)
        elif norm == "layer":
            self.norm = nn.LayerNorm(hidden)
        elif norm == "group":
            self.norm = nn.GroupNorm(4 if hidden % 4 == 0 else 1, hidden)
        else:
            self.norm = nn.Identity()
        self.out = nn.Linear(hidden, 2 * latent_dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.relu(self.norm(self.fc(x)))
        mu, logvar = self.out(h).chunk(2, dim=-1)
        return mu, logvar


class _VAE(nn.Module):
    def __init__(self, norm: str, hidden: int, latent_dim: int) -> None:
        super().__init__()
        self.encoder = _Encoder(norm, hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, DATA_DIM)
        )

    def elbo(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Per-example single-sample ELBO (nats) with the given noise ``eps``."""
        mu, logvar = self.encoder(x)
        z = mu + torch.exp(0.5 * logvar) * eps
        xhat = self.decoder(z)
        log_lik = -0.5 * (
            ((x - xhat) ** 2).sum(-1) / LIKELIHOOD_VAR
            + DATA_DIM * float(np.log(2 * np.pi * LIKELIHOOD_VAR))
        )
        kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(-1)
        return log_lik - kl


def _make_data(n: int, gen: torch.Generator) -> torch.Tensor:
    """Points near a curved 2-D manifold in 16-D, standardised per coordinate."""
    a = torch.randn(SOURCE_DIM, 8, generator=gen)
    b = torch.randn(8, DATA_DIM, generator=gen) / np.sqrt(8)
    s = torch.randn(n, SOURCE_DIM, generator=gen)
    x = torch.tanh(s @ a) @ b + 0.05 * torch.randn(n, DATA_DIM, generator=gen)
    return (x - x.mean(0)) / x.std(0)


def _train(model: _VAE, data: torch.Tensor, p: Params, gen: torch.Generator) -> None:
    opt = Adam(list(model.parameters()), lr=3e-3)
    model.train()
    for _ in range(p.train_steps):
        idx = torch.randint(0, data.shape[0], (p.batch_size,), generator=gen)
        x = data[idx]
        eps = torch.randn(p.batch_size, model.encoder.out.out_features // 2, generator=gen)
        loss = -model.elbo(x, eps).mean()
        loss.backward()
        opt.step()


def _probe(
    model: _VAE, fixed: torch.Tensor, pool: torch.Tensor, p: Params, gen: torch.Generator
) -> tuple[float, float, np.ndarray, list[float]]:
    """Latent means of each fixed example inside ``n_batches`` different batches.

    Returns (max absolute shift, relative shift, means of fixed example 0 across
    batches, per-batch L2 distance of example 0 from its average encoding).
    """
    probe = copy.deepcopy(model)  # train-mode BN would update running stats otherwise
    probe.train()
    max_abs = 0.0
    rel: list[float] = []
    first_mus = np.zeros((p.n_batches, probe.encoder.out.out_features // 2))
    first_dist: list[float] = []
    with torch.no_grad():
        spread = probe.encoder(pool[:N_HELDOUT])[0].std(0).mean().item()
        for i in range(fixed.shape[0]):
            mus = []
            for _ in range(p.n_batches):
                idx = torch.randint(0, pool.shape[0], (p.batch_size - 1,), generator=gen)
                batch = torch.cat([fixed[i : i + 1], pool[idx]])
                mus.append(probe.encoder(batch)[0][0])
            m = torch.stack(mus)
            max_abs = max(max_abs, (m.max(0).values - m.min(0).values).max().item())
            rel.append(m.std(0).mean().item() / max(spread, 1e-12))
            if i == 0:
                first_mus = m.numpy().copy()
                first_dist = (m - m.mean(0)).norm(dim=1).tolist()
    return max_abs, float(np.mean(rel)), first_mus, first_dist


def _elbo_modes(
    model: _VAE, heldout: torch.Tensor, p: Params, gen: torch.Generator
) -> tuple[float, float]:
    """Mean held-out ELBO in train mode (batch statistics) and eval mode."""
    latent = model.encoder.out.out_features // 2
    eps = torch.randn(heldout.shape[0], latent, generator=gen)
    out = {}
    for mode in ("train", "eval"):
        m = copy.deepcopy(model)
        m.train(mode == "train")
        vals = []
        with torch.no_grad():
            for start in range(0, heldout.shape[0] - p.batch_size + 1, p.batch_size):
                sl = slice(start, start + p.batch_size)
                vals.append(m.elbo(heldout[sl], eps[sl]))
        out[mode] = torch.cat(vals).mean().item()
    return out["train"], out["eval"]


def run(params: Params, seed: int) -> Result:
    torch.set_num_threads(1)
    p = params
    data_gen = torch.Generator().manual_seed(seed)
    data = _make_data(4096, data_gen)
    train, heldout = data[:3072], data[3072:]

    arms = [p.norm] if p.norm == "none" else [p.norm, "none"]
    res: dict[str, dict] = {}
    for arm in arms:
        torch.manual_seed(seed)
        model = _VAE(arm, p.hidden, p.latent_dim)
        gen = torch.Generator().manual_seed(seed + 1)
        _train(model, train, p, gen)
        probe_gen = torch.Generator().manual_seed(seed + 2)
        fixed = heldout[:N_FIXED]
        max_abs, rel, mus, dist = _probe(model, fixed, heldout[N_FIXED:], p, probe_gen)
        elbo_gen = torch.Generator().manual_seed(seed + 3)
        elbo_train, elbo_eval = _elbo_modes(model, heldout[N_FIXED:], p, elbo_gen)
        res[arm] = {
            "max_abs": max_abs,
            "rel": rel,
            "mus": mus,
            "dist": dist,
            "elbo_train": elbo_train,
            "elbo_eval": elbo_eval,
        }
    ref = res["none"]
    tested = res[p.norm]

    shift_shows = tested["rel"] > REL_SHIFT_THRESHOLD
    reference_zero = ref["max_abs"] <= ZERO_SHIFT_TOL
    supports = bool(shift_shows and reference_zero)

    metrics: dict[str, float | bool] = {
        "latent_shift_max_abs": tested["max_abs"],
        "latent_shift_relative": tested["rel"],
        "reference_latent_shift_max_abs": ref["max_abs"],
        "reference_latent_shift_relative": ref["rel"],
        "elbo_train_mode": tested["elbo_train"],
        "elbo_eval_mode": tested["elbo_eval"],
        "elbo_eval_minus_train": tested["elbo_eval"] - tested["elbo_train"],
        "reference_elbo_train_mode": ref["elbo_train"],
        "reference_elbo_eval_mode": ref["elbo_eval"],
        "reference_elbo_eval_minus_train": ref["elbo_eval"] - ref["elbo_train"],
        "batch_dependence_shows": bool(shift_shows),
        "reference_batch_independent": bool(reference_zero),
    }

    finding = _finding(p, tested, ref, shift_shows, reference_zero)
    series = {
        "shift_per_batch": [float(v) for v in tested["dist"]],
        "reference_shift_per_batch": [float(v) for v in ref["dist"]],
    }

    def draw(t: Text) -> list[Any]:
        return [_figure_latents(t, p, res), _figure_elbo(t, res, arms)]

    return Result(
        metrics=metrics,
        finding=finding,
        supports_claim=supports,
        series=series,
        **figures_in_each_language(draw),
    )


def _finding(
    p: Params, tested: dict, ref: dict, shift_shows: bool, reference_zero: bool
) -> dict[str, str]:
    """What was measured and what it shows, in plain words in both languages."""
    name_en, name_ja = NORM_NAMES[p.norm]
    others = p.batch_size - 1
    if p.norm == "none":
        encoder = {"en": "an encoder without normalisation", "ja": "正規化のないエンコーダ"}
    else:
        encoder = {"en": f"an encoder with {name_en}", "ja": f"{name_ja}を入れたエンコーダ"}
    setup = {
        "en": f"Each of {N_FIXED} fixed examples was put into {p.n_batches} batches whose "
        f"other {others} members were drawn at random, and encoded by {encoder['en']} in "
        "training mode.",
        "ja": f"固定した {N_FIXED} 個の例それぞれを、残りの {others} 個をランダムに選んだ "
        f"{p.n_batches} 通りのバッチに入れ、{encoder['ja']}で訓練モードのまま符号化しました。",
    }

    def unmoved(max_abs: float) -> dict[str, str]:
        if max_abs == 0:
            return {"en": "exactly the same in every batch", "ja": "どのバッチでもまったく同じ"}
        return {
            "en": f"the same in every batch up to rounding (largest change {num(max_abs)})",
            "ja": f"丸め誤差を除いてどのバッチでも同じ（最大の変化 {num(max_abs)}）",
        }

    moved = tested["max_abs"] > ZERO_SHIFT_TOL
    if moved:
        percent = f"{num(100 * tested['rel'])}%"
        shift = {
            "en": "The latent mean of the same example varied across the batches by "
            f"{percent} of the spread between different examples (largest change "
            f"{num(tested['max_abs'])}).",
            "ja": "同じ例なのに、潜在平均はバッチによって例どうしのばらつきの "
            f"{percent} ほど動きました（最大の変化 {num(tested['max_abs'])}）。",
        }
    else:
        same = unmoved(tested["max_abs"])
        shift = {
            "en": f"Each example's latent mean came out {same['en']}.",
            "ja": f"各例の潜在平均は{same['ja']}でした。",
        }
    if p.norm != "none":
        if not reference_zero:
            shift["en"] += (
                " Without normalisation the encoding still changed, by up to "
                f"{num(ref['max_abs'])}."
            )
            shift["ja"] += (
                f"正規化のないエンコーダでも、符号化は最大 {num(ref['max_abs'])} 変わりました。"
            )
        elif moved:
            same = unmoved(ref["max_abs"])
            shift["en"] += f" Without normalisation the encoding was {same['en']}."
            shift["ja"] += f"正規化のないエンコーダでは、符号化は{same['ja']}でした。"
        else:
            shift["en"] += " The same held for the encoder without normalisation."
            shift["ja"] += "正規化のないエンコーダでも同じでした。"

    train, evaluation = tested["elbo_train"], tested["elbo_eval"]
    if abs(evaluation - train) <= ZERO_SHIFT_TOL:
        elbo = {
            "en": f"On held-out data the ELBO was {num(train)} nats in both training and "
            "evaluation mode.",
            "ja": f"検証データの ELBO は、訓練モードでも評価モードでも {num(train)} ナットでした。",
        }
    else:
        elbo = {
            "en": f"On held-out data the ELBO was {num(train)} nats in training mode, which "
            f"uses the statistics of each batch, and {num(evaluation)} nats in evaluation "
            "mode, which uses running averages.",
            "ja": f"検証データの ELBO は、バッチごとの統計量を使う訓練モードで {num(train)} "
            f"ナット、移動平均の統計量を使う評価モードで {num(evaluation)} ナットでした。",
        }

    if shift_shows:
        meaning = {
            "en": f"So with {name_en} an example's encoding depends on which other examples "
            "share its batch.",
            "ja": f"つまり{name_ja}があると、ある例の符号化は同じバッチに入った他の例によって"
            "変わります。",
        }
        if reference_zero:
            meaning["en"] += " Without normalisation each example is encoded on its own."
            meaning["ja"] += "正規化がなければ、各例は独立に符号化されます。"
    elif not moved:
        meaning = {
            "en": "So here each example is encoded on its own, whatever its batch-mates.",
            "ja": "つまりこの設定では、同じバッチに何が入っても各例は独立に符号化されます。",
        }
    else:
        limit = f"{REL_SHIFT_THRESHOLD:.0%}"
        meaning = {
            "en": "So the batch-mates changed the encoding, but by no more than "
            f"{limit} of the spread between examples.",
            "ja": "つまり同じバッチの他の例で符号化は変わりましたが、その変化は例どうしの"
            f"ばらつきの {limit} 以下でした。",
        }
    parts = (setup, shift, elbo, meaning)
    return {"en": " ".join(s["en"] for s in parts), "ja": "".join(s["ja"] for s in parts)}


def _legend_below(ax: Any) -> None:
    """The legend under the axes, so that it never covers the data."""
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)


def _figure_latents(t: Text, p: Params, res: dict[str, dict]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    tested = res[p.norm]["mus"]
    r = res["none"]["mus"]
    name_en, name_ja = NORM_NAMES[p.norm]
    ax.scatter(
        tested[:, 0],
        tested[:, 1],
        s=25,
        label=t(f"{name_en} ({len(tested)} batches)", f"{name_ja}（{len(tested)} バッチ）"),
    )
    ax.scatter(
        r[:, 0],
        r[:, 1],
        s=80,
        marker="x",
        color="black",
        label=t(
            "no normalisation (same batches, one point)",
            "正規化なし（同じバッチ、1 点に重なる）",
        ),
    )
    ax.set_xlabel(t("latent mean, dimension 1", "潜在平均の第 1 次元"))
    ax.set_ylabel(t("latent mean, dimension 2", "潜在平均の第 2 次元"))
    ax.set_title(
        t(
            "One fixed example encoded inside different batches (train mode)",
            "異なるバッチの中で符号化した同じ 1 つの例（訓練モード）",
        )
    )
    _legend_below(ax)
    return fig


def _figure_elbo(t: Text, res: dict[str, dict], arms: Sequence[str]) -> Any:
    fig, ax = plt.subplots(figsize=(6, 4))
    x = np.arange(len(arms))
    w = 0.35
    ax.bar(
        x - w / 2,
        [res[a]["elbo_train"] for a in arms],
        w,
        label=t("train mode (batch stats)", "訓練モード（バッチの統計量）"),
    )
    ax.bar(
        x + w / 2,
        [res[a]["elbo_eval"] for a in arms],
        w,
        label=t("eval mode (running stats)", "評価モード（移動平均の統計量）"),
    )
    ax.set_xticks(x, [t(*NORM_NAMES[a]) for a in arms])
    ax.set_xlabel(t("encoder normalisation", "エンコーダの正規化"))
    ax.set_ylabel(t("mean held-out ELBO (nats)", "検証データの平均 ELBO（ナット）"))
    ax.set_title(t("Held-out ELBO in train vs eval mode", "訓練モードと評価モードでの検証 ELBO"))
    _legend_below(ax)
    return fig


if __name__ == "__main__":
    from runners.experiment_cli import main

    raise SystemExit(main("vae_batchnorm"))
