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
# # Structure: transfer across lattices and particle sizes
#
# The study's Fig 9.2. Nine lattices (wurtzite, fcc, diamond, spinel, bcc), small (radius 1-2 nm) and large
# (2.5-3.5 nm) particles, imaged at -10 nm and 300 e⁻/Å². Heatmaps show small particles; the last figure compares
# sizes.
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to** predict which crystal lattices transfer to which, and what particle size does; recognise a
# lattice the network did not learn.
#
# **You need** the {doc}`handson` chapter, and crystal structures (fcc, bcc, diamond, wurtzite, spinel).
#
# **Time to run** on this machine from an empty cache: {glue:text}`structure_time_empty`. This page:
# {glue:text}`structure_time_run`.
# ```

# %% tags=["parameters"]
preset = "cpu"  # smoke | class | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)
lattices = None  # materials: built-in lattices (the study's nine, Au) or CIF files (default: the study's nine)
cif_label_blur = None  # Å, the label's Gaussian sigma for CIF materials (default 1.6, the study's for most)
structure_defocus = None  # nm, the fixed defocus (default: the study's -10)
structure_dose = None  # e-/Å², the fixed dose (default: the study's 300)
small_radii = None  # nm, [low, high] of the small particles' radii (default: the study's 1-2)
large_radii = None  # nm, [low, high] of the large particles' radii (default: the study's 2.5-3.5)
voltage = None  # kV, the accelerating voltage, 60-300 (default: the study's 300)
cs = None  # mm, the spherical aberration (default: the study's 0)
focal_spread = None  # Å, the focal spread (default: the study's 10)
transfer_size = None  # target images per transfer (default: the preset's)
epochs = None  # epochs per training stage (default: the preset's)
learning_rates = None  # (pretraining, transfer) (default: the preset's)
settings = None  # any of hrtem_tl/datasets.py PARAMETERS, a dict: the book passes its --set values here

# %% tags=["hide-input"]
import pandas as pd

from hrtem_tl import claims, datasets, figures, study
from hrtem_tl.book import ChapterClock
from hrtem_tl.model import FREEZE_OPTIONS
from hrtem_tl.presets import get_preset

pr = datasets.with_parameters(get_preset(preset, seeds), settings, lattices=lattices, cif_label_blur=cif_label_blur,
                              structure_defocus=structure_defocus, structure_dose=structure_dose, voltage=voltage,
                              cs=cs, focal_spread=focal_spread, transfer_size=transfer_size, epochs=epochs,
                              learning_rates=learning_rates, small_radii=small_radii, large_radii=large_radii)
pr = pr.for_series("structure")
clock = ChapterClock("structure", pr, cache)
results = study.results("structure", pr, cache, device)
evidence = claims.evidence("structure", results, pr)
small = [f"{name}_small" for name in claims.lattice_names(evidence)]
models = study.model_table(results, "structure", pr)
card = claims.glue_scorecard(evidence, figures.glue_value, cache=cache)
figures.run_parameters(pr, device)

# %% [markdown]
# {glue:text}`structure_sanity`. Every P cell pools {glue:text}`structure_replicates` pretrainings of its source
# (P does not depend on the freezing checkboxes); each statistic carries its 90 % bootstrap interval, and the
# verdicts of this chapter are: {glue:text}`structure_verdicts`.
#
# ## Lattice x lattice, small particles

# %% tags=["hide-input"]
small_models = models[models.source.isin(small) & models.target.isin(small)]
figures.show(figures.pt_heatmaps(small_models, "structure", small, "Loss on the target lattice (small particles)",
                                 cell=22), "structure_pt", static_dir)

# %% tags=["hide-input"]
figures.Download(models, "structure_models.csv", "Download the per-model table (small and large particles)")

