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
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to** read P/T heatmaps of a dose series; tell a dose pair's asymmetry from the difficulty of its
# target; judge a claim by its interval.
#
# **You need** the {doc}`handson` chapter (P, T, the freezing options) and Poisson statistics.
#
# **Time to run** on this machine from an empty cache: {glue:text}`dose_time_empty`. This page:
# {glue:text}`dose_time_run`.
# ```

# %% tags=["parameters"]
preset = "cpu"  # smoke | class | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)
doses = None  # e-/Å², a list (default: the study's 30, 75, 150, 300, 600)
dose_defocus = None  # nm, the fixed defocus (default: the study's -10)
material = None  # the particles: a built-in lattice, e.g. "Au", or a CIF file (default: the study's CdSe)
particle_diameters = None  # nm, [low, high] of the particles (default: the study's 3-5)
voltage = None  # kV, the accelerating voltage, 60-300 (default: the study's 300)
cs = None  # mm, the spherical aberration (default: the study's 0)
focal_spread = None  # Å, the focal spread (default: the study's 10)
transfer_size = None  # target images per transfer (default: the preset's)
epochs = None  # epochs per training stage (default: the preset's)
learning_rates = None  # (pretraining, transfer) (default: the preset's)
settings = None  # any of hrtem_tl/datasets.py PARAMETERS, a dict: the book passes its --set values here

# %% tags=["hide-input"]

from hrtem_tl import claims, datasets, figures, study
from hrtem_tl.book import ChapterClock
from hrtem_tl.presets import get_preset

pr = datasets.with_parameters(get_preset(preset, seeds), settings, doses=doses, dose_defocus=dose_defocus,
                              voltage=voltage, cs=cs, focal_spread=focal_spread, transfer_size=transfer_size,
                              epochs=epochs, learning_rates=learning_rates, particle_diameters=particle_diameters,
                              material=material)
pr = pr.for_series("dose")
clock = ChapterClock("dose", pr, cache)
results = study.results("dose", pr, cache, device)
evidence = claims.evidence("dose", results, pr)
order = datasets.get_series("dose", pr).domains
models = study.model_table(results, "dose", pr)
figures.run_parameters(pr, device)

# %% tags=["hide-input"]
title = f"Loss on the target dose ({figures.conditions_text(datasets.get_series('dose', pr))})"
figures.show(figures.pt_heatmaps(models, "dose", order, title), "dose_pt", static_dir)

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
figures.glue_value("dose_rank_p", figures.rank_text(claims.agreement(evidence, "P")))
figures.glue_value("dose_rank_t", figures.rank_text(claims.agreement(evidence, "T")))
figures.published_beside(claims.reference_cells("dose"), "dose", order, "dose_reference")

# %% [markdown]
# Spearman rank correlation between our median cells and the published ones (off-diagonal cells):
# P {glue:text}`dose_rank_p`, T {glue:text}`dose_rank_t`.
#
# ## The claims of this chapter
#
# Each statistic is computed by `hrtem_tl.claims` from this run's table and from the published cells. A claim
# **holds** when this run's statistic reaches the bar (half the study's size) and its 90 % interval excludes 0;
# it **contradicts** the study when the interval lies at or below 0; **weaker** when the interval lies between 0
# and the bar; **undecided** when the interval spans a boundary (with the replicates that would likely decide it).

# %% tags=["hide-input"]
figures.Scorecard(card)

# %% [markdown]
# ## Exercises
#
# Predict first, then open the solution: its numbers were computed by this run.
#
# :::{exercise}
# :label: dose-pick
# You may pretrain at one dose only and will meet images at every other dose later. Which dose would you pretrain
# at, and why? Judge it twice: by the loss on the other doses straight after pretraining (P), and after transfer
# learning on a few images of each (T).
# :::

# %% tags=["solution", "remove-cell"]
import numpy as np

cells = study.cell_table(models)
doses = sorted(order, key=float)
off_diagonal = ~np.eye(len(doses), dtype=bool)
for stage in ("P", "T"):
    matrix = cells.pivot(index="source", columns="target", values=f"{stage}_study").loc[doses, doses]
    per_source = matrix.where(off_diagonal).median(axis=1)
    figures.glue_value(f"dose_pick_{stage}", per_source.idxmin())
    figures.glue_value(f"dose_pick_{stage}_all", ", ".join(f"{d}: {v:.3f}" for d, v in per_source.items()))

