# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Defocus: transfer across imaging conditions
#
# The study's Figs 7.1, 6.1, 7.2 and 8.1. Models pretrained on CdSe images at one of five defoci (-10 to +10 nm)
# are transferred to each of eleven (-25 to +25 nm; dose 400 e⁻/Å²). P is the loss on the target after
# pretraining, T after transfer learning.

# %% tags=["parameters"]
preset = "cpu"  # smoke | cpu | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]
import json

import numpy as np
import pandas as pd

from hrtem_tl import datasets, figures, study
from hrtem_tl.presets import get_preset

results = study.results("defocus", preset, cache, device)
pr = get_preset(preset)
series = datasets.SERIES["defocus"]
models = figures.model_table(results, "defocus", preset)
cells = figures.cell_table(models, "median")

# %% [markdown]
# ## Pretraining defocus x target defocus (Fig 7.1)

# %%
figures.show(figures.pt_heatmaps(models, "defocus", series.domains, "Loss on the target defocus (CdSe, 400 e⁻/Å²)",
                                 cell=22), "defocus_pt", static_dir)

# %% tags=["hide-input"]
spread_p = figures.spread_across_sources(cells, "P")
spread_t = figures.spread_across_sources(cells, "T")
hardest = cells[cells.source != cells.target].groupby("target")["T"].median()
figures.glue_value("defocus_spread_p", spread_p)
figures.glue_value("defocus_spread_t", spread_t)
figures.glue_value("defocus_spread_word", "shrinks" if spread_t < spread_p else "does not shrink")
figures.glue_value("defocus_hardest", figures.domain_label("defocus", hardest.idxmax()))
figures.glue_value("defocus_easiest", figures.domain_label("defocus", hardest.idxmin()))

# %% [markdown]
# The spread across pretraining defoci (standard deviation over a target's column, median over targets)
# {glue:text}`defocus_spread_word` from {glue:text}`defocus_spread_p:.4f` after pretraining to
# {glue:text}`defocus_spread_t:.4f` after transfer. After transfer the hardest target (highest median T) is
# {glue:text}`defocus_hardest` nm and the easiest {glue:text}`defocus_easiest` nm; the study found 0 nm, where a
# weak phase object has least contrast, the hardest.

# %% [markdown]
# ## Hyperparameters: transfer size, freezing, learning rates (Fig 6.1)

# %% tags=["hide-input"]
sweep = results[(results.kind == "transfer") & results.source.isin(
    series.sources if pr.sweep_sources == "all" else pr.sweep_sources)].copy()
sweep["learning rates"] = [f"pretrain {a:g} / transfer {b:g}" for a, b in zip(sweep.lr_pretrain, sweep.lr_transfer)]
sweep = sweep[["transfer_size", "freeze", "learning rates", "T", "target"]]
figures.show(figures.distribution_chart(sweep, "transfer_size", "transfer images", column="learning rates",
                                        title="T over all targets, by transfer set size"), "defocus_hyper",
             static_dir)

# %% tags=["hide-input"]
by_size = sweep.groupby("transfer_size")["T"].agg(["median", lambda t: t.quantile(0.75) - t.quantile(0.25)])
by_freeze = sweep.groupby("freeze")["T"].median()
by_lr = sweep.groupby("learning rates")["T"].median()
figures.glue_value("hyper_small", int(by_size.index.min()))
figures.glue_value("hyper_large", int(by_size.index.max()))
figures.glue_value("hyper_t_small", by_size["median"].iloc[0])
figures.glue_value("hyper_t_large", by_size["median"].iloc[-1])
figures.glue_value("hyper_iqr_small", by_size.iloc[0, 1])
figures.glue_value("hyper_iqr_large", by_size.iloc[-1, 1])
figures.glue_value("hyper_freeze_none", by_freeze.get("none", np.nan))
figures.glue_value("hyper_freeze_encoder", by_freeze.get("encoder", np.nan))
figures.glue_value("hyper_freeze_decoder", by_freeze.get("decoder", np.nan))
figures.glue_value("hyper_best_lr", by_lr.idxmin())

# %% [markdown]
# From {glue:text}`hyper_small` to {glue:text}`hyper_large` transfer images the median T goes from
# {glue:text}`hyper_t_small:.4f` to {glue:text}`hyper_t_large:.4f` and its interquartile range from
# {glue:text}`hyper_iqr_small:.4f` to {glue:text}`hyper_iqr_large:.4f`. Median T by freezing option: none
# {glue:text}`hyper_freeze_none:.4f`, encoder frozen {glue:text}`hyper_freeze_encoder:.4f`, decoder frozen
# {glue:text}`hyper_freeze_decoder:.4f`. The best learning-rate pair in this run: {glue:text}`hyper_best_lr`.

