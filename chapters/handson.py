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
# # Transfer learning in one sitting
#
# The study's protocol on one pair of domains, run live: pretrain a U-Net on images taken at one defocus, measure
# it on images at another (**P**), transfer it with a few labelled images of the new kind and each freezing option
# (**T**), and set it beside the baseline every class asks about and the study does not show: a fresh network
# **trained from scratch** on the same few target images. How many labelled images is a pretraining worth?
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to**
# - run the study's protocol (pretrain, evaluate P, transfer with a freezing option, evaluate T) on one pair of
#   domains;
# - measure what pretraining is worth, in labelled target images, against training from scratch;
# - read training and validation curves for over-fitting;
# - put an interval on a comparison of trained models, and say when it decides nothing.
#
# **You need** Python, the idea of a training loop (minibatches, a loss, an optimiser) and of a convolutional
# segmentation network. The {doc}`methods` chapter describes the images and our U-Net.
#
# **Time to run** on this machine from an empty cache: {glue:text}`handson_time_empty`. This page:
# {glue:text}`handson_time_run`. Re-run it with
# `papermill chapters/handson.ipynb out.ipynb -p preset class` (the default) or any other preset.
# ```

# %% tags=["parameters"]
preset = "class"  # smoke | class | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)
settings = None  # any of hrtem_tl/datasets.py PARAMETERS, a dict: the book passes its --set values here

# %% tags=["hide-input"]
from hrtem_tl import datasets, figures, lesson, study
from hrtem_tl.book import ChapterClock
from hrtem_tl.claims import CONFIDENCE, EQUIVALENCE_FACTOR
from hrtem_tl.claims import lesson as lesson_claims
from hrtem_tl.claims.report import interval_text
from hrtem_tl.presets import get_preset

pr = datasets.with_parameters(get_preset(preset, seeds), settings)
clock = ChapterClock("handson", pr, cache)
models, curves = lesson.results(pr, cache, device)
series, (source, target) = pr.lesson_series, pr.lesson_pair
sizes = list(pr.lesson_sizes)
label = {d: f"{figures.domain_label(series, d)} nm" for d in (source, target)}
figures.glue_value("handson_source", label[source])
figures.glue_value("handson_target", label[target])
figures.glue_value("handson_sizes", ", ".join(map(str, sizes)))
figures.glue_value("handson_models", len(models))
figures.glue_value("handson_replicates", pr.lesson_replicates * len(pr.seeds))
figures.glue_value("handson_lr_pre", pr.main_lr[0])
figures.glue_value("handson_lr_tr", pr.main_lr[1])
figures.glue_value("handson_gentle", lesson.GENTLE)
figures.glue_value("handson_steps", lesson.minibatches(pr))
figures.glue_value("handson_batch", pr.batch_size)
figures.run_parameters(pr, device)

# %% [markdown]
# ## 1. Two domains
#
# The source images are taken at {glue:text}`handson_source` defocus, the target images at
# {glue:text}`handson_target`: CdSe nanoparticles on amorphous carbon at 300 kV, the same scenes seen through a
# different contrast transfer function (the defocus chapter explains it). Pick either in the drop-down: the lattice
# fringes and the carbon's speckle change contrast between the two, the particles' outlines (the mask) do not.

# %% tags=["hide-input"]
figures.show(figures.example_viewer(figures.example_table({series: [source, target]}, pr.name, cache)),
             "handson_examples")

# %% [markdown]
# ## 2. Pretrain, then look at the target
#
# Each of {glue:text}`handson_replicates` U-Nets is pretrained on source images alone (its own initialisation and
# minibatch order) and kept at the epoch of its best loss on source validation images. On the source its median
# loss is {glue:text}`handson_p_source:.3f`; on the target, never seen, {glue:text}`handson_p_target:.3f`
# ({glue:text}`handson_p_ratio:.1f` times as much; losses on the study's scale, bounded like an error rate).

# %% tags=["hide-input"]
pretrained = lesson.pretrained_losses(pr, cache)
medians = pretrained.groupby("domain").loss_study.median()
figures.glue_value("handson_p_source", medians[source])
figures.glue_value("handson_p_target", medians[target])
figures.glue_value("handson_p_ratio", medians[target] / medians[source])

# %% [markdown]
# ## 3. Transfer, or start from scratch?
#
# Each pretrained network is now trained further on {glue:text}`handson_sizes` labelled target images, with
# nothing, the encoder or the decoder frozen (learning rate {glue:text}`handson_lr_tr:g`; the pretraining's was
# {glue:text}`handson_lr_pre:g`). Beside them, as many fresh networks are trained **from scratch** on the same
# images (at the pretraining's learning rate). Both train for the same number of minibatches, a whole
# pretraining's ({glue:text}`handson_steps` minibatches of {glue:text}`handson_batch`), so the only difference
# between a transfer and a from-scratch model is where its weights start. (The study's own transfers see each
# image once per epoch, far fewer steps on a small set: an exercise below measures what that changes.) Every
# model is scored on the same target validation images at its best epoch. Dots are models, lines their median
# (the picker changes the reduction); the dashed line is the pretrained network with no target image at all.

