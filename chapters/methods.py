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
# # Methods: from atoms to a trained model
#
# Everything here is computed by the package `hrtem_tl` in this run; the numbers come from
# `../shared/STUDY.md` (the study's methods), cited in the code where they are used.

# %% tags=["parameters"]
preset = "cpu"  # smoke | cpu | cpu-fine | paper
cache = None  # cache folder (default: $HRTEM_TL_CACHE or ./.hrtem_cache)
device = "auto"  # auto | cpu | cuda
seeds = None  # training seeds, e.g. "0,1" (default: the preset's)
static_dir = None  # folder for PNG copies of the figures
live_widgets = False  # ipywidgets controls (needs a live kernel)

# %% tags=["hide-input"]
import pandas as pd

from hrtem_tl import claims, datasets, figures, structures, study
from hrtem_tl.model import UNet, count_trainable, freeze
from hrtem_tl.presets import get_preset

pr = get_preset(preset, seeds)
dataset_files = datasets.simulate_series("all", pr, cache, study.simulation_device(device), progress=False)
figures.RunParameters(preset=pr.name, device=figures.device_name(device), seeds=",".join(map(str, pr.seeds)))

# %% [markdown]
# ## Structures
#
# Nanoparticles are spheres cut from a bulk crystal in a uniformly random orientation and placed on amorphous
# carbon (2 g/cm³, no C-C pair closer than 1.3 Å); CdSe particles carry up to two stacking faults.

# %% tags=["hide-input"]
pd.DataFrame([{"lattice": lat.name, "structure": lat.structure, "space group": lat.spacegroup, "a (Å)": lat.a,
               "c (Å)": lat.c or "", "atoms per cell": len(lat.unit_cell()), "label blur (Å)": lat.label_blur}
              for lat in structures.LATTICES.values()])

# %% [markdown]
# ## Imaging
#
# One multislice exit wave per scene at 300 kV, downsampled to the output pixel; then, per dataset, the optics
# (defocus drawn around the domain's with a standard deviation of 1.5 nm, focal spread 10 Å) and Poisson noise at
# the dataset's dose. Zero defocus is the minimum-contrast plane of the particles in vacuum, found per scene.
# Labels come from the particles-in-vacuum phase (> π/16), blurred and thresholded so that their area matches
# the projected particles. Pick a dataset to see a validation image and its label:

# %%
examples = figures.example_table({name: s.domains for name, s in datasets.SERIES.items()}, pr, cache)
figures.show(figures.example_viewer(examples), "examples", static_dir)

# %% tags=["hide-input"]
figures.glue_value("preset_name", pr.name)
figures.glue_value("pixel_size", pr.pixel_size)
figures.glue_value("extent_nm", pr.extent / 10)
figures.glue_value("n_phonons", pr.n_phonons)
figures.glue_value("sim_sampling", pr.sim_sampling)

# %% [markdown]
# At this preset ({glue:text}`preset_name`): a {glue:text}`extent_nm:.1f` nm field, multislice sampling
# {glue:text}`sim_sampling` Å, {glue:text}`n_phonons` frozen-phonon configuration(s), output pixels of
# {glue:text}`pixel_size` Å.

# %% [markdown]
# ## Network and protocol
#
# A U-Net with a pre-activation ResNet encoder (initial block, four stages of two residual units) and a decoder
# of upsampling blocks joined by skip connections, ending in a 1x1 convolution to two classes. Two stages of
# training: pretraining on the source domain, then transfer learning on the target with none, the encoder or
# the decoder frozen. Cross-entropy on logits, Adam, learning rate x0.99 per epoch, minibatch 16, dihedral
# augmentation.

# %% tags=["hide-input"]
paper_net = UNet(64)
total = count_trainable(paper_net)
figures.glue_value("paper_params_m", total / 1e6)
figures.glue_value("paper_encoder_frozen_pct", 100 * (1 - freeze(paper_net, "encoder") / total))
figures.glue_value("this_width", pr.width)
figures.glue_value("this_params_m", count_trainable(UNet(pr.width)) / 1e6)

# %% [markdown]
# At the study's width the network has {glue:text}`paper_params_m:.1f` M trainable parameters; freezing the encoder
# removes {glue:text}`paper_encoder_frozen_pct:.0f` % of them. This run used width {glue:text}`this_width`
# ({glue:text}`this_params_m:.2f` M parameters).
#
# ## Training cost per freezing option (Fig 6.2), measured in this run

# %% tags=["hide-input"]
rows = pd.concat([study.results(s, pr, cache, device) for s in datasets.SERIES], ignore_index=True)
transfers = rows[rows.kind == "transfer"].copy()
transfers["ms per image"] = 1000 / transfers.images_per_second
figures.show(figures.reduced_bars(transfers, "series", "series", "ms per image", "training time per image (ms)",
                                  title=f"Transfer-learning cost on {transfers.device.iloc[0]}"),
             "training_cost", static_dir)

# %% tags=["hide-input"]
cost = transfers.groupby("freeze")["ms per image"].median()
every_series = claims.Evidence("all", pd.DataFrame(), rows, pr)
figures.glue_value("cost_none", cost.get("none"))
figures.glue_value("cost_encoder", cost.get("encoder"))
figures.glue_value("cost_decoder", cost.get("decoder"))
figures.glue_value("cost_saving_pct", 100 * claims.freezing_encoder_saves_time(every_series))
figures.glue_value("params_saving_pct", 100 * claims.freezing_encoder_saves_parameters(every_series))

# %% [markdown]
# Median training time per image: {glue:text}`cost_none:.2f` ms with nothing frozen,
# {glue:text}`cost_encoder:.2f` ms with the encoder frozen and {glue:text}`cost_decoder:.2f` ms with the decoder
# frozen. Freezing the encoder cut the trainable parameters by {glue:text}`params_saving_pct:.0f` % and the time
# by {glue:text}`cost_saving_pct:.0f` % (the study: ~80 % and 15-25 %).
