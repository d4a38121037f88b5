"""Presets: the numbers that set the scale of a run. Same code, different numbers.

- ``paper``: STUDY.md's numbers (12.8 nm field, 0.1 Å sampling, 8 phonons, 0.2 Å pixels, 512 training images,
  10 + 10 epochs, 3 seeds, paper-width U-Net, transfer sizes 64-512). For a GPU or a cluster.
- ``cpu`` (default): every dataset of every series, every cell of every figure and all three freezing options, on
  a 2-core machine within the book's 30-minute ceiling; the dose series on 0.25 Å pixels (``series_settings``),
  the others on 0.5 Å. Each shrunk number says why it was chosen.
- ``cpu-fine``: the cpu preset on 0.25 Å pixels, so that a dose gives nearly the study's electrons per pixel
  (what the dose series' asymmetry needs) and diamond C and Si particles are learned (what the structure verdicts
  need), with larger crops; 41 minutes on 2 cores.
- ``class``: the cpu preset for a lab session: the hands-on chapter from an empty cache in at most 5 minutes, each
  study chapter in at most 10, on a 2-core laptop.
- ``smoke``: seconds, for the tests. Particle radii are scaled down to fit a small field: not for conclusions.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass, field, replace

from .structures import CDSE_DIAMETER, SIZE_CLASSES, SUBSTRATE_THICKNESS

# The fields that determine a trained model beyond its job (model cache keys use exactly these; a golden test pins
# the keys). Everything else is the grid (seeds, replicates, learning-rate pairs, sizes), how a run is scored, or
# notes: adding a replicate or a preset field outside this list retrains nothing that exists.
MODEL_KEY_FIELDS = ("name", "extent", "sim_sampling", "pixel_size", "slice_thickness", "n_phonons",
                    "substrate_thickness", "cdse_diameter", "size_radius", "particles", "n_train", "n_val",
                    "structure_train", "structure_val", "large_train_scale", "count_pixel_size", "width", "epochs",
                    "augment", "batch_size", "crop", "epoch_crops")

# The fields a series may set for itself (``Preset.series_settings``): its pixels, its electrons per pixel and
# its training step. Everything else (the field of view, the scenes, the network, the epochs) is the preset's.
SERIES_FIELDS = ("pixel_size", "count_pixel_size", "crop", "epoch_crops")
# ... and what it images (``datasets.get_series`` reads them): its domain labels, the domains that pretrain, and its
# fixed conditions ({"defocus": Å, "dose": e-/Å²}); ``datasets.with_parameters`` sets them from the study's units
SERIES_CONDITIONS = ("domains", "sources", "fixed", "crystals")  # crystals: {name: cell} of CIF materials

# Replicates (independent pretrainings per source and seed) are the study's unit: a published P cell pools every
# model pretrained on its source (36-1440, STUDY.md 4). Replicate r of each source gets its own initialisation and
# batch order (a hash of series, source, seed and r; ``study.Job.train_seed``), as in the study, not one shared by
# every source of a run. Measured (issue 15, cpu, five seeds): with one seed shared by every source, seed 0 put
# all nine large-particle pretrainings at 0.26-0.33 of a constant prediction and seeds 1-4 at 0.08-0.14, so one
# unlucky seed moved every cell of a run together; independent replicates make the sources' P cells independent
# crowds, which is what the bootstrap of ``claims`` resamples (per source), so its intervals are honest.


@dataclass(frozen=True)
class Preset:
    name: str
    # --- simulation (Å unless noted) ---
    extent: float  # field of view, Å
    sim_sampling: float  # multislice real-space sampling, Å
    pixel_size: float  # output image pixel, Å (an integer multiple of sim_sampling)
    slice_thickness: float  # multislice slice thickness, Å
    n_phonons: int  # frozen-phonon configurations per exit wave
    substrate_thickness: tuple[float, float]  # uniform range, Å
    cdse_diameter: tuple[float, float]  # Å, defocus and dose series
    size_radius: dict  # size class -> radius range, Å
    particles: dict  # "cdse" | size class -> (min, max) particles per scene
    n_train: int  # scenes in the training split of each dataset
    n_val: int  # scenes in the validation split
    structure_train: int  # training scenes per structure dataset
    structure_val: int
    # large-particle training datasets get this many times structure_train scenes (a field that holds one large
    # particle per scene then shows them as many particles as the small datasets, which hold ~2 per scene)
    large_train_scale: int = 1
    # electrons per pixel = dose (e-/Å2) x count_pixel_size² (Å2); None: this preset's own pixel (the physical dose)
    count_pixel_size: float | None = None
    # --- training ---
    width: int = 64  # channels of the first encoder stage; 64 gives the study's ~14 M parameters
    epochs: int = 10  # per stage
    lr_pairs: tuple = ((1e-3, 1e-4), (1e-3, 1e-5), (1e-4, 1e-4), (1e-4, 1e-5))  # (pretrain, transfer), sweep
    main_lr: tuple = (1e-4, 1e-5)  # (pretrain, transfer) for dose, structure and the defocus heatmaps
    transfer_sizes: tuple = (64, 128, 256, 512)  # defocus hyperparameter sweep
    transfer_size: int = 128  # dose, structure, and the defocus heatmaps
    mixtures: tuple = ((128, 384), (256, 256), (384, 128))  # defocus baseline
    seeds: tuple = (0, 1, 2)
    augment: str = "all8"  # "all8": each image in all 8 dihedral forms per epoch; "random": one random form
    batch_size: int = 16
    # the learning-rate schedule of models trained from scratch (pretrainings, mixtures, the hands-on chapter's
    # from-scratch models): "exponential" (the study's x0.99 an epoch) or "cosine" (``train.SCHEDULES``);
    # transfers keep the study's. A model's key holds it only when it is not the study's
    scratch_schedule: str = "exponential"
    crop: int = 0  # train on random crops of this many pixels (0: whole image)
    # with crop: random crops in an epoch of a model trained from scratch (pretraining, mixtures), whatever the
    # size of its dataset (each image and dihedral form cropped as many times as that takes); 0: one crop of each.
    # A transfer sees one crop of each of its images and forms, as in the study its stage sees fewer images.
    epoch_crops: int = 0
    sweep_sources: tuple | str = "all"  # defocus hyperparameter sweep: pretraining domains ("all" or a subset)
    sweep_targets: tuple | str = "all"  # and its target domains
    structure_transfers: str = "all"  # "all": 18 x 17 pairs; "figure": small->small and small<->large per lattice
    transfer_domains: dict = field(default_factory=dict)  # series -> domains that transfers may join (tests only)
    verdicts: bool = True  # False: a test scale whose scorecard reports its statistics but draws no verdicts
    # series -> independent pretrainings per source and seed (R; default 1), and how many of them are transferred
    # to every target (default 1): P cells pool all R, T cells the transfers of the transferred ones
    replicates: dict = field(default_factory=dict)
    transfer_replicates: dict = field(default_factory=dict)
    # defocus: how many of a source's pretrainings the hyperparameter sweep and the baseline pair (-10 -> +5 nm,
    # beside the mixtures) transfer (0: as many as the heatmaps); their claims compare single cells, which one
    # pretraining would set alone
    sweep_replicates: int = 0
    # True: a pretraining validates on every domain at every epoch (the study's record); False: on its own domain
    # only, and on every domain once, at the selected epoch (the same P; ``bench train`` measures the saving)
    validate_every_epoch: bool = True
    # the hands-on chapter (``hrtem_tl.lesson``): one (pretraining, target) pair of one series, the target-set sizes
    # that transfers and from-scratch models train on, and the independent models per size, method and seed (its
    # pretrainings are the series' replicates 0..lesson_replicates-1: the study's own where they exist)
    lesson_series: str = "defocus"
    lesson_pair: tuple = ("-100", "0")
    lesson_sizes: tuple = (8, 64, 512)
    lesson_replicates: int = 3
    # series -> {field: value} for the fields of ``SERIES_FIELDS``: how that series runs at this preset (its pixels
    # and training step); ``for_series`` applies them. Not a key field: a series' models are keyed by the values
    # it runs with, so a series without settings keeps its keys
    series_settings: dict = field(default_factory=dict)
    # the microscope, where it is not the study's ({} : 300 kV, Cs = 0, 10 Å focal spread, ``simulate.MICROSCOPE``):
    # {"energy": eV, "cs": Å, "focal_spread": Å}, set by ``datasets.with_parameters`` (voltage, cs, focal_spread);
    # it enters the scenes' keys and the models' only when set, so the study's keep theirs
    microscope: dict = field(default_factory=dict)
    # the material of the dose and defocus series' particles (their shared scenes), where it is not the study's
    # CdSe ({}): {"name": a built-in lattice} or {"name": ..., "crystal": a CIF crystal's spec}, set by
    # ``datasets.with_parameters`` (material); it enters the keys of those scenes and models only when set
    particle_material: dict = field(default_factory=dict)
    series: str | None = None  # the series this preset was resolved for (``for_series``), None: not resolved
    notes: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for series, settings in self.series_settings.items():
            bad = sorted(set(settings) - set(SERIES_FIELDS) - set(SERIES_CONDITIONS))
            if bad:
                raise ValueError(f"series_settings[{series!r}] sets {', '.join(bad)}; allowed: "
                                 f"{', '.join(SERIES_FIELDS + SERIES_CONDITIONS)}")

    def for_series(self, series: str) -> "Preset":
        """This preset as ``series`` runs it: its ``series_settings`` applied (once; the same preset again for
        the series it was resolved for). Every stage that simulates, trains or scores a series resolves it."""
        if self.series == series:
            return self
        if self.series is not None:
            raise ValueError(f"preset {self.name!r} was resolved for the {self.series} series, not {series}")
        fields = {k: v for k, v in self.series_settings.get(series, {}).items() if k in SERIES_FIELDS}
        return replace(self, **fields, series=series)

    def conditions_of(self, series: str) -> dict:
        """What this preset images in ``series`` beyond the study's ({} for the study's own): its other fixed
        conditions and other domains (a model's row holds its losses on every domain of its series)."""
        settings = self.series_settings.get(series, {})
        return deepcopy({k: settings[k] for k in ("fixed", "domains", "crystals") if k in settings})

    def simulation_params(self) -> dict:
        """The parameters that determine the simulated data (cache keys use them)."""
        keys = ("extent", "sim_sampling", "pixel_size", "slice_thickness", "n_phonons", "substrate_thickness",
                "cdse_diameter", "size_radius", "particles")
        params = {k: deepcopy(getattr(self, k)) for k in keys}
        if self.microscope:
            params["microscope"] = deepcopy(self.microscope)
        if self.particle_material:
            params["particle_material"] = deepcopy(self.particle_material)
        return params

    def model_params(self) -> dict:
        """Everything that determines a trained model beyond its job (cache keys of models use it): the name,
        the data and the training settings; not the grid (seeds, learning-rate pairs, sizes) nor the notes. Resolved
        for a series, the sizes of the particles it does not image are its registered preset's (other structure
        radii retrain no dose model)."""
        params = {name: deepcopy(getattr(self, name)) for name in MODEL_KEY_FIELDS}
        if self.scratch_schedule != "exponential":
            params["scratch_schedule"] = self.scratch_schedule
        if self.microscope:
            params["microscope"] = deepcopy(self.microscope)
        if self.particle_material:
            params["particle_material"] = deepcopy(self.particle_material)
        if self.series is not None:  # the other kind of particle's sizes and material do not enter
            params = pin_other_particles(params, self.name, cdse=self.series != "structure")
        return params

    def n_replicates(self, series: str) -> int:
        """Independent pretrainings per source and seed of ``series`` (R)."""
        return int(self.replicates.get(series, 1))

    def n_transfer_replicates(self, series: str) -> int:
        """How many of a source's R pretrainings per seed are transferred to every target."""
        return min(int(self.transfer_replicates.get(series, 1)), self.n_replicates(series))

    def n_sweep_replicates(self) -> int:
        """How many pretrainings per learning-rate pair the defocus sweep and baseline pair transfer."""
        return min(max(self.sweep_replicates, self.n_transfer_replicates("defocus")), self.n_replicates("defocus"))

    @property
    def image_pixels(self) -> int:
        return int(round(self.extent / self.pixel_size))

    @property
    def downsample(self) -> int:
        factor = self.pixel_size / self.sim_sampling
        if abs(factor - round(factor)) > 1e-6:
            raise ValueError(f"pixel_size={self.pixel_size} must be an integer multiple of "
                             f"sim_sampling={self.sim_sampling}")
        return int(round(factor))



CPU = Preset(
    name="cpu", extent=80.0, sim_sampling=0.25, pixel_size=0.5, slice_thickness=2.0, n_phonons=1,
    substrate_thickness=SUBSTRATE_THICKNESS, cdse_diameter=CDSE_DIAMETER, size_radius=SIZE_CLASSES,
    particles={"cdse": (1, 3), "small": (1, 3), "large": (1, 1)},
    n_train=64, n_val=16, structure_train=32, structure_val=8, large_train_scale=2,
    width=8, epochs=6, lr_pairs=((3e-3, 1e-3), (3e-4, 1e-4)), main_lr=(3e-3, 1e-3),
    transfer_sizes=(8, 16, 32, 64), transfer_size=16, mixtures=((16, 48), (32, 32), (48, 16)), seeds=(0,),
    augment="all8", crop=64, epoch_crops=1024, sweep_sources=("-100",), sweep_targets=("250",),
    structure_transfers="figure", validate_every_epoch=False, lesson_sizes=(1, 8, 64), lesson_replicates=2,
    series_settings={"dose": {"pixel_size": 0.25, "crop": 96, "epoch_crops": 512}},
    replicates={"dose": 3, "defocus": 2, "structure": 2}, transfer_replicates={"dose": 2}, sweep_replicates=2,
    notes={
        "sweep_replicates": "the learning-rate sweep and the baseline pair (-10 -> +5 nm) transfer both defocus "
                            "pretrainings of each learning rate: with one, the claim that the aggressive rates did "
                            "best held at seeds 0 (+0.38 [+0.37, +0.43]) and contradicted at seeds 1 (-0.10 "
                            "[-0.11, -0.09]), and transfer vs mixtures read +0.07 and +0.56, each interval too narrow "
                            "because one pretraining set every cell (measured 2026-12-02); 27 transfers and one "
                            "pretraining more",
        "series_settings": "the dose series on 0.25 Å pixels (the multislice sampling), with 96-pixel (24 Å) crops, "
                           "512 an epoch: a dose then gives 1.56x the study's electrons per pixel instead of 6.25x, "
                           "and Fig 9.1's pretraining claims hold. The crops (measured 2026-12-02, AVX512 machine, "
                           "ablation arms on the dose series, 15 pretrainings a seed set): with the other series' "
                           "64-pixel crops (16 Å here), 1024 an epoch, the 30 e-/Å² source sat at the gate (0.66 of a "
                           "constant prediction at seeds 0, 0.72 at seeds 1: Fig 9.1 'not learned' in one of two seed "
                           "sets), 3.5 / 3.3 core-min; 96-pixel crops, 1024 an epoch: 0.47 / 0.41, 5.8 / 5.6 core-min;"
                           " 96-pixel crops, 512 an epoch: 0.53 / 0.42, 2.8 / 2.5 core-min, every pretraining claim "
                           "holding in both, so 512. Its 120 transfers then train 263 / 257 core-s instead of 166 / "
                           "147 (a transfer sees one crop of each image and form): the book about half a minute "
                           "longer. Measured before 2026-12-01 (`python -m hrtem_tl ablate`, seeds 0, pretrainings "
                           "only, 64-pixel crops): on 0.5 Å pixels (R = 5) the asymmetry was -0.40 [-0.60, +0.00] "
                           "(contradicts), low-dose rows worse +0.10 [+0.00, +0.40] (undecided), 5.0 core-min; on 0.25"
                           " Å pixels (R = 3) +1.00 [+0.80, +1.00], +1.00 [+0.90, +1.00], distance +0.80 [+0.76, "
                           "+0.80], all hold, models as specialised as the study's (median P(s->t)/P(t->t) 1.90, study"
                           " 1.81), 2.3 core-min; 0.5 Å pixels counted as 0.25 Å ones (a quarter of the electrons) "
                           "left the 30 e-/Å² pretraining unlearned (0.88 of a constant prediction). The defocus "
                           "series keeps 0.5 Å (its claims hold there, and its 426 transfers would cost 4x the "
                           "evaluation); the structure series too: on 0.25 Å pixels with this step diamond C and Si "
                           "still did not learn (16 of 18 sources, worst 0.82; symmetry -0.14 [-0.21, +0.00]), and the"
                           " step that learns them (cpu-fine: 96-pixel crops, 2048 an epoch) costs 4.5x, about 16 min "
                           "more",
        "replicates": "3 / 2 / 2 independent pretrainings per source (dose / defocus / structure), two of the dose "
                      "ones transferred to every target: a pretraining takes 12-14 core-seconds and a transfer 1.6 "
                      "(structure), 2.3 (defocus) or 3.1 (dose, 0.25 Å validation images) here, evaluation included "
                      "(measured 2026-12-02, a stack of 8 on one core). Three for dose because on 0.25 Å pixels its P "
                      "claims are decided at R = 3 with intervals 0.1-0.2 wide (above); a second transferred dose "
                      "replicate because with one, a single poor pretraining sets a whole row of T (measured before on"
                      " defocus: +-5 nm rows at 0.07-0.12 after transfer against 0.03 for the others); structure gets "
                      "two because it does not learn diamond C and Si at 0.5 Å pixels whatever R (median ratio 0.91 "
                      "over 3). The defocus series (not the seed's figures) pays for the dose series' finer pixels: a "
                      "book with 3 defocus pretrainings per source, 2 transferred, the sweep to three targets and 3 "
                      "lesson replicates ran 42.7 min from an empty cache on 2 cores (2026-12-02: scenes 5.2, "
                      "pretrainings 8.5, transfers 26.4, chapters 2.4; the machine ran about 13 % slower than the day "
                      "before, and a benchmark of ours ran beside it for 10 min), with defocus 11 hold, 2 undecided, "
                      "dose 6 hold: over the 30-minute ceiling. As it is now (2026-12-03, one AVX512-BF16 machine, "
                      "fresh clones): 25.7 min at seeds 0 and 23.0 at seeds 1 (scenes and datasets 4.3-4.6, "
                      "pretrainings 5.6-6.1, transfers 11.5-13.1, chapters 1.3-1.6), 3-6 minutes over the "
                      "20-minute target; 2026-12-04 (another AVX512-BF16 machine, whose pace fell by up to a third "
                      "within 90 minutes): 20.8, 21.9 and 23.8 min (scenes 3.2-4.3, pretrainings 4.7-5.1, transfers "
                      "10.5-12.0)",
        "validate_every_epoch": "off: a pretraining validates on its own domain each epoch and on every domain "
                                "once, at the selected epoch (the same P; 22 % less time per structure "
                                "pretraining, 13 % defocus, 5 % dose, measured)",
        "extent": "80 Å is the smallest field that holds a large particle (diameter up to 70 Å)",
        "sim_sampling": "0.25 Å: the multislice band limit (2/3 Nyquist = 1.33 1/Å) exceeds the output Nyquist",
        "pixel_size": "0.5 Å keeps 1.0 Å fringes (Nyquist), so all lattice fringes >= 2 Å survive; a dose "
                      "then gives 6.25x the study's counts per pixel (7.5-150 e- for 30-600 e-/Å², the "
                      "study 1.2-24), which is why the dose series runs on 0.25 Å (series_settings)",
        "n_phonons": "1 configuration: phonon averaging changes contrast by a few %, not the task",
        "particles": "fewer per scene, so that they fit the smaller field at >= 1 nm apart; one large "
                     "particle per scene, hence large_train_scale",
        "counts": "64/16 CdSe scenes and 32/8 per structure dataset (64 for large particles) keep the "
                  "simulation under 4 minutes",
        "width": "8 channels (0.22 M parameters): the three series train in about 13 minutes on 2 cores",
        "epochs": "6 + 6; each pretraining epoch shows 1024 random crops (64 minibatches), the study's "
                  "512 images x 8 forms (256 minibatches) of a larger field",
        "lr": "a narrow net over few epochs needs larger steps than the study's 1e-4/1e-5; the sweep keeps "
              "two (pretrain, transfer) pairs ten times apart, as the study's aggressive and gentle ones",
        "crop": "64-pixel random crops (32 Å) per step, the dose series 96-pixel ones (24 Å: series_settings); "
                "validation uses the whole image",
        "sweep": "the hyperparameter sweep (Fig 6.1) transfers from -10 nm to +25 nm only (as the class preset; "
                 "with -25, 0 and +25 nm its 126 transfers were a seventh of the transfer stage)",
        "lesson": "the hands-on chapter's pair at 1, 8 and 64 target images with 2 models per size and method: its "
                  "models train a pretraining's budget each, so with 3 they were a quarter of the transfer stage",
        "structure_transfers": "transfers the figures show: small->small, and small<->large per lattice",
    },
)

# the cpu preset on the multislice sampling as pixels, with larger crops and more of them per epoch
CPU_FINE = replace(
    CPU, name="cpu-fine", pixel_size=0.25, crop=96, epoch_crops=2048, series_settings={},
    replicates={"dose": 3, "defocus": 2, "structure": 2}, transfer_replicates={"dose": 2},
    notes={
        "replicates": "3 / 2 / 2 independent pretrainings per source (dose / defocus / structure), two of the dose "
                      "ones transferred: at least two everywhere, since one pretraining per source gives its P "
                      "statistics no interval; a pretraining costs 4x the cpu preset's here (about 25 s on a "
                      "core), so the book stays within an hour",
        "pixel_size": "0.25 Å (the multislice sampling, no downsampling): a dose gives 1.56x the study's "
                      "counts per pixel (1.9-37.5 e- for 30-600 e-/Å², the study 1.2-24) at the physical "
                      "dose; the cpu preset's 0.5 Å pixels give 6.25x",
        "crop": "96-pixel crops (24 Å); 2048 crops per pretraining epoch",
        "all": "otherwise the cpu preset: the whole book in 41 minutes on 2 cores with the trainer before stacks",
        "kept": "kept beside cpu, not merged into it: with the stacked trainer its pretrainings still ran at 27 s a "
                "model on 2 cores (8 of 63 in 3.6 min, measured 2026-12-01), about 28 min for them alone, so a "
                "default on 0.25 Å pixels would pass the 30-minute ceiling of the cpu book",
    },
)

# the cpu preset for a lab session: the same data (the scenes are shared with cpu), fewer replicates
CLASS = replace(
    CPU, name="class", replicates={"dose": 3, "defocus": 2, "structure": 2}, transfer_replicates={},
    sweep_targets=("250",), lesson_sizes=(1, 8, 64), lesson_replicates=4,
    notes={
        "class": "a lab session on 2-core laptops: the hands-on chapter from an empty cache in at most 5 minutes "
                 "and each study chapter in at most 10 (both measured by `python -m hrtem_tl bench class`)",
        "replicates": "3 / 2 / 2 pretrainings per source, one transferred: every P statistic gets an interval; "
                      "T statistics rest on one transfer per cell, so the scorecard says which claims that decides",
        "lesson": "-10 nm -> 0 nm defocus, 1, 8 and 64 target images, 4 models per size and method (72 models "
                  "with the exercises'): the hands-on chapter from an empty cache in 4.3 min on 2 cores. The "
                  "in-focus target because pretrained-only models lose 8-11x their source loss there (measured, "
                  "seeds 0 and 1), while at +25 nm they already matched models from scratch on 4 images (0.038 "
                  "vs 0.030, study's scale): nothing left for transfer learning to show. Measured at seeds 0 / 1: "
                  "transfer beats scratch on 1 image by log10 +0.25 [+0.16, +0.30] / +0.25 [+0.17, +0.32], and "
                  "the gap closes by +0.25 [+0.18, +0.34] / +0.34 [+0.26, +0.38]: both hold for both seeds",
        "sweep": "the hyperparameter sweep transfers from -10 nm to +25 nm only",
        "all": "otherwise the cpu preset, whose data it shares",
    },
)

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper", extent=128.0, sim_sampling=0.1, pixel_size=0.2, slice_thickness=2.0, n_phonons=8,
        substrate_thickness=SUBSTRATE_THICKNESS, cdse_diameter=CDSE_DIAMETER, size_radius=SIZE_CLASSES,
        particles={"cdse": (1, 5), "small": (1, 5), "large": (1, 5)},
        n_train=512, n_val=128, structure_train=512, structure_val=128,
        notes={"n_val": "the study does not state its validation size; 128 is our choice"},
    ),
    "cpu": CPU,
    "cpu-fine": CPU_FINE,
    "class": CLASS,
    "smoke": Preset(
        name="smoke", extent=48.0, sim_sampling=0.25, pixel_size=0.5, slice_thickness=4.0, n_phonons=1,
        substrate_thickness=(10.0, 20.0), cdse_diameter=(16.0, 24.0),
        size_radius={"small": (6.0, 9.0), "large": (12.0, 16.0)},
        particles={"cdse": (1, 2), "small": (1, 2), "large": (1, 1)},
        n_train=8, n_val=4, structure_train=4, structure_val=2,
        width=8, epochs=10, lr_pairs=((3e-3, 1e-3),), main_lr=(3e-3, 1e-3),
        transfer_sizes=(4, 8), transfer_size=4, mixtures=((4, 4),), seeds=(0,), augment="all8", crop=0,
        sweep_sources=("-100",),
        sweep_targets=("50",), structure_transfers="figure",
        transfer_domains={"defocus": ("-100", "0", "50", "250"),
                          "structure": ("CdSe_small", "Cu_small", "Fe_small", "CdSe_large")}, verdicts=False,
        replicates={"dose": 2}, lesson_sizes=(2, 8), lesson_replicates=2,
        notes={"all": "test scale; radii scaled down to fit the 48 Å field; transfers only among a few domains "
                      "of the defocus and structure series (every pretraining still runs)"},
    ),
}