# %% tags=["hide-input"]
figures.show(figures.learning_curve_chart(models, f"Loss on {label[target]} images against the labelled images"),
             "handson_learning_curve", static_dir)

# %% tags=["hide-input"]
card = lesson_claims.scorecard(models)
by_key = card.set_index("key")
for key, row in by_key.iterrows():
    figures.glue_value(f"handson_{key}", row["this run"])
    figures.glue_value(f"handson_{key}_interval", interval_text(row.low, row.high))
    if row.verdict:
        figures.glue_value(f"handson_{key}_verdict", row.verdict)
method_medians = models.groupby(["method", "size"]).loss_study.median()
figures.glue_value("handson_n_min", sizes[0])
figures.glue_value("handson_n_max", sizes[-1])
figures.glue_value("handson_t_min", method_medians[(lesson.TRANSFER, sizes[0])])
figures.glue_value("handson_s_min", method_medians[(lesson.SCRATCH, sizes[0])])
figures.glue_value("handson_t_max", method_medians[(lesson.TRANSFER, sizes[-1])])
figures.glue_value("handson_s_max", method_medians[(lesson.SCRATCH, sizes[-1])])
figures.glue_value("handson_bar", lesson_claims.BAR)
figures.glue_value("handson_factor", EQUIVALENCE_FACTOR)
figures.glue_value("handson_confidence", int(CONFIDENCE * 100))
n, m = lesson_claims.images_saved(models)
figures.glue_value("handson_saved", (
    f"transfer learning on {n} labelled image{'s' * (n > 1)} does as well as training from scratch on {m}"
    if m is not None and m > n else
    f"training from scratch matches transfer learning on {n} image{'s' * (n > 1)} with as few images"
    if m is not None else
    f"no from-scratch training set up to {sizes[-1]} images matches transfer learning on {n}"))

# %% [markdown]
# **What the run shows** ({glue:text}`handson_models` models, medians on the study's scale; each interval is a
# {glue:text}`handson_confidence` % bootstrap interval that resamples whole pretrainings and whole from-scratch
# replicates; a claim holds when its statistic reaches log10 {glue:text}`handson_factor` =
# {glue:text}`handson_bar:.3f`, a factor of {glue:text}`handson_factor`, and its interval excludes 0).
#
# - With {glue:text}`handson_n_min` labelled target image(s), transfer learning reaches
#   {glue:text}`handson_t_min:.3f` and training from scratch {glue:text}`handson_s_min:.3f`: log10 of their ratio
#   is {glue:text}`handson_transfer_beats_scratch:+.2f` {glue:text}`handson_transfer_beats_scratch_interval`,
#   **{glue:text}`handson_transfer_beats_scratch_verdict`**.
# - With {glue:text}`handson_n_max` images: {glue:text}`handson_t_max:.3f` against {glue:text}`handson_s_max:.3f`
#   (log10 ratio {glue:text}`handson_gap_closes:+.2f` smaller than at the smallest set,
#   {glue:text}`handson_gap_closes_interval`: the gap closes, **{glue:text}`handson_gap_closes_verdict`**).
# - In labelled images: {glue:text}`handson_saved`.

# %% tags=["hide-input"]
figures.Table(card[["claim", "this run", "low", "high", "verdict"]].rename(
    columns={"this run": "log10 ratio (this run)", "low": "interval low", "high": "interval high"}).round(3))

# %% [markdown]
# ## 4. Watch them learn
#
# Every model's training loss (the mean over each epoch's minibatches, on the images it trains on) and its loss
# on validation images after each epoch (the target's; the source's for the pretrainings, dashed). Pick a target
# set size: where the training loss keeps falling and the validation loss does not, the network is memorising
# its few images instead of learning the task.

# %% tags=["hide-input"]
figures.show(figures.epoch_curves_chart(curves, "Loss per epoch, every model"), "handson_epochs", static_dir)

# %% [markdown]
# ## Exercises
#
# Predict first, then open the solution: every number in it was computed by this run.
#
# :::{exercise}
# :label: handson-freeze
# Transfer learning here can freeze the encoder (only the decoder learns) or the decoder (only the encoder
# learns). Which option do you expect to do best on the smallest target set, and on the largest? About what
# share of the network's parameters does each option train?
# :::

# %% tags=["solution", "remove-cell"]

from hrtem_tl.model import FREEZE_OPTIONS, UNet, count_trainable, freeze

