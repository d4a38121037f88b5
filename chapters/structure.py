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
preset = "cpu"  # smoke | cpu | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]
import json

import pandas as pd

from hrtem_tl import figures, study
from hrtem_tl.structures import LATTICES

results = study.results("structure", preset, cache, device)
small = [f"{name}_small" for name in LATTICES]
models = figures.model_table(results, "structure", preset, domains=small)
cells = figures.cell_table(models, "median")

# %% [markdown]
# ## Lattice x lattice, small particles

# %%
figures.show(figures.pt_heatmaps(models, "structure", small, "Loss on the target lattice (small particles)",
                                 cell=22), "structure_pt", static_dir)

# %% tags=["hide-input"]
symmetry = {f"{name}_small": lat.structure for name, lat in LATTICES.items()}
off = cells[cells.source != cells.target].assign(
    same=lambda c: [symmetry[a] == symmetry[b] for a, b in zip(c.source, c.target)])
figures.glue_value("struct_same_p", off[off.same]["P"].median())
figures.glue_value("struct_other_p", off[~off.same]["P"].median())
same_lower = off[off.same]["P"].median() < off[~off.same]["P"].median()
figures.glue_value("struct_same_word", "lower" if same_lower else "not lower")
figures.glue_value("struct_spread_p", figures.spread_across_sources(cells, "P"))
figures.glue_value("struct_spread_t", figures.spread_across_sources(cells, "T"))
target_share = off.groupby("target")["T"].median().std() / max(off.groupby("source")["T"].median().std(), 1e-12)
figures.glue_value("struct_target_share", target_share)
figures.glue_value("struct_target_word", "mostly on the target lattice" if target_share > 1
                   else "not mainly on the target lattice in this run")

# %% [markdown]
# After pretraining, pairs that share a crystal symmetry have a median P of {glue:text}`struct_same_p:.4f`,
# {glue:text}`struct_same_word` than the {glue:text}`struct_other_p:.4f` of pairs that do not. After transfer,
# the spread across pretraining lattices falls from {glue:text}`struct_spread_p:.4f` to
# {glue:text}`struct_spread_t:.4f`, and T varies {glue:text}`struct_target_share:.1f` times more between target
# lattices than between pretraining lattices: performance depends {glue:text}`struct_target_word` (the study:
# mostly on the target).

# %% [markdown]
# ## Small and large particles

# %% tags=["hide-input"]
size_rows = []
for _, row in results[results.kind == "transfer"].iterrows():
    a, b = row.source.rsplit("_", 1), row.target.rsplit("_", 1)
    if a[0] == b[0] and a[1] != b[1]:
        for stage in ("P", "T"):
            size_rows.append({"pairing": f"{a[1]} -> {b[1]}", "freeze": row.freeze, "stage": stage,
                              "loss": row[stage], "lattice": a[0]})
pre = results[results.kind == "pretrain"]
for _, row in pre.iterrows():  # in-distribution reference: each model on its own size
    lattice, size = row.source.rsplit("_", 1)
    p = json.loads(row.P_all)[row.source]
    for freeze in ("none", "encoder", "decoder"):
        size_rows.append({"pairing": f"{size} -> {size}", "freeze": freeze, "stage": "P", "loss": p,
                          "lattice": lattice})
sizes = pd.DataFrame(size_rows)
figures.show(figures.distribution_chart(sizes, "pairing", "pretraining size -> target size", column="stage",
                                        y="loss", y_title="loss (nats)", title="Loss by particle size"),
             "structure_size", static_dir)

# %% tags=["hide-input"]
med = sizes.groupby(["pairing", "stage"])["loss"].median()
figures.glue_value("size_sl_p", med.get(("small -> large", "P"), float("nan")))
figures.glue_value("size_ll_p", med.get(("large -> large", "P"), float("nan")))
figures.glue_value("size_sl_t", med.get(("small -> large", "T"), float("nan")))

# %% [markdown]
# On large particles, models pretrained on small ones have a median P of {glue:text}`size_sl_p:.4f`, against
# {glue:text}`size_ll_p:.4f` for models pretrained on large particles; after transfer to large particles the
# small-pretrained models reach {glue:text}`size_sl_t:.4f`.

# %% [markdown]
# ## Beside the published values

# %% tags=["hide-input"]
reference = figures.load_reference("structure")
figures.glue_value("struct_rank_p", figures.rank_correlation(cells, reference, "P"))
figures.glue_value("struct_rank_t", figures.rank_correlation(cells, reference, "T"))
figures.show(figures.reference_heatmaps(reference, "structure", small, cell=18), "structure_reference")

# %% [markdown]
# Spearman rank correlation with the published small-particle cells: P {glue:text}`struct_rank_p:.2f`,
# T {glue:text}`struct_rank_t:.2f`.

# %% tags=["hide-input"]
if live_widgets:
    figures.explore(lambda reduction="median": figures.cell_table(models, reduction).pivot(
        index="source", columns="target", values="T"), reduction=list(figures.REDUCTIONS))
