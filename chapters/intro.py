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
# # Transfer learning for HRTEM segmentation, regenerated
#
# Can a segmentation network trained on one kind of high-resolution TEM image be carried over to another (another
# defocus, another electron dose, another crystal) with a little data of the new kind? This book regenerates,
# from atoms to figures, the study *Strategies for effective transfer learning for HRTEM analysis with neural
# networks* (L. Rangel DaCosta, H. Oill, M. Scott, Elemental Microscopy EM000010, 2025, doi 10.69761/kjte5358).
# Every image is simulated (abTEM multislice of nanoparticles on amorphous carbon), every network trained
# (a U-Net in PyTorch), and every number in the prose computed by the run that rendered the page.
#
# ## How to read the figures
#
# - Each heatmap cell is a pair (pretraining domain, target domain). **P** is the loss on the target of a model
#   after pretraining only (at the epoch of its best validation loss on the pretraining domain); **T** is the loss
#   on the target after transfer learning on a few target images (at the epoch of its best target loss). The
#   diagonal has no transfer: there T repeats P.
# - As in the study, a cell is a crowd of models: every source is pretrained several times independently
#   (replicates), a P cell pools all of them (so it does not depend on the freezing checkboxes) and a T cell pools
#   the transfers of its cell.
# - Our models train on per-pixel cross-entropy (nats; 0 is a perfect segmentation). The published losses went
#   through softmax twice (a floor of 0.3133, subtracted in the study's figures), which bounds a pixel's loss like
#   an error rate. Each heatmap offers both scales for our models ("loss"): the study's scale first, as the claims
#   use it, and cross-entropy; the study's own values appear beside ours on their own colour scale.
# - The checkboxes pick which freezing options (none, encoder, decoder) enter a cell; the radio buttons pick the
#   reduction (median, mean, min, max) over the models of a cell. All of it works in the page, with no kernel.
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to** read the book's scorecard: a claim of the study as a statistic, its bootstrap interval and a
# verdict; tell a finding from a run's luck.
#
# **You need** none: this page says how to read the others. Teachers: start with the {doc}`handson` chapter.
#
# **Time to run** on this machine from an empty cache: {glue:text}`intro_time_empty`. This page:
# {glue:text}`intro_time_run`.
# ```

# %% tags=["parameters"]
preset = "cpu"  # smoke | class | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)
settings = None  # any of hrtem_tl/datasets.py PARAMETERS, a dict: the book passes its --set values here

# %% tags=["hide-input"]
import pandas as pd

from hrtem_tl import claims, datasets, figures, study
from hrtem_tl.book import ChapterClock, read_timings
from hrtem_tl.presets import PRESETS, get_preset
from hrtem_tl.study import grid_size

pr = datasets.with_parameters(get_preset(preset, seeds), settings)
clock = ChapterClock("intro", pr, cache)
timings = read_timings(pr.name, cache)
for stage in ("simulate", "train"):
    figures.glue_value(f"time_{stage}_min", timings.get(stage, float("nan")) / 60)
figures.glue_value("preset_name", pr.name)
evidence = {name: claims.evidence(name, study.results(name, pr, cache, device), pr) for name in datasets.SERIES}
cards = pd.concat([claims.cached_scorecard(ev, cache) for ev in evidence.values()], ignore_index=True)
figures.glue_value("claims_total", len(cards))
figures.glue_value("claims_holding", int((cards.verdict == "holds").sum()))
figures.glue_value("claims_verdicts", claims.verdict_counts(cards))
figures.glue_value("confidence_pct", int(claims.CONFIDENCE * 100))
figures.glue_value("n_bootstrap", claims.N_BOOTSTRAP)
for name, ev in evidence.items():
    figures.glue_value(f"sanity_{name}", claims.sanity_line(ev))
figures.run_parameters(pr, device)