# %% [markdown]
# After pretraining, a source of the target's own crystal symmetry transfers better than sources of other
# symmetries: the mean sign over such source pairs is {glue:text}`claim_structure_symmetry_run:+.2f`
# {glue:text}`claim_structure_symmetry_interval`
# (study {glue:text}`claim_structure_symmetry_study:+.2f`), **{glue:text}`claim_structure_symmetry_verdict`**.
# Within a symmetry class, the model pretrained on the lighter lattice does better than the heavier one's on the
# same small target (the sign of their difference over the four classes of two lattices and the nine targets,
# their own two included, averaged):
# {glue:text}`claim_structure_lighter_run:+.2f` {glue:text}`claim_structure_lighter_interval` (study
# {glue:text}`claim_structure_lighter_study:+.2f`),
# **{glue:text}`claim_structure_lighter_verdict`**. After transfer, T varies more between target lattices than
# between pretraining lattices: log10 of the ratio of the two spreads is
# {glue:text}`claim_structure_target_run:+.2f` {glue:text}`claim_structure_target_interval` (study
# {glue:text}`claim_structure_target_study:+.2f`),
# **{glue:text}`claim_structure_target_verdict`**.
#
# ## Small and large particles

# %% tags=["hide-input"]
size_rows = []  # on the study's scale, as the size claims below: P from every pretraining, T from the transfers
for _, row in models.iterrows():
    (a_lattice, a_size), (b_lattice, b_size) = row.source.rsplit("_", 1), row.target.rsplit("_", 1)
    if a_lattice != b_lattice or (row.stage == "T" and a_size == b_size):
        continue
    for freeze in (FREEZE_OPTIONS if row.freeze == study.PRETRAINED else (row.freeze,)):
        size_rows.append({"pairing": f"{a_size} -> {b_size}", "freeze": freeze, "stage": row.stage,
                          "loss": row.loss_study, "lattice": a_lattice})
figures.show(figures.distribution_chart(pd.DataFrame(size_rows), "pairing", "pretraining size -> target size",
                                        column="stage", y="loss", y_title="loss (study's scale)",
                                        title="Loss by particle size"), "structure_size", static_dir)

# %% [markdown]
# On large particles, small-trained models lose after pretraining: the median over lattices of
# log10(P(small -> large) / P(large -> large)) is {glue:text}`claim_size_small_loses_run:+.2f`
# {glue:text}`claim_size_small_loses_interval`
# (study {glue:text}`claim_size_small_loses_study:+.2f`), **{glue:text}`claim_size_small_loses_verdict`**;
# transfer closes that gap by {glue:text}`claim_size_irons_out_run:+.2f` {glue:text}`claim_size_irons_out_interval`
# (study
# {glue:text}`claim_size_irons_out_study:+.2f`), **{glue:text}`claim_size_irons_out_verdict`**.
#
# ## Beside the published values

# %% tags=["hide-input"]
figures.glue_value("struct_rank_p", figures.rank_text(claims.agreement(evidence, "P", small)))
figures.glue_value("struct_rank_t", figures.rank_text(claims.agreement(evidence, "T", small)))
figures.published_beside(claims.reference_cells("structure"), "structure", small, "structure_reference",
                         cell=18)

# %% [markdown]
# Spearman rank correlation with the published small-particle cells: P {glue:text}`struct_rank_p`,
# T {glue:text}`struct_rank_t`.
#
# ## The claims of this chapter

# %% tags=["hide-input"]
figures.Scorecard(card)

# %% [markdown]
# ## Exercises
#
# Predict first, then open the solution: its numbers were computed by this run.
#
# :::{exercise}
# :label: structure-pick
# You must segment {glue:text}`structure_pick_target` nanoparticles but have labelled images of other lattices
# only. Which would you pretrain on, and why? Check your answer against the P heatmap.
# :::