# %% [markdown]
# ## Transfer learning against single-stage mixed training (Fig 7.2)

# %% tags=["hide-input"]
src, tgt = study.MIXTURE_PAIR
mix = results[results.kind == "mixture"].copy()
mix["method"] = ["mixture " + ":".join(map(str, json.loads(m))) for m in mix.mixture]
mix["freeze"] = "none"
lr_pre, lr_tr = pr.main_lr
tl = results[(results.kind == "transfer") & (results.source == src) & (results.target == tgt)
             & np.isclose(results.lr_pretrain, lr_pre) & np.isclose(results.lr_transfer, lr_tr)].copy()
tl["method"] = [f"transfer, {n} images" for n in tl.transfer_size]
baseline = pd.concat([mix[["method", "freeze", "T"]], tl[["method", "freeze", "T"]]], ignore_index=True)
order = sorted(baseline.method.unique(), key=lambda m: (m.startswith("transfer"), len(m), m))
figures.show(figures.reduced_bars(baseline, "method", "training", "T", f"loss on {float(tgt) / 10:g} nm (nats)",
                                  title=f"{float(src) / 10:g} nm -> {float(tgt) / 10:g} nm", sort=order),
             "defocus_baseline", static_dir)

# %% tags=["hide-input"]
figures.glue_value("baseline_mix", mix["T"].median())
figures.glue_value("baseline_tl", tl["T"].median())
figures.glue_value("baseline_src", f"{float(src) / 10:g}")
figures.glue_value("baseline_tgt", f"{float(tgt) / 10:g}")

# %% [markdown]
# Median loss on {glue:text}`baseline_tgt` nm: single-stage training on mixtures of {glue:text}`baseline_src` nm
# and {glue:text}`baseline_tgt` nm data {glue:text}`baseline_mix:.4f`; transfer learning from
# {glue:text}`baseline_src` nm (all transfer sizes and freezing options) {glue:text}`baseline_tl:.4f`.

# %% [markdown]
# ## Out-of-distribution spread (Fig 8.1)
#
# For each model, the standard deviation of its loss across all eleven defocus datasets: after pretraining
# (the pretrained model) and after transfer (the transferred model at its selected epoch).

# %% tags=["hide-input"]
main = results[(results.kind == "transfer") & np.isclose(results.lr_pretrain, lr_pre)
               & np.isclose(results.lr_transfer, lr_tr) & (results.transfer_size == pr.transfer_size)]
ood = pd.DataFrame({
    "source": [figures.domain_label("defocus", s) for s in main.source], "freeze": main.freeze,
    "target": [figures.domain_label("defocus", t) for t in main.target],
    "P": [np.std(list(json.loads(p).values())) for p in main.P_all],
    "T": [np.std(list(json.loads(t).values())) for t in main.T_all]})
ood_long = ood.melt(id_vars=["source", "freeze", "target"], value_vars=["P", "T"], var_name="stage",
                    value_name="sd")
figures.show(figures.distribution_chart(ood_long, "stage", "", column="source", y="sd",
                                        y_title="sd of loss across defocus datasets",
                                        title="Spread across defocus domains, by pretraining defocus (nm)"),
             "defocus_ood", static_dir)

# %% tags=["hide-input"]
figures.glue_value("ood_p", ood["P"].median())
figures.glue_value("ood_t", ood["T"].median())
figures.glue_value("ood_frac", float((ood["T"] < ood["P"]).mean() * 100))

# %% [markdown]
# Median spread across domains: {glue:text}`ood_p:.4f` after pretraining, {glue:text}`ood_t:.4f` after transfer;
# transfer lowered the spread for {glue:text}`ood_frac:.0f` % of the models. A model tuned to one target is
# not thereby made robust across the others: the study's point that transfer learning does not necessarily
# improve out-of-distribution generalization is tested here by this fraction.

# %% [markdown]
# ## Beside the published values

# %% tags=["hide-input"]
reference = figures.load_reference("defocus")
figures.glue_value("defocus_rank_p", figures.rank_correlation(cells, reference, "P"))
figures.glue_value("defocus_rank_t", figures.rank_correlation(cells, reference, "T"))
figures.show(figures.reference_heatmaps(reference, "defocus", series.domains, cell=18), "defocus_reference")

# %% [markdown]
# Spearman rank correlation with the published cells (median over their freezing options, transfer sizes and
# learning rates): P {glue:text}`defocus_rank_p:.2f`, T {glue:text}`defocus_rank_t:.2f`.

# %% tags=["hide-input"]
if live_widgets:
    figures.explore(lambda reduction="median": figures.cell_table(models, reduction).pivot(
        index="source", columns="target", values="T"), reduction=list(figures.REDUCTIONS))
