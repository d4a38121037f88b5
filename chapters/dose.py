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
# **T** after transfer learning. A P cell pools every pretraining of its pretraining dose (independent replicates,
# as the study pooled every model pretrained on a source), so it does not depend on the freezing checkboxes; they
# pick which transfers enter a T cell. The radio buttons pick how the models of a cell are reduced.

# %% tags=["parameters"]
preset = "cpu"  # smoke | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]

from hrtem_tl import claims, datasets, figures, study
from hrtem_tl.presets import get_preset

pr = get_preset(preset, seeds)
results = study.results("dose", pr, cache, device)
evidence = claims.evidence("dose", results, pr)
order = datasets.SERIES["dose"].domains
models = study.model_table(results, "dose", pr)
figures.RunParameters(preset=pr.name, device=figures.device_name(device), seeds=",".join(map(str, pr.seeds)))

# %% tags=["hide-input"]
figures.show(figures.pt_heatmaps(models, "dose", order, "Loss on the target dose (CdSe, defocus -10 nm)"),
             "dose_pt", static_dir)

# %% tags=["hide-input"]
card = claims.glue_scorecard(evidence, figures.glue_value, cache=cache)
figures.glue_value("dose_n_models", int((results.kind == "transfer").sum()))
figures.Download(models, "dose_models.csv", "Download the per-model table behind the heatmaps")

# %% [markdown]
# **What the run shows** ({glue:text}`dose_n_models` transfer models; every P cell pools
# {glue:text}`dose_replicates` pretrainings of its source). {glue:text}`dose_sanity`. Each statistic carries its
# 90 % bootstrap interval (pretrainings of each source and transfers of each cell resampled); the verdicts:
# {glue:text}`dose_verdicts`.
#
# - After pretraining, a model carried from a lower to a higher dose loses more than one carried the other way:
#   the signed balance over the ten dose pairs is {glue:text}`claim_dose_low_to_high_run:+.2f`
#   {glue:text}`claim_dose_low_to_high_interval` here
#   ({glue:text}`claim_dose_low_to_high_study:+.2f` in the study): **{glue:text}`claim_dose_low_to_high_verdict`**.
#   Rows of low-dose pretraining are worse: {glue:text}`claim_dose_low_worse_run:+.2f`
#   {glue:text}`claim_dose_low_worse_interval`
#   (study {glue:text}`claim_dose_low_worse_study:+.2f`), **{glue:text}`claim_dose_low_worse_verdict`**.
# - After transfer the pretraining dose fades: log10 of the spread of log loss across pretraining doses before
#   over after transfer is {glue:text}`claim_dose_source_fades_run:+.2f`
#   {glue:text}`claim_dose_source_fades_interval` (study
#   {glue:text}`claim_dose_source_fades_study:+.2f`), **{glue:text}`claim_dose_source_fades_verdict`**; the loss
#   tracks the target's signal-to-noise (minus the rank correlation of target dose and median T:
#   {glue:text}`claim_dose_tracks_snr_run:+.2f` {glue:text}`claim_dose_tracks_snr_interval`, study
#   {glue:text}`claim_dose_tracks_snr_study:+.2f`), **{glue:text}`claim_dose_tracks_snr_verdict`**.

# %% [markdown]
# ## Can the distance between doses predict the loss?
#
# The distance between two doses is the log ratio of their electrons per pixel (`hrtem_tl.optics`). Each point is
# an off-diagonal cell, its loss over the median of its target column; the picker switches between P and T.

# %% tags=["hide-input"]
figures.show(figures.distance_chart(claims.distance_cells(evidence),
                                    claims.distance_cells(claims.published("dose")), "dose",
                                    "Loss against the distance between doses (off-diagonal cells)"),
             "dose_distance", static_dir)

# %% [markdown]
# After pretraining the loss grows with the distance (mean rank correlation over targets
# {glue:text}`claim_dose_distance_p_run:+.2f` {glue:text}`claim_dose_distance_p_interval`, study
# {glue:text}`claim_dose_distance_p_study:+.2f`: **{glue:text}`claim_dose_distance_p_verdict`**); after transfer
# it weakens (log10 ratio of the slopes {glue:text}`claim_dose_distance_t_run:+.2f`
# {glue:text}`claim_dose_distance_t_interval`, study {glue:text}`claim_dose_distance_t_study:+.2f`:
# **{glue:text}`claim_dose_distance_t_verdict`**).

# %% [markdown]
# ## Beside the published values
#
# The study's values (median over freezing options) on their own grey scale: their losses went through softmax
# twice, so only their pattern is comparable with ours.

# %% tags=["hide-input"]
figures.glue_value("dose_rank_p", claims.agreement(evidence, "P"))
figures.glue_value("dose_rank_t", claims.agreement(evidence, "T"))
figures.show(figures.reference_heatmaps(claims.reference_cells("dose"), "dose", order), "dose_reference")

# %% [markdown]
# Spearman rank correlation between our median cells and the published ones (off-diagonal cells):
# P {glue:text}`dose_rank_p:.2f`, T {glue:text}`dose_rank_t:.2f`.
#
# ## The claims of this chapter
#
# Each statistic is computed by `hrtem_tl.claims` from this run's table and from the published cells. A claim
# **holds** when this run's statistic reaches the bar (half the study's size) and its 90 % interval excludes 0;
# it **contradicts** the study when the interval lies at or below 0; **weaker** when the interval lies between 0
# and the bar; **undecided** when the interval spans a boundary (with the replicates that would likely decide it).

# %% tags=["hide-input"]
figures.Table(claims.display_table(card))

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda reduction="median", freeze=("none", "encoder", "decoder"): study.cell_table(
        models, reduction, freeze).pivot(index="source", columns="target", values="T"),
        reduction=list(figures.REDUCTIONS), freeze=[("all", ("none", "encoder", "decoder")),
                                                    ("none", ("none",)), ("encoder", ("encoder",)),
                                                    ("decoder", ("decoder",))])