# %% [markdown]
# ## Does this run reach the study's conclusions?
#
# Each finding of the study is a statistic computed by `hrtem_tl.claims` on this run's results and on the
# published values, signed so that a positive value supports it. A heatmap cell of the study is a crowd (each P
# cell pools every model pretrained on its source: 36 to 1440 of them), so here each source is pretrained several
# times independently (replicates), and every statistic carries a {glue:text}`confidence_pct` % bootstrap interval
# ({glue:text}`n_bootstrap` draws that resample the pretrainings of each source and the transfers of each cell).
# The verdict reads the statistic and its interval against a **bar**: half the study's value for a direction
# claim, a quarter of the models for "not necessarily", a factor 1.25 either way for "comparable".
#
# - **holds**: the statistic reaches the bar and the interval excludes 0 (a comparable claim: the interval lies
#   within the factor);
# - **contradicts**: the interval lies at or below 0 (the effect is absent or reversed; a comparable claim: the
#   interval lies outside the factor);
# - **weaker**: the interval lies between 0 and the bar (the study's sign, firmly less than half its size);
# - **undecided**: the interval spans a boundary; the table says about how many replicates would likely decide it.
#
# Before any verdict, each series must have learned: every source's median loss on its own domain at most two
# thirds of the loss of a constant prediction of its masks, both on the study's scale. The study's own
# pretrainings pass this rule (each line below names the worst of them); a threshold of one half would fail its
# diamond-C model.
#
# - {glue:text}`sanity_dose`
# - {glue:text}`sanity_defocus`
# - {glue:text}`sanity_structure`
#
# In this run, of {glue:text}`claims_total` claims: **{glue:text}`claims_verdicts`**. The figure shows each
# claim's statistic with its interval, the study's own value and the bar; the table below gives the numbers.

# %% tags=["hide-input"]
figures.show(figures.forest_plot(cards), "claims_forest", static_dir)

# %% tags=["hide-input"]
figures.Scorecard(cards)

# %% [markdown]
# ## Presets
#
# One code path at three scales. The table lists what each preset simulates and trains; the field, sampling and
# counts of `cpu` are shrunk (each choice is explained in `hrtem_tl/presets.py`), while every dataset, every
# figure cell and all three freezing options are kept.

# %% tags=["hide-input"]
figures.Table(pd.DataFrame([{
    "preset": p.name, "field (nm)": p.extent / 10, "sampling (Å)": p.sim_sampling, "pixel (Å)": p.pixel_size,
    "phonons": p.n_phonons, "train/val scenes (CdSe)": f"{p.n_train}/{p.n_val}",
    "train/val per structure": f"{p.structure_train}/{p.structure_val}", "U-Net width": p.width,
    "epochs per stage": p.epochs, "seeds": len(p.seeds),
    "replicates (dose/defocus/structure)": "/".join(str(p.n_replicates(s)) for s in ("dose", "defocus", "structure")),
    "models (dose/defocus/structure)": "/".join(str(sum(grid_size(s, p).values()))
                                                for s in ("dose", "defocus", "structure"))}
    for p in PRESETS.values()]))

# %% [markdown]
# This page was rendered at preset **{glue:text}`preset_name`**. In the run that built it, simulating every
# dataset took {glue:text}`time_simulate_min:.1f` min and training every model {glue:text}`time_train_min:.1f`
# min (zero when the cache already held them).
#
# ## Re-running
#
# - The whole book: `python -m hrtem_tl book --preset cpu` (the default) makes whatever data and models are
#   missing, executes each chapter with papermill and builds the HTML.
# - One chapter with other parameters:
#   `papermill chapters/dose.ipynb out.ipynb -p preset smoke` (add `-p device cuda` on a GPU machine).
# - The stages alone: `python -m hrtem_tl simulate --series dose --preset cpu`, then
#   `python -m hrtem_tl train --series dose --preset cpu`, then `python -m hrtem_tl claims --series dose` for the
#   scorecard in the terminal; `--seeds 1` trains and scores another training seed; `--scheduler
#   tcp://host:8786` sends the independent scenes and models to an existing Dask cluster.
# - In a live kernel, set `live_widgets = True` to get ipywidgets controls over the same tables.
#
# ## Teaching with this book
#
# Each chapter opens with what it teaches, what it assumes and how long it takes to run, and ends with exercises
# whose solutions stay folded until asked for (their numbers computed by the run, like the prose). The
# {doc}`handson` chapter is a lab session: the study's protocol on one pair of domains, beside training from
# scratch, at the `class` preset on 2-core laptops. `python -m hrtem_tl student OUT` writes every chapter as a
# student notebook, each solution replaced by a stub (`--preset class` is its default), with its py:percent twin
# beside it; the download button of each page offers the executed notebook.

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: intro-sign
# A claim's statistic can have the study's sign in this run and still not "hold". Why does a verdict ask for more
# than the right sign? How many of this run's claims are in that position?
# :::