total = count_trainable(UNet(pr.width))
for option in FREEZE_OPTIONS:
    figures.glue_value(f"handson_share_{option}", 100 * freeze(UNet(pr.width), option) / total)
transfers = models[models.method == lesson.TRANSFER]
per_freeze = transfers.groupby(["size", "freeze"]).loss_study.median().unstack("freeze")
for end, size in (("min", sizes[0]), ("max", sizes[-1])):
    best = per_freeze.loc[size].idxmin()
    figures.glue_value(f"handson_best_{end}", best)
    figures.glue_value(f"handson_best_{end}_all", ", ".join(f"{f} frozen {per_freeze.loc[size, f]:.3f}"
                                                            for f in FREEZE_OPTIONS))

# %% [markdown] tags=["solution"]
# :::{solution} handson-freeze
# :class: dropdown
# With nothing frozen every parameter trains ({glue:text}`handson_share_none:.0f` %); with the encoder frozen
# {glue:text}`handson_share_encoder:.0f` % (the decoder), with the decoder frozen
# {glue:text}`handson_share_decoder:.0f` %. Median loss on the target per option: with
# {glue:text}`handson_n_min` image(s) the best is **{glue:text}`handson_best_min` frozen**
# ({glue:text}`handson_best_min_all`); with {glue:text}`handson_n_max` images **{glue:text}`handson_best_max`
# frozen** ({glue:text}`handson_best_max_all`). The study found freezing the encoder slightly worse than no
# freezing and the decoder about equal (its Fig 6.1; the defocus chapter tests that claim with intervals). The
# fewer parameters a transfer moves, the less it can fit its few images, for better (less over-fitting) or worse
# (less adaptation): compare the two sizes, and the learning-curve chart with one checkbox at a time.
# :::

# %% [markdown]
# :::{exercise}
# :label: handson-fewer
# Take away three quarters of the labelled target images (from {glue:text}`handson_n_max` to the next size down).
# By how much do you expect the loss to rise after transfer learning, and after training from scratch?
# :::

# %% tags=["solution", "remove-cell"]
medians = models.groupby(["method", "size"]).loss_study.median()
fewer, most = sizes[-2], sizes[-1]
figures.glue_value("handson_fewer", fewer)
figures.glue_value("handson_rise_transfer", medians[(lesson.TRANSFER, fewer)] / medians[(lesson.TRANSFER, most)])
figures.glue_value("handson_rise_scratch", medians[(lesson.SCRATCH, fewer)] / medians[(lesson.SCRATCH, most)])
rise = {m: medians[(m, fewer)] / medians[(m, most)] for m in (lesson.TRANSFER, lesson.SCRATCH)}
figures.glue_value("handson_rise_word", "more" if rise[lesson.SCRATCH] > rise[lesson.TRANSFER] else "less")

# %% [markdown] tags=["solution"]
# :::{solution} handson-fewer
# :class: dropdown
# From {glue:text}`handson_n_max` to {glue:text}`handson_fewer` images the median loss after transfer learning
# changes by a factor {glue:text}`handson_rise_transfer:.2f`, from scratch by
# {glue:text}`handson_rise_scratch:.2f`: from scratch loses {glue:text}`handson_rise_word` than transfer
# learning in this run. The usual expectation: the pretrained network already segments particles and the target
# images only adjust it to the new contrast, while a network from scratch must learn the whole task from them.
# :::

# %% [markdown]
# :::{exercise}
# :label: handson-lr
# What happens to the transfers with a learning rate {glue:text}`handson_gentle` times smaller, with nothing
# frozen, on the smallest and on the largest target set? (The book trains these models: `lesson.gentle_grid`.)
# :::

# %% tags=["solution", "remove-cell"]
gentle = lesson.variant_table(pr, "gentle", cache).groupby(["size", "variant"]).loss_study.median().unstack()
for end, size in (("min", sizes[0]), ("max", sizes[-1])):
    figures.glue_value(f"handson_lr_{end}", f"{gentle.loc[size, 'lesson']:.3f} at {pr.main_lr[1]:g} and "
                       f"{gentle.loc[size, lesson.VARIANTS['gentle']]:.3f} at {pr.main_lr[1] / lesson.GENTLE:g}")

# %% [markdown] tags=["solution"]
# :::{solution} handson-lr
# :class: dropdown
# Median loss on the target, nothing frozen: with {glue:text}`handson_n_min` image(s)
# {glue:text}`handson_lr_min`; with {glue:text}`handson_n_max` images {glue:text}`handson_lr_max`. A smaller
# rate keeps the network closer to its pretraining: less room to over-fit a few images, slower adaptation to
# many within the same epochs. The study's own sweep (its Fig 6.1; our defocus chapter tests it with intervals)
# found the more aggressive rates best.
# :::

