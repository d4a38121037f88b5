"""The hands-on chapter's experiment: the study's protocol on one pair of domains, beside training from scratch.

One source and one target of one series (``Preset.lesson_pair``). The source is pretrained
``lesson_replicates`` times (the series' own replicates 0..L-1, so the study's pretrainings are reused); each
pretraining is transferred to the target with each freezing option on each target-set size of
``lesson_sizes``; and as many fresh U-Nets per size are trained **from scratch** on the same target images (the
baseline the study does not show: ``study.Job`` kind ``"scratch"``). Transfers and from-scratch models train
for the same number of minibatches, a pretraining's (``Job.budget``), at their own learning rates (the
preset's transfer and pretraining rates): the only difference between them is where their weights start, so
the comparison measures what the pretraining is worth in labelled target images. Two exercises add variants of
the transfers with nothing frozen (``variant_grid``): a gentler learning rate, and the study's own transfer
budget (one pass over the images per epoch).

Every model is an ordinary cached job of ``study``; this module only names the grids and reads their rows into
tables: one row per model (its loss on the target), and one row per model and epoch (training and validation).
"""

from __future__ import annotations

import itertools

import pandas as pd

from . import datasets as ds
from .model import FREEZE_OPTIONS
from .presets import Preset, get_preset
from .study import PRETRAINED, Job, parsed, read_row, row_path, run_jobs, simulation_device
from .study import minibatches as study_minibatches

PRETRAINED_ONLY = "pretrained only"
TRANSFER = "transfer"
SCRATCH = "from scratch"
METHODS = (PRETRAINED_ONLY, TRANSFER, SCRATCH)
BUDGET = "pretraining"  # every lesson model trains for as many minibatches as a pretraining
MODEL_COLUMNS = ["method", "freeze", "size", "seed", "replicate", "loss", "loss_study"]
CURVE_COLUMNS = ["model", "method", "freeze", "size", "seed", "replicate", "epoch", "split", "loss"]


def minibatches(preset: str | Preset) -> int:
    """The minibatches every lesson model trains for: a pretraining's (epochs x its minibatches per epoch)."""
    pr = get_preset(preset)
    pretraining = Job(pr.lesson_series, "pretrain", pr.lesson_pair[0], pr.seeds[0], pr.main_lr[0])
    return study_minibatches(pretraining, pr, ds.split_count(ds.get_series(pr.lesson_series), pr, "train"))


def check(preset: Preset) -> None:
    """A one-line error when the lesson's settings do not fit the preset's series and datasets."""
    series = ds.get_series(preset.lesson_series, preset)  # its domains as this preset runs them
    source, target = preset.lesson_pair
    for name, value in (("source", source), ("target", target)):
        if value not in series.domains:
            raise ValueError(f"lesson_pair {name}={value!r} is not a {series.name} domain; allowed: "
                             f"{', '.join(series.domains)}")
    if source == target:
        raise ValueError(f"lesson_pair={preset.lesson_pair!r} must name two different domains")
    n_train = ds.split_count(series, preset, "train")
    bad = [n for n in preset.lesson_sizes if not 1 <= n <= n_train]
    if bad or list(preset.lesson_sizes) != sorted(set(preset.lesson_sizes)):
        raise ValueError(f"lesson_sizes={preset.lesson_sizes!r} must be increasing sizes in 1..{n_train} "
                         f"(the training images of a {series.name} dataset at preset {preset.name})")
    if preset.lesson_replicates < 2:
        raise ValueError(f"lesson_replicates={preset.lesson_replicates} must be at least 2 (an interval needs "
                         "more than one model per method)")


def grid(preset: str | Preset) -> list[Job]:
    """Every model of the lesson: pretrainings, transfers (size x freezing option) and from-scratch models."""
    pr = get_preset(preset)
    check(pr)
    series, (source, target) = pr.lesson_series, pr.lesson_pair
    lr_pre, lr_tr = pr.main_lr
    draws = list(itertools.product(pr.seeds, range(pr.lesson_replicates)))
    jobs = [Job(series, "pretrain", source, seed, lr_pre, replicate=r) for seed, r in draws]
    jobs += [Job(series, "transfer", source, seed, lr_pre, target, fr, lr_tr, n, replicate=r, budget=BUDGET)
             for n, fr, (seed, r) in itertools.product(pr.lesson_sizes, FREEZE_OPTIONS, draws)]
    jobs += [Job(series, "scratch", target, seed, lr_pre, target, transfer_size=n, replicate=r)
             for n, (seed, r) in itertools.product(pr.lesson_sizes, draws)]
    return jobs


GENTLE = 10  # the learning-rate exercise: the main transfer learning rate divided by this
VARIANTS = {"gentle": f"learning rate / {GENTLE}", "protocol": "the study's budget (one pass per epoch)"}


