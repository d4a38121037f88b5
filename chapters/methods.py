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
#
# ```{admonition} Before you start
# :class: tip
# **You will learn to** follow a simulated HRTEM image from atoms to a labelled training pair; size the U-Net and its
# training.
#
# **You need** basic electron optics (phase contrast, defocus) and convolutional networks.
#
# **Time to run** on this machine from an empty cache: {glue:text}`methods_time_empty`. This page:
# {glue:text}`methods_time_run`.
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

from hrtem_tl import claims, datasets, figures, structures, study
from hrtem_tl.book import ChapterClock
from hrtem_tl.model import UNet, count_trainable, freeze
from hrtem_tl.presets import get_preset
from hrtem_tl.train import dihedral_forms

pr = datasets.with_parameters(get_preset(preset, seeds), settings)
clock = ChapterClock("methods", pr, cache)
dataset_files = datasets.simulate_series("all", pr, cache, study.simulation_device(device), progress=False)
figures.run_parameters(pr, device)

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
examples = figures.example_table({name: datasets.get_series(name, pr).domains for name in datasets.SERIES}, pr, cache)
figures.show(figures.example_viewer(examples), "examples", static_dir)

# %% tags=["hide-input"]
figures.glue_value("preset_name", pr.name)
figures.glue_value("pixel_size", pr.for_series("defocus").pixel_size)
figures.glue_value("pixels_by_series", figures.pixels_by_series(pr, datasets.SERIES))
figures.glue_value("extent_nm", pr.extent / 10)
figures.glue_value("n_phonons", pr.n_phonons)
figures.glue_value("sim_sampling", pr.sim_sampling)

# %% [markdown]
# At this preset ({glue:text}`preset_name`): a {glue:text}`extent_nm:.1f` nm field, multislice sampling
# {glue:text}`sim_sampling` Å, {glue:text}`n_phonons` frozen-phonon configuration(s), output pixels of
# {glue:text}`pixels_by_series`.

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

# %% [markdown]
# ## Exercises
#
# :::{exercise}
# :label: methods-params
# At the study's width, what share of the U-Net's parameters still trains with the encoder frozen, and with the
# decoder frozen? What does that predict for the training time per image?
# :::

# %% tags=["solution", "remove-cell"]
for option in ("encoder", "decoder"):
    figures.glue_value(f"methods_share_{option}", 100 * freeze(UNet(64), option) / total)

# %% [markdown] tags=["solution"]
# :::{solution} methods-params
# :class: dropdown
# Encoder frozen: {glue:text}`methods_share_encoder:.0f` % of the parameters train; decoder frozen:
# {glue:text}`methods_share_decoder:.0f` %. Time does not follow the parameter count: the forward pass is the
# same, and only a frozen encoder spares the backward pass through it (the gradient still has to cross a frozen
# decoder to reach the encoder). This run measured the time above.
# :::

# %% [markdown]
# :::{exercise}
# :label: methods-fringes
# Where in the Fourier transform of a defocus-series image at this preset (its particles: the study's CdSe
# unless this run says otherwise at the top) should the lattice fringes appear? Give the distance from the
# centre in pixels of the transform for the strongest few.
# :::

# %% tags=["solution", "remove-cell"]
from hrtem_tl import optics

cdse = pr.for_series("defocus")  # the images of the defocus series (the study's CdSe particles)
n_pixels = cdse.image_pixels
material = datasets.particle_lattice(cdse)
strongest = sorted(optics.reflections(material, cdse.pixel_size), key=lambda gf: -gf[1])[:3]
figures.glue_value("methods_material", material.name)
figures.glue_value("methods_fft_n", n_pixels)
figures.glue_value("methods_fringes", "; ".join(f"d = {1 / g:.2f} Å at {g * n_pixels * cdse.pixel_size:.1f} pixels"
                                                for g, _ in sorted(strongest)))

# %% [markdown] tags=["solution"]
# :::{solution} methods-fringes
# :class: dropdown
# A fringe of spacing d is a spatial frequency |g| = 1/d; on an image of N = {glue:text}`methods_fft_n` pixels of
# {glue:text}`pixel_size` Å, frequency |g| lands |g| N x pixel pixels from the centre of the transform. The three
# strongest {glue:text}`methods_material` reflections (kinematic structure factors with abTEM's Lobato scattering
# factors, `hrtem_tl.optics.reflections`): {glue:text}`methods_fringes`. The test suite checks the simulated
# images' transforms against CdSe's lattice spacings.
# :::

# %% [markdown]
# :::{exercise}
# :label: methods-steps
# How many minibatches does one pretraining epoch take at this preset, and how many does a transfer epoch on 16
# target images take?
# :::

# %% tags=["solution", "remove-cell"]
forms = dihedral_forms(pr.augment)
per_epoch = (pr.epoch_crops if pr.crop and pr.epoch_crops else pr.n_train * forms) / pr.batch_size
figures.glue_value("methods_pretrain_steps", per_epoch)
figures.glue_value("methods_transfer_steps", 16 * forms / pr.batch_size)
figures.glue_value("methods_forms", forms)
figures.glue_value("methods_batch", pr.batch_size)

# %% [markdown] tags=["solution"]
# :::{solution} methods-steps
# :class: dropdown
# An epoch shows each image in its {glue:text}`methods_forms` dihedral forms (rotations and flips), in minibatches
# of {glue:text}`methods_batch`: a pretraining epoch here takes {glue:text}`methods_pretrain_steps:.0f`
# minibatches, a transfer epoch on 16 images {glue:text}`methods_transfer_steps:.0f`. Transfer learning is cheap
# because its stage sees few images, not because an image costs less.
# :::

# %% tags=["remove-cell"]
clock.stop(figures.glue_value)
