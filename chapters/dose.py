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
card = claims.glue_scorecard(evidence, figures.glue_value)
figures.glue_value("dose_n_models", int((results.kind == "transfer").sum()))
figures.Download(models, "dose_models.csv", "Download the per-model table behind the heatmaps")

# %% [markdown]
# **What the run shows** ({glue:text}`dose_n_models` transfer models). {glue:text}`dose_sanity`
#
# - After pretraining, a model carried from a lower to a higher dose loses more than one carried the other way:
#   the signed balance over the ten dose pairs is {glue:text}`claim_dose_low_to_high_run:+.2f` here
#   ({glue:text}`claim_dose_low_to_high_study:+.2f` in the study): **{glue:text}`claim_dose_low_to_high_verdict`**.
#   Rows of low-dose pretraining are worse: {glue:text}`claim_dose_low_worse_run:+.2f`
#   (study {glue:text}`claim_dose_low_worse_study:+.2f`), **{glue:text}`claim_dose_low_worse_verdict`**.
# - After transfer the pretraining dose fades: log10 of the spread of log loss across pretraining doses before
#   over after transfer is {glue:text}`claim_dose_source_fades_run:+.2f` (study
#   {glue:text}`claim_dose_source_fades_study:+.2f`), **{glue:text}`claim_dose_source_fades_verdict`**; the loss
#   tracks the target's signal-to-noise (minus the rank correlation of target dose and median T:
#   {glue:text}`claim_dose_tracks_snr_run:+.2f`, study
#   {glue:text}`claim_dose_tracks_snr_study:+.2f`), **{glue:text}`claim_dose_tracks_snr_verdict`**.

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
# Each statistic is computed by `hrtem_tl.claims` from this run's table and from the published cells; a claim
# holds when this run's statistic points the study's way with at least half the study's size.

# %% tags=["hide-input"]
figures.Table(claims.display_table(card))

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda reduction="median", freeze=("none", "encoder", "decoder"): study.cell_table(
        models, reduction, freeze).pivot(index="source", columns="target", values="T"),
        reduction=list(figures.REDUCTIONS), freeze=[("all", ("none", "encoder", "decoder")),
                                                    ("none", ("none",)), ("encoder", ("encoder",)),
                                                    ("decoder", ("decoder",))])
