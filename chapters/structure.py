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
import json

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
card = claims.glue_scorecard(evidence, figures.glue_value)
figures.RunParameters(preset=pr.name, device=figures.device_name(device), seeds=",".join(map(str, pr.seeds)))

# %% [markdown]
# {glue:text}`structure_sanity`
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
# (study {glue:text}`claim_structure_symmetry_study:+.2f`), **{glue:text}`claim_structure_symmetry_verdict`**.
# Within a symmetry class, the lighter lattice transfers better to the heavier than the reverse:
# {glue:text}`claim_structure_lighter_run:+.2f` (study {glue:text}`claim_structure_lighter_study:+.2f`),
# **{glue:text}`claim_structure_lighter_verdict`**. After transfer, T varies more between target lattices than
# between pretraining lattices: log10 of the ratio of the two spreads is
# {glue:text}`claim_structure_target_run:+.2f` (study {glue:text}`claim_structure_target_study:+.2f`),
# **{glue:text}`claim_structure_target_verdict`**.
#
# ## Small and large particles

# %% tags=["hide-input"]
size_rows = []  # on the study's scale, as the size claims below
for _, row in results[results.kind == "transfer"].iterrows():
    a, b = row.source.rsplit("_", 1), row.target.rsplit("_", 1)
    if a[0] == b[0] and a[1] != b[1]:
        for stage in ("P", "T"):
            size_rows.append({"pairing": f"{a[1]} -> {b[1]}", "freeze": row.freeze, "stage": stage,
                              "loss": row[f"{stage}_study"], "lattice": a[0]})
for _, row in results[results.kind == "pretrain"].iterrows():  # in-distribution reference: each on its own size
    lattice, size = row.source.rsplit("_", 1)
    for freeze in FREEZE_OPTIONS:
        size_rows.append({"pairing": f"{size} -> {size}", "freeze": freeze, "stage": "P",
                          "loss": json.loads(row.P_all_study)[row.source], "lattice": lattice})
figures.show(figures.distribution_chart(pd.DataFrame(size_rows), "pairing", "pretraining size -> target size",
                                        column="stage", y="loss", y_title="loss (study's scale)",
                                        title="Loss by particle size"), "structure_size", static_dir)

# %% [markdown]
# On large particles, small-trained models lose after pretraining: the median over lattices of
# log10(P(small -> large) / P(large -> large)) is {glue:text}`claim_size_small_loses_run:+.2f`
# (study {glue:text}`claim_size_small_loses_study:+.2f`), **{glue:text}`claim_size_small_loses_verdict`**;
# transfer closes that gap by {glue:text}`claim_size_irons_out_run:+.2f` (study
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