# %% [markdown] tags=["solution"]
# :::{solution} dose-pick
# :class: dropdown
# Median loss on the other doses per pretraining dose (e⁻/Å², study's scale). After pretraining:
# {glue:text}`dose_pick_P_all`; the best is **{glue:text}`dose_pick_P`**. After transfer:
# {glue:text}`dose_pick_T_all`; the best is **{glue:text}`dose_pick_T`**. The study's answer (its Fig 9.1): a
# high dose for pretraining, since a model that learnt particles from clean images carries them to noisier ones
# better than the reverse; after transfer the pretraining dose matters much less (the claims above, with their
# verdicts in this run).
# :::

# %% [markdown]
# :::{exercise}
# :label: dose-swap
# Predict before you look at the heatmap: is a model pretrained at the lowest dose and tested at the highest
# worse or better than one pretrained at the highest and tested at the lowest? By how much?
# :::

# %% tags=["solution", "remove-cell"]
low, high = doses[0], doses[-1]
p_cells = cells.set_index(["source", "target"]).P_study
figures.glue_value("dose_low", low)
figures.glue_value("dose_high", high)
figures.glue_value("dose_low_high", p_cells[(low, high)])
figures.glue_value("dose_high_low", p_cells[(high, low)])

# %% [markdown] tags=["solution"]
# :::{solution} dose-swap
# :class: dropdown
# After pretraining: {glue:text}`dose_low` -> {glue:text}`dose_high` e⁻/Å² loses
# {glue:text}`dose_low_high:.3f`, {glue:text}`dose_high` -> {glue:text}`dose_low` loses
# {glue:text}`dose_high_low:.3f` (medians, study's scale). Mind what each number measures: the second is tested
# on the noisiest images, which are hard for every model (the diagonal shows how hard), so the fair comparison
# is the study's balance over all dose pairs, each cell against its target's own difficulty:
# {glue:text}`claim_dose_low_to_high_run:+.2f` {glue:text}`claim_dose_low_to_high_interval` here
# (**{glue:text}`claim_dose_low_to_high_verdict`**; study {glue:text}`claim_dose_low_to_high_study:+.2f`).
# :::

# %% [markdown]
# :::{exercise}
# :label: dose-counts
# A dose is electrons per Å². How many electrons does one pixel of a {glue:text}`dose_low` e⁻/Å² image hold at
# this preset, and what is its signal-to-noise ratio? And in the study's own images?
# :::

# %% tags=["solution", "remove-cell"]
from hrtem_tl.presets import PRESETS

count_pixel = pr.count_pixel_size or pr.pixel_size
figures.glue_value("dose_study_pixel", PRESETS["paper"].pixel_size)
for name, pixel in (("here", count_pixel), ("study", PRESETS["paper"].pixel_size)):
    counts = float(low) * pixel**2
    figures.glue_value(f"dose_counts_{name}", counts)
    figures.glue_value(f"dose_snr_{name}", counts**0.5)
figures.glue_value("dose_count_pixel", count_pixel)

# %% [markdown] tags=["solution"]
# :::{solution} dose-counts
# :class: dropdown
# Electrons per pixel = dose x pixel area: {glue:text}`dose_low` x ({glue:text}`dose_count_pixel` Å)² =
# {glue:text}`dose_counts_here:.2f` here. The counts are Poisson, so their standard deviation is the square root
# of their mean and a pixel's signal-to-noise ratio is sqrt(counts) = {glue:text}`dose_snr_here:.2f`. The study's
# {glue:text}`dose_study_pixel` Å pixels hold {glue:text}`dose_counts_study:.2f` electrons (SNR
# {glue:text}`dose_snr_study:.2f`): the same dose is noisier per pixel on a finer pixel. Coarser pixels than
# the study's make every dose cleaner than its
# own, which moves the dose claims: that is why the cpu preset runs this series on 0.25 Å pixels, 1.56x the
# study's electrons per pixel instead of the 6.25x of 0.5 Å ones (the {doc}`ablation` page measures both, and
# `hrtem_tl/presets.py` gives the numbers).
# :::

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda reduction="median", freeze=("none", "encoder", "decoder"): study.cell_table(
        models, reduction, freeze).pivot(index="source", columns="target", values="T"),
        reduction=list(figures.REDUCTIONS), freeze=[("all", ("none", "encoder", "decoder")),
                                                    ("none", ("none",)), ("encoder", ("encoder",)),
                                                    ("decoder", ("decoder",))])

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
