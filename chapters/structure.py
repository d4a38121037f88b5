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

# %% tags=["parameters"]
preset = "cpu"  # smoke | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]
import pandas as pd

from hrtem_tl import claims, figures, study
from hrtem_tl.model import FREEZE_OPTIONS
from hrtem_tl.presets import get_preset
from hrtem_tl.structures import LATTICES

pr = get_preset(preset, seeds)
results = study.results("structure", pr, cache, device)
evidence = claims.evidence("structure", results, pr)
small = [f"{name}_small" for name in LATTICES]
models = study.model_table(results, "structure", pr)
card = claims.glue_scorecard(evidence, figures.glue_value, cache=cache)
figures.RunParameters(preset=pr.name, device=figures.device_name(device), seeds=",".join(map(str, pr.seeds)))

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
figures.glue_value("struct_rank_p", claims.agreement(evidence, "P", small))
figures.glue_value("struct_rank_t", claims.agreement(evidence, "T", small))
figures.show(figures.reference_heatmaps(claims.reference_cells("structure"), "structure", small, cell=18),
             "structure_reference")

# %% [markdown]
# Spearman rank correlation with the published small-particle cells: P {glue:text}`struct_rank_p:.2f`,
# T {glue:text}`struct_rank_t:.2f`.
#
# ## The claims of this chapter

# %% tags=["hide-input"]
figures.Table(claims.display_table(card))

# %% tags=["remove-cell"]
if live_widgets:
    figures.explore(lambda reduction="median": study.cell_table(small_models, reduction).pivot(
        index="source", columns="target", values="T"), reduction=list(figures.REDUCTIONS))