# %% [markdown]
# :::{exercise}
# :label: handson-protocol
# The transfers here train as long as a pretraining. The study's transfer stage is shorter: each epoch is one
# pass over the transfer images and their flips and rotations, so a small set gets few minibatches. Predict the
# loss of such transfers (nothing frozen) on each target set size, against the ones above and against training
# from scratch.
# :::

# %% tags=["solution", "remove-cell"]
protocol = lesson.variant_table(pr, "protocol", cache).groupby(["size", "variant"]).loss_study.median().unstack()
scratch_medians = models[models.method == lesson.SCRATCH].groupby("size").loss_study.median()
figures.glue_value("handson_protocol", "; ".join(
    f"{n} image{'s' * (n > 1)}: {protocol.loc[n, lesson.VARIANTS['protocol']]:.3f} "
    f"(equal budget {protocol.loc[n, 'lesson']:.3f}, from scratch {scratch_medians[n]:.3f})" for n in sizes))
figures.glue_value("handson_protocol_steps", ", ".join(
    f"{study.minibatches(job, pr, job.transfer_size)} on {job.transfer_size}"
    for job in lesson.variant_grid(pr, "protocol") if (job.seed, job.replicate) == (pr.seeds[0], 0)))

# %% [markdown] tags=["solution"]
# :::{solution} handson-protocol
# :class: dropdown
# Median loss on the target with the study's transfer budget (minibatches over the stage:
# {glue:text}`handson_protocol_steps`), beside the equal-budget transfers and training from scratch:
# {glue:text}`handson_protocol`. A comparison of transfer learning with training from scratch must say what
# budget each had: with few steps a transfer stays near its pretraining, which helps only as far as the
# pretraining already suits the target.
# :::

# %% [markdown]
# :::{exercise}
# :label: handson-overfit
# Open the per-epoch chart at the smallest target set. Compare the training and the validation loss of the
# networks trained from scratch with those of the transfers. What do you see, and why?
# :::

# %% tags=["solution", "remove-cell"]
last = curves[curves["size"] == sizes[0]].groupby(["method", "model", "split"]).loss.agg(["last", "min"])
for method, name in ((lesson.SCRATCH, "scratch"), (lesson.TRANSFER, "transfer")):
    rows = last.loc[method]
    figures.glue_value(f"handson_train_{name}", rows.xs("train", level="split")["last"].median())
    figures.glue_value(f"handson_val_{name}", rows.xs("validation", level="split")["min"].median())

# %% [markdown] tags=["solution"]
# :::{solution} handson-overfit
# :class: dropdown
# Medians over the models at {glue:text}`handson_n_min` target image(s), cross-entropy in nats: from scratch, the
# last epoch's training loss is {glue:text}`handson_train_scratch:.3f` and the best validation loss
# {glue:text}`handson_val_scratch:.3f`; after transfer {glue:text}`handson_train_transfer:.3f` and
# {glue:text}`handson_val_transfer:.3f`. A network trained from scratch on so few images can fit them (a low
# training loss) without learning what generalises to new particles and new carbon (a higher validation loss):
# over-fitting. The pretrained network starts from features learnt on many source images: compare its gap
# between the two.
# :::

# %% [markdown]
# :::{exercise}
# :label: handson-decide
# The run trains {glue:text}`handson_replicates` models per method and size. Is the gap between transfer learning
# and training from scratch at {glue:text}`handson_n_max` images a finding, or could another set of seeds reverse
# it? What would you do to find out?
# :::

# %% tags=["solution", "remove-cell"]
row = by_key.loc[f"gap_{sizes[-1]}"]
figures.glue_value("handson_gap_max", row["this run"])
figures.glue_value("handson_gap_max_interval", interval_text(row.low, row.high))
figures.glue_value("handson_decide", "its interval excludes 0: another set of seeds would very likely give the "
                   "same sign" if row.low > 0 or row.high < 0 else
                   "its interval includes 0: another set of seeds could reverse it")

# %% [markdown] tags=["solution"]
# :::{solution} handson-decide
# :class: dropdown
# At {glue:text}`handson_n_max` images log10(from scratch / transfer) is {glue:text}`handson_gap_max:+.3f`
# {glue:text}`handson_gap_max_interval`: {glue:text}`handson_decide`. The interval comes from resampling whole
# pretrainings and whole from-scratch replicates (`hrtem_tl.claims.lesson.bootstrap`); to narrow it, train more
# replicates (`lesson_replicates` in the preset) or more seeds (`-p seeds 0,1`): it narrows about as one over
# the square root of their number. The study pooled 36 to 1440 pretrainings per heatmap cell for this reason.
# :::

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda size=sizes[0], split="validation": curves[
        (curves["size"].isin([size, 0])) & (curves.split == split)].pivot_table(
        index="epoch", columns="model", values="loss"), size=sizes, split=["train", "validation"])

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