def variant_grid(preset: str | Preset, variant: str) -> list[Job]:
    """An exercise's transfers with nothing frozen, from the lesson's pretrainings: ``gentle`` (the transfer
    learning rate / ``GENTLE``, on the smallest and the largest target set) or ``protocol`` (the study's transfer
    budget, one pass over the images per epoch, on every size)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r} is unknown; allowed: {', '.join(VARIANTS)}")
    pr = get_preset(preset)
    series, (source, target) = pr.lesson_series, pr.lesson_pair
    lr_pre, lr_tr = pr.main_lr
    if variant == "gentle":
        sizes, lr, budget = sorted({pr.lesson_sizes[0], pr.lesson_sizes[-1]}), lr_tr / GENTLE, BUDGET
    else:
        sizes, lr, budget = pr.lesson_sizes, lr_tr, None
    return [Job(series, "transfer", source, seed, lr_pre, target, "none", lr, n, replicate=r, budget=budget)
            for n, seed, r in itertools.product(sizes, pr.seeds, range(pr.lesson_replicates))]


def all_jobs(preset: str | Preset) -> list[Job]:
    """Every model the hands-on chapter reads (its grid and its exercises')."""
    return grid(preset) + [j for v in VARIANTS for j in variant_grid(preset, v)]


def run(preset: str | Preset, cache=None, device: str = "auto", scheduler: str | None = None,
        progress: bool = True) -> None:
    """Make the lesson's datasets and models that are missing (cached, resumable)."""
    pr = get_preset(preset)
    ds.simulate_series(pr.lesson_series, pr, cache, simulation_device(device), scheduler, progress=progress)
    run_jobs(all_jobs(pr), pr, cache, device, scheduler, progress)


def _rows(pr: Preset, cache) -> list[tuple[Job, dict]]:
    return [(job, read_row(row_path(job, pr, cache), cache)) for job in grid(pr)]


def model_table(preset: str | Preset, cache=None) -> pd.DataFrame:
    """One row per model: its loss on the target (cross-entropy, nats; and the study's scale), at the epoch of its
    lowest target validation loss; pretrained-only models at their pretraining's selected epoch (size 0). The
    freeze of pretrained-only and from-scratch models is "-": they pass every freezing picker."""
    pr = get_preset(preset)
    target, out = pr.lesson_pair[1], []
    for job, row in _rows(pr, cache):
        if job.kind == "pretrain":
            out.append((PRETRAINED_ONLY, PRETRAINED, 0, job.seed, job.replicate, parsed(row["P_all"])[target],
                        parsed(row["P_all_study"])[target]))
        else:
            method, freeze = (TRANSFER, job.freeze) if job.kind == "transfer" else (SCRATCH, PRETRAINED)
            out.append((method, freeze, job.transfer_size, job.seed, job.replicate, row["T"], row["T_study"]))
    return pd.DataFrame(out, columns=MODEL_COLUMNS)


def pretrained_losses(preset: str | Preset, cache=None) -> pd.DataFrame:
    """Each pretraining's loss on the source and on the target (validation images, at its selected epoch)."""
    pr = get_preset(preset)
    out = [(job.seed, job.replicate, domain, parsed(row["P_all"])[domain], parsed(row["P_all_study"])[domain])
           for job, row in _rows(pr, cache) if job.kind == "pretrain" for domain in pr.lesson_pair]
    return pd.DataFrame(out, columns=["seed", "replicate", "domain", "loss", "loss_study"])


def curve_table(preset: str | Preset, cache=None) -> pd.DataFrame:
    """One row per model, epoch and split: the mean training cross-entropy of the epoch's minibatches ("train")
    and the cross-entropy on the validation images of the domain the model is selected on ("validation": the
    source for a pretraining, the target otherwise). Pretrainings have size 0."""
    pr = get_preset(preset)
    out = []
    for job, row in _rows(pr, cache):
        domain = job.source if job.kind == "pretrain" else job.target
        draw = f"seed {job.seed} r{job.replicate}"
        if job.kind == "pretrain":
            method, freeze, size, label = "pretraining", PRETRAINED, 0, f"pretraining {draw}"
        elif job.kind == "transfer":
            method, freeze, size = TRANSFER, job.freeze, job.transfer_size
            label = f"transfer ({job.freeze} frozen) {draw}"
        else:
            method, freeze, size, label = SCRATCH, PRETRAINED, job.transfer_size, f"from scratch {draw}"
        curves = {"train": parsed(row.get("train_losses") or "[]"), "validation": parsed(row["losses"])[domain]}
        for split, values in curves.items():
            out += [(label, method, freeze, size, job.seed, job.replicate, epoch + 1, split, float(v))
                    for epoch, v in enumerate(values)]
    return pd.DataFrame(out, columns=CURVE_COLUMNS)


def variant_table(preset: str | Preset, variant: str, cache=None) -> pd.DataFrame:
    """An exercise's transfers beside the lesson's own with nothing frozen on the same sizes: one row per model,
    ``variant`` "lesson" or the variant's description (``VARIANTS``)."""
    pr = get_preset(preset)
    extra = variant_grid(pr, variant)
    sizes = {j.transfer_size for j in extra}
    main = [j for j in grid(pr) if j.kind == "transfer" and j.freeze == "none" and j.transfer_size in sizes]
    rows = [("lesson" if job in main else VARIANTS[variant], job.transfer_size, job.seed, job.replicate, row["T"],
             row["T_study"]) for job in main + extra for row in [read_row(row_path(job, pr, cache), cache)]]
    return pd.DataFrame(rows, columns=["variant", "size", "seed", "replicate", "loss", "loss_study"])


def results(preset: str | Preset = "class", cache=None, device: str = "auto") -> tuple[pd.DataFrame, pd.DataFrame]:
    """The lesson's two tables (models, curves), making whatever data and models are missing first (cached)."""
    pr = get_preset(preset)
    run(pr, cache, device, progress=False)
    return model_table(pr, cache), curve_table(pr, cache)