# %% tags=["solution", "remove-cell"]
right_sign = cards[(cards["this run"] > 0) & (cards.verdict != "holds")]
figures.glue_value("intro_right_sign", len(right_sign))
figures.glue_value("intro_right_sign_verdicts", claims.verdict_counts(right_sign) if len(right_sign) else "none")

# %% [markdown] tags=["solution"]
# :::{solution} intro-sign
# :class: dropdown
# A sign from one set of models can be luck: another set of seeds could flip it. The interval says how far the
# statistic moves when the pretrainings and transfers are resampled; only when it excludes 0 is the sign a
# finding, and only when the statistic also reaches half the study's value is the effect as large as the study's
# claim. Here {glue:text}`intro_right_sign` claims have a positive statistic without holding
# ({glue:text}`intro_right_sign_verdicts`).
# :::

# %% [markdown]
# :::{exercise}
# :label: intro-decide
# Pick the undecided claim that looks nearest to a verdict. How many replicates per source would likely decide it,
# and which preset setting would you change to get them?
# :::

# %% tags=["solution", "remove-cell"]
undecided = cards[cards.verdict.str.startswith("undecided")].sort_values("replicates to decide")
if len(undecided):
    nearest = undecided.iloc[0]
    figures.glue_value("intro_nearest", f"{nearest.series}: {nearest.claim}")
    figures.glue_value("intro_nearest_r", f"about {nearest['replicates to decide']:.0f} replicates per source "
                       f"(this run has {nearest.replicates})" if nearest["replicates to decide"] < 1e6 else
                       "more replicates than the interval can tell (its statistic sits on a boundary)")
else:
    figures.glue_value("intro_nearest", "none: this run has no undecided claim")
    figures.glue_value("intro_nearest_r", "nothing to add")

# %% [markdown] tags=["solution"]
# :::{solution} intro-decide
# :class: dropdown
# Nearest to a verdict in this run: {glue:text}`intro_nearest`, with {glue:text}`intro_nearest_r`. The estimate
# assumes the interval narrows as one over the square root of the replicates. Replicates are the preset's
# `replicates` per series (`hrtem_tl/presets.py`); `--seeds 0,1` doubles every one of them.
# :::

# %% [markdown]
# :::{exercise}
# :label: intro-scale
# The study's published losses went through softmax twice, so they never fall below a floor. Why can we still
# compare our runs with the study, and what can we not compare?
# :::

# %% tags=["solution", "remove-cell"]
from hrtem_tl.train import STUDY_FLOOR

figures.glue_value("intro_floor", STUDY_FLOOR)

# %% [markdown] tags=["solution"]
# :::{solution} intro-scale
# :class: dropdown
# Cross-entropy applied to probabilities instead of logits has the floor log(1 + 1/e) =
# {glue:text}`intro_floor:.4f` and a ceiling: the study's values are bounded like an error rate and not in nats.
# We score our models on that same scale (floor subtracted) and compare signs, ranks and ratios of losses, never
# their absolute values across the two; the study's heatmaps appear beside ours on their own colour scale.
# :::

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