def pin_other_particles(params: dict, name: str, cdse: bool) -> dict:
    """Key parameters of CdSe scenes or models (``cdse``) or structure ones, with the other kind of particle's sizes
    (the structure radii, or the CdSe diameters) pinned to the registered preset ``name``'s and, for structure ones,
    without the dose and defocus series' material: other sizes or another material of one series then re-key that
    series only, and the study's keys stay as they were (unregistered names: sizes as given)."""
    if not cdse:
        params = {k: v for k, v in params.items() if k != "particle_material"}
    if name not in PRESETS:
        return params
    other = "size_radius" if cdse else "cdse_diameter"
    return {**params, other: deepcopy(getattr(PRESETS[name], other))}


def get_preset(name: str | Preset, seeds=None) -> Preset:
    """The preset called ``name`` (with other training ``seeds`` if given); a one-line error lists the allowed."""
    if isinstance(name, Preset):
        pr = name
    else:
        try:
            pr = PRESETS[name]
        except KeyError:
            raise ValueError(f"preset={name!r} is unknown; allowed: {', '.join(PRESETS)}") from None
    return pr if seeds is None else replace(pr, seeds=parse_seeds(seeds))


def parse_seeds(seeds) -> tuple[int, ...]:
    """``"0,1"``, ``1`` or ``[0, 1]`` -> ``(0, 1)``; a one-line error for anything else."""
    items = str(seeds).replace(" ", "").split(",") if isinstance(seeds, (str, int)) else list(seeds)
    try:
        out = tuple(int(x) for x in items)
    except (TypeError, ValueError):
        out = ()
    if not out or len(set(out)) != len(out) or min(out) < 0:
        raise ValueError(f"seeds={seeds!r} is not a list of distinct non-negative integers; allowed: e.g. 0 or 0,1")
    return out


def command(verb: str, series: str, preset: Preset, cache=None) -> str:
    """The whole command that makes what is missing, with the user's preset, seeds (when not the preset's own)
    and cache folder (when one was given): for one-line errors."""
    parts = ["python -m hrtem_tl", verb, "--series", series, "--preset", preset.name]
    if verb != "simulate" and preset.name in PRESETS and preset.seeds != PRESETS[preset.name].seeds:
        parts += ["--seeds", ",".join(map(str, preset.seeds))]
    if cache is not None:
        parts += ["--cache", str(cache)]
    return " ".join(parts)
