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
# # Dose: does the pretraining dose matter after transfer?
#
# The study's Fig 9.1. U-Nets pretrained on CdSe images at one electron dose are transferred to every other dose.
# Each cell is a (pretraining dose, target dose) pair; **P** is the loss on the target after pretraining alone,
# **T** after transfer learning. Use the checkboxes to pick which freezing options enter each cell and the radio
# buttons to pick how the models of a cell are reduced.

# %% tags=["parameters"]
preset = "cpu"  # smoke | cpu | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]

from hrtem_tl import datasets, figures, study

results = study.results("dose", preset, cache, device)
order = datasets.SERIES["dose"].domains
models = figures.model_table(results, "dose", preset)
cells = figures.cell_table(models, "median")

# %%
figures.show(figures.pt_heatmaps(models, "dose", order, "Loss on the target dose (CdSe, defocus -10 nm)"),
             "dose_pt", static_dir)

# %% tags=["hide-input"]
spread_p = figures.spread_across_sources(cells, "P")
spread_t = figures.spread_across_sources(cells, "T")
by_target = cells[cells.source != cells.target].groupby("target")["T"].median()
dose_rank = float(by_target.rank().corr(by_target.index.astype(float).to_series(index=by_target.index).rank()))
worst_source = cells[cells.source != cells.target].groupby("source")["P"].median().idxmax()
figures.glue_value("dose_spread_p", spread_p)
figures.glue_value("dose_spread_t", spread_t)
figures.glue_value("dose_spread_ratio", spread_p / spread_t)
figures.glue_value("dose_spread_word", "shrinks" if spread_t < spread_p else "does not shrink")
figures.glue_value("dose_target_rank", dose_rank)
figures.glue_value("dose_target_word", "higher target dose, lower loss, as the study found" if dose_rank < -0.5
                   else "no clear ordering by the target's signal-to-noise in this run")
figures.glue_value("dose_worst_source", worst_source)
figures.glue_value("dose_n_models", int((results.kind == "transfer").sum()))

# %% [markdown]
# **What the run shows.** Across the {glue:text}`dose_n_models` transfer models of this run, the spread of the loss
# across pretraining doses (the standard deviation over the column of a target, median over targets)
# {glue:text}`dose_spread_word` from {glue:text}`dose_spread_p:.4f` after pretraining to
# {glue:text}`dose_spread_t:.4f` after transfer, a factor of {glue:text}`dose_spread_ratio:.1f`. After
# pretraining, the worst pretraining dose (highest median P across targets) is {glue:text}`dose_worst_source` e⁻/Å².
# After transfer, the rank correlation between the target dose and the median T of its column is
# {glue:text}`dose_target_rank:.2f`: {glue:text}`dose_target_word`.

# %% [markdown]
# ## Beside the published values
#
# The study's values (median over freezing options) on their own grey scale: their losses went through softmax
# twice, so only their pattern is comparable with ours.

# %% tags=["hide-input"]
reference = figures.load_reference("dose")
figures.glue_value("dose_rank_p", figures.rank_correlation(cells, reference, "P"))
figures.glue_value("dose_rank_t", figures.rank_correlation(cells, reference, "T"))
figures.show(figures.reference_heatmaps(reference, "dose", order), "dose_reference")

# %% [markdown]
# Spearman rank correlation between our median cells and the published ones: P {glue:text}`dose_rank_p:.2f`,
# T {glue:text}`dose_rank_t:.2f` (25 cells each, diagonal included).

# %% tags=["hide-input"]
if live_widgets:
    figures.explore(lambda reduction="median", freeze=("none", "encoder", "decoder"): figures.cell_table(
        models, reduction, freeze).pivot(index="source", columns="target", values="T"),
        reduction=list(figures.REDUCTIONS), freeze=[("all", ("none", "encoder", "decoder")),
                                                    ("none", ("none",)), ("encoder", ("encoder",)),
                                                    ("decoder", ("decoder",))])