# %% tags=["solution", "remove-cell"]
target = "Ag_small" if "Ag_small" in small else small[0]  # the study's example, or this run's first material
p_cells = study.cell_table(models).set_index(["source", "target"]).P_study
column = {s: p_cells[(s, target)] for s in small if s != target and (s, target) in p_cells}
best = min(column, key=column.get)
figures.glue_value("structure_pick_target", target.replace("_small", ""))
figures.glue_value("structure_pick_symmetry", claims.lattice_of(evidence, target.replace("_small", "")).structure)
figures.glue_value("structure_best_for_ag", best.replace("_small", ""))
figures.glue_value("structure_best_for_ag_loss", column[best])
figures.glue_value("structure_best_symmetry", claims.lattice_of(evidence, best.replace("_small", "")).structure)
figures.glue_value("structure_ag_all", ", ".join(f"{s.replace('_small', '')} {v:.3f}"
                                                 for s, v in sorted(column.items(), key=lambda kv: kv[1])))

# %% [markdown] tags=["solution"]
# :::{solution} structure-pick
# :class: dropdown
# {glue:text}`structure_pick_target` is of the {glue:text}`structure_pick_symmetry` class. Median P on its small
# particles per pretraining lattice, best first:
# {glue:text}`structure_ag_all`. The best here is **{glue:text}`structure_best_for_ag`**
# ({glue:text}`structure_best_symmetry`). The study found lattices of the same crystal symmetry transfer well to
# each other; this run's test of that claim: {glue:text}`claim_structure_symmetry_run:+.2f`
# {glue:text}`claim_structure_symmetry_interval` (**{glue:text}`claim_structure_symmetry_verdict`**).
# :::

# %% [markdown]
# :::{exercise}
# :label: structure-size
# A model pretrained on small particles meets large ones of the same lattice. Predict whether
# it does worse on them than a model pretrained on large particles, and whether transfer learning closes the gap.
# :::

# %% [markdown] tags=["solution"]
# :::{solution} structure-size
# :class: dropdown
# The median over lattices of log10(P(small -> large) / P(large -> large)) is
# {glue:text}`claim_size_small_loses_run:+.2f` {glue:text}`claim_size_small_loses_interval` in this run (study
# {glue:text}`claim_size_small_loses_study:+.2f`: small-trained models lose a little), and transfer changes the
# gap by {glue:text}`claim_size_irons_out_run:+.2f` {glue:text}`claim_size_irons_out_interval`. Verdicts:
# **{glue:text}`claim_size_small_loses_verdict`** and **{glue:text}`claim_size_irons_out_verdict`**: a verdict
# that is "not learned" or "undecided" is a finding about this scale, not about the physics.
# :::

# %% [markdown]
# :::{exercise}
# :label: structure-hardest
# Which lattice do you expect to be the hardest to segment, on its own, and why?
# :::

# %% tags=["solution", "remove-cell"]
learned = claims.learned_sources(evidence).sort_values("median")
hardest = learned.iloc[-1]
figures.glue_value("structure_hardest", hardest.source)
figures.glue_value("structure_hardest_ratio", hardest["median"])
figures.glue_value("structure_easiest", learned.iloc[0].source)
figures.glue_value("structure_easiest_ratio", learned.iloc[0]["median"])

# %% [markdown] tags=["solution"]
# :::{solution} structure-hardest
# :class: dropdown
# In this run, the loss of each lattice's pretrainings on their own validation images over the loss of a constant
# prediction (1: learnt nothing): hardest **{glue:text}`structure_hardest`**
# ({glue:text}`structure_hardest_ratio:.2f`), easiest {glue:text}`structure_easiest`
# ({glue:text}`structure_easiest_ratio:.2f`). A particle is seen through how strongly its atoms scatter electrons,
# which grows with the atomic number: diamond C is carbon on a carbon support, the weakest contrast of all, and its
# closely spaced fringes need fine pixels (the cpu-fine preset; the {doc}`ablation` page compares them).
# :::

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda reduction="median": study.cell_table(small_models, reduction).pivot(
        index="source", columns="target", values="T"), reduction=list(figures.REDUCTIONS))

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
