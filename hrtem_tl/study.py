"""The study grid per series, run as independent cached jobs, and its tidy results table.

Pretraining runs R times per (series, source, seed, pretraining learning rate): R independent replicates, each
with its own initialisation and batch order (``Job.train_seed``), as the study pretrained a fresh model for every
row of its grid. A P cell (source, target) pools every pretraining of its source: it does not depend on the
transfers nor on the freezing option. The first ``transfer_replicates`` of them are transferred to every target
and freezing option, and each transfer reuses its pretrained weights.

Each finished model appends one row, atomically, as ``<cache>/results/rows/<series>/<key>.json``;
``load_results`` gathers them into ``<cache>/results/<series>.parquet``. A rerun skips finished jobs, so a
killed run loses at most the models in flight.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import itertools
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from . import datasets as ds
from . import train as tr
from .cache import atomic_write, cache_dir, key_of, move_aside
from .datasets import command
from .model import FREEZE_OPTIONS, count_trainable
from .presets import Preset, get_preset

MIXTURE_PAIR = ("-100", "50")  # the baseline mixes -10 nm and +5 nm data (STUDY.md 4, Fig 7.2)
REDUCTIONS = ("median", "mean", "min", "max")


@dataclass(frozen=True)
class Job:
    """One trained model: a pretraining, a transfer, or a single-stage mixture (baseline)."""

    series: str
    kind: str  # "pretrain" | "transfer" | "mixture" | "scratch" (the hands-on chapter's from-scratch baseline)
    source: str
    seed: int
    lr_pretrain: float
    target: str | None = None
    freeze: str | None = None
    lr_transfer: float | None = None
    transfer_size: int | None = None
    mixture: tuple | None = None  # (images from source, images from target)
    replicate: int = 0  # which of the R independent pretrainings of (source, seed) this is or starts from
    # None: a transfer's stage is one pass over its images (and their dihedral forms) per epoch, as in the study;
    # "pretraining": as many minibatches per epoch as a pretraining (the hands-on chapter's equal-budget runs)
    budget: str | None = None

    def pretrain_job(self) -> "Job":
        return Job(self.series, "pretrain", self.source, self.seed, self.lr_pretrain, replicate=self.replicate)

    def train_seed(self) -> int:
        """The seed of this model's initialisation and batch order: a pretraining's depends on (series, source,
        seed, replicate), so that replicates and sources are independent draws (presets.py says why); a
        transfer's on (seed, replicate) only, so the freezing options of a cell see the same batches; a model
        trained from scratch on target images on (series, target, seed, replicate); a mixture keeps the run's seed."""
        if self.kind == "mixture":
            return self.seed
        parts = {"pretrain": (self.series, self.source),
                 "scratch": (self.series, "scratch", self.target)}.get(self.kind, ("transfer",))
        text = "/".join(map(str, (*parts, self.seed, self.replicate)))
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF

    def key(self, preset: Preset) -> str:
        job = asdict(self)
        if job["budget"] is None:  # the keys of every job from before the field existed stay as they were
            del job["budget"]
        key = {"job": job, "preset": preset.for_series(self.series).model_params()}
        other = preset.conditions_of(self.series)  # other conditions or domains than the study's: other rows
        return key_of({**key, "conditions": other} if other else key)


def _transfer_pairs(series: str, preset: Preset) -> list[tuple[str, str]]:
    s = ds.get_series(series, preset)
    chosen = set(preset.transfer_domains.get(series, s.domains))
    allowed = chosen if chosen <= set(s.domains) else set(s.domains)  # a run on other domains transfers among all
    pairs = [(a, b) for a in s.sources for b in s.domains if a != b and a in allowed and b in allowed]
    if series == "structure" and preset.structure_transfers == "figure":
        # The figures need small -> small (Fig 9.2 heatmaps) and each lattice small <-> large (size panel).
        pairs = [(a, b) for a, b in pairs if (a.endswith("_small") and b.endswith("_small"))
                 or a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0]]
    return pairs


def _subset(choice, everything) -> tuple:
    """``everything``, or the chosen ones of it (a series run on other domains keeps those it has)."""
    return tuple(everything) if choice == "all" else tuple(c for c in choice if c in everything)


def grid(series: str, preset: str | Preset) -> list[Job]:
    """Every job of a series at a preset: pretrainings first, then transfers and baselines (deduplicated)."""
    pr = get_preset(preset).for_series(series)
    s = ds.get_series(series, pr)
    lr_pre, lr_tr = pr.main_lr
    reps, transferred = range(pr.n_replicates(series)), range(pr.n_transfer_replicates(series))
    jobs = []
    swept = range(pr.n_sweep_replicates()) if series == "defocus" else transferred
    for a, b in _transfer_pairs(series, pr):
        # the baseline pair (beside the mixtures) from as many pretrainings as the sweep
        reps_ab = swept if (a, b) == MIXTURE_PAIR else transferred
        for fr, seed, r in itertools.product(FREEZE_OPTIONS, pr.seeds, reps_ab):
            jobs.append(Job(series, "transfer", a, seed, lr_pre, b, fr, lr_tr, pr.transfer_size, replicate=r))
    if series == "defocus":
        for a, b in _transfer_pairs(series, pr):
            if a not in _subset(pr.sweep_sources, s.sources) or b not in _subset(pr.sweep_targets, s.domains):
                continue
            # every learning-rate pair from ``sweep_replicates`` pretrainings each (at least as many as the
            # heatmaps transfer): a comparison of pairs then rests on more than one pretraining per pair
            for (lp, lt), n, fr, seed, r in itertools.product(pr.lr_pairs, pr.transfer_sizes, FREEZE_OPTIONS,
                                                               pr.seeds, swept):
                jobs.append(Job(series, "transfer", a, seed, lp, b, fr, lt, n, replicate=r))
        for mix, seed in itertools.product(pr.mixtures if set(MIXTURE_PAIR) <= set(s.domains) else (), pr.seeds):
            jobs.append(Job(series, "mixture", MIXTURE_PAIR[0], seed, lr_pre, MIXTURE_PAIR[1], mixture=tuple(mix)))
    pretrains = {j.pretrain_job() for j in jobs if j.kind == "transfer"}
    pretrains |= {Job(series, "pretrain", a, seed, lr_pre, replicate=r)
                  for a, seed, r in itertools.product(s.sources, pr.seeds, reps)}
    # replicate-major: a run stopped early still has every source's first replicates
    ordered = sorted(pretrains, key=lambda j: (j.replicate, j.source, j.seed, j.lr_pretrain)) + jobs
    return list(dict.fromkeys(ordered))


def results_dir(cache=None) -> Path:
    return cache_dir(cache) / "results"


def row_path(job: Job, preset: Preset, cache=None) -> Path:
    return results_dir(cache) / "rows" / job.series / f"{job.kind}-{job.key(preset)}.json"


def model_path(job: Job, preset: Preset, cache=None) -> Path:
    return cache_dir(cache) / "models" / preset.name / job.series / f"{job.key(preset)}.pt"


_LOADED: collections.OrderedDict = collections.OrderedDict()  # (dataset, preset as the series runs it, cache)


def _data(series: str, domain: str, split: str, preset: Preset, cache) -> tr.Data:
    """One dataset as training tensors, kept for the next job of this process (the 128 last used). The preset
    travels as a value: an ablation arm or a changed preset loads the datasets of its own values, never those of
    a registered preset of the same name."""
    pr = get_preset(preset).for_series(series)
    key = (series, domain, split, repr(pr), str(cache_dir(cache)))
    if key not in _LOADED:
        d = ds.load_dataset(series, domain, split, pr, cache)
        _LOADED[key] = tr.Data.from_arrays(d.images, d.masks)
        while len(_LOADED) > 128:
            _LOADED.popitem(last=False)
    _LOADED.move_to_end(key)
    return _LOADED[key]


def _val_sets(series: str, preset: Preset, cache) -> dict:
    return {d: _data(series, d, "val", preset, cache) for d in ds.get_series(series, preset).domains}


def _row(job: Job, preset: Preset, device, hist: tr.History, model, **extra) -> dict:
    row = asdict(job)
    row.update(preset=preset.name, width=preset.width, epochs=preset.epochs, device=str(device),
               precision=tr.precision_name(device), trainable_params=count_trainable(model),
               seconds_per_epoch=hist.seconds_per_epoch, images_per_second=hist.images_per_second,
               losses=json.dumps(hist.losses), losses_study=json.dumps(hist.study),
               train_losses=json.dumps(hist.train), key=job.key(preset))
    row.update(extra)
    if row["mixture"] is not None:
        row["mixture"] = list(row["mixture"])
    return row


def _config(job: Job, pr: Preset, lr: float, epochs: int, n_images: int) -> tr.TrainConfig:
    """The training settings of a job. A pretraining or a mixture gets ``epoch_crops`` crops an epoch (with
    ``crop``); a model from scratch on target images, or a transfer with a pretraining's budget, as many
    minibatches per epoch as a pretraining (its crops, or without ``crop`` as many passes as a pretraining's
    dataset holds images); a transfer otherwise one pass over its images (one crop of each)."""
    if job.budget not in (None, "pretraining"):
        raise ValueError(f"budget={job.budget!r} is unknown; allowed: None, 'pretraining'")
    pr = pr.for_series(job.series)
    forms = tr.dihedral_forms(pr.augment)
    crops = 1
    if job.kind == "scratch" or job.budget == "pretraining":
        source_images = ds.split_count(ds.SERIES[job.series], pr, "train")
        per_epoch = pr.epoch_crops if pr.crop and pr.epoch_crops else forms * source_images
        crops = max(1, round(per_epoch / (forms * n_images)))
    elif job.kind != "transfer" and pr.crop and pr.epoch_crops:
        crops = max(1, round(pr.epoch_crops / (forms * n_images)))
    schedule = "exponential" if job.kind == "transfer" else pr.scratch_schedule
    return tr.TrainConfig(epochs=epochs, lr=lr, batch_size=pr.batch_size, augment=pr.augment,
                          crop=pr.crop, crops_per_image=crops, seed=job.train_seed(), schedule=schedule)


def minibatches(job: Job, pr: Preset, n_images: int) -> int:
    """The minibatches ``job`` trains for on ``n_images`` images over the preset's epochs (``_config``)."""
    cfg = _config(job, pr, 0.0, pr.epochs, n_images)
    return cfg.epochs * -(-n_images * tr.dihedral_forms(cfg.augment) * cfg.crops_per_image // cfg.batch_size)


def _pretrain(jobs: list[Job], pr: Preset, cache, dev, keep=None) -> list[dict]:
    """Train each job's model on its source (one stack: ``train.fit_stack``); P on every domain at the epoch of
    its best source validation loss.

    With ``validate_every_epoch`` off, the epochs validate on the source only and the selected weights are then
    scored on every other domain once: the same P, without the other domains' per-epoch curves.
    """
    val = _val_sets(jobs[0].series, pr, cache)
    models = [tr.new_model(pr.width, job.train_seed()) for job in jobs]
    trains = [_data(job.series, job.source, "train", pr, cache) for job in jobs]
    watched = [val if pr.validate_every_epoch else {job.source: val[job.source]} for job in jobs]
    cfgs = [_config(job, pr, job.lr_pretrain, pr.epochs, len(t)) for job, t in zip(jobs, trains)]
    hists = tr.fit_stack(models, trains, watched, cfgs, [job.source for job in jobs], dev)
    unwatched = [{d: data for d, data in val.items() if d not in w} for w in watched]
    scored = _score_selected(hists, pr.width, unwatched, dev)
    rows = []
    for i, (job, hist, extra, model) in enumerate(zip(jobs, hists, scored, models)):
        epoch = hist.best_epoch  # of the lowest source validation loss
        path = model_path(job, pr, cache)
        if keep is None or i in keep or not path.exists():  # a finished member's weights are left as they are
            tr.save_model(path, hist.best_state, _model_meta(job, pr, dev, best_epoch=epoch))
        p_all = {d: (hist.losses[d][epoch], hist.study[d][epoch]) if d in hist.losses else extra[d] for d in val}
        rows.append(_row(job, pr, dev, hist, model, best_epoch_pretrain=epoch,
                         P_all=json.dumps({d: v[0] for d, v in p_all.items()}),
                         P_all_study=json.dumps({d: v[1] for d, v in p_all.items()}),
                         constant_loss=tr.constant_prediction_loss(val[job.source].masks)))
    return rows


def _model_meta(job: Job, pr: Preset, dev, **extra) -> dict:
    """What a model file records beside its weights: its width, job, and how it was computed."""
    return {"width": pr.width, "job": asdict(job), "precision": tr.precision_name(dev), "device": dev.type, **extra}


def _score_selected(hists: list, width: int, sets: list[dict], dev) -> list[dict]:
    """Each history's selected weights scored once on each set of ``sets[k]`` ({domain: Data}, the same domains
    for every k): (cross-entropy, study-scale loss) per domain. A stack of the selected weights scores all of
    them in one pass a domain (the weights are those of the single models)."""
    from .model import UNet, stack_states

    domains = list(sets[0]) if sets else []
    if not domains:
        return [{} for _ in hists]
    net = UNet(width, members=len(hists))
    net.load_state_dict(stack_states([h.best_state for h in hists]))
    net.to(dev)
    out = [{} for _ in hists]
    for j in range(len(domains)):
        names = [list(s)[j] for s in sets]
        for k, value in enumerate(tr.evaluate_members(net, [s[n] for s, n in zip(sets, names)], dev)):
            out[k][names[k]] = value
    return out


def _pretrained(pre: Job, pr: Preset, cache, dev, threads):
    """The weights of a pretraining, trained (again) when they are missing or damaged: a damaged file is moved
    aside with its row, so that the pretraining and its row are rebuilt together (the same on a CPU)."""
    path = model_path(pre, pr, cache)
    if path.exists():
        try:
            return tr.load_model(path)[0]
        except Exception as err:  # torch and JSON raise many kinds; any unreadable model is rebuilt
            set_aside_model(path, cache, err)
    row = row_path(pre, pr, cache)
    if row.exists():
        move_aside(row, cache, "its model weights are missing or damaged")
    run_job(pre, pr, cache, str(dev), threads)
    return tr.load_model(path)[0]


def set_aside_model(path: Path, cache, err: Exception) -> str:
    """Move unreadable model weights and their metadata to ``<cache>/damaged/``; return the reason."""
    reason = f"{type(err).__name__}: {str(err).splitlines()[0][:120]}"
    for part in (path, path.with_suffix(".json")):
        if part.exists():
            move_aside(part, cache, reason)
    return reason


def _transfer(jobs: list[Job], pr: Preset, cache, dev, threads) -> list[dict]:
    """Fine-tune each job's pretrained model on ``transfer_size`` target images with one half frozen (one stack
    of one freezing option); T as defined. Each selected model is then scored on the domains its row records
    (every domain for the main-setting defocus transfers: the out-of-distribution figure; else its source), its
    target's score taken from the epoch that selected it, not computed again."""
    models, pre_rows = [], []
    for job in jobs:
        pre = job.pretrain_job()
        pretrained = _pretrained(pre, pr, cache, dev, threads)
        pre_rows.append(read_row(row_path(pre, pr, cache), cache))
        models.append(tr.transfer_model(pretrained.state_dict(), pr.width, job.freeze)[0])
    val = _val_sets(jobs[0].series, pr, cache)
    trains = [_data(j.series, j.target, "train", pr, cache).take(j.transfer_size) for j in jobs]
    cfgs = [_config(j, pr, j.lr_transfer, pr.epochs, len(t)) for j, t in zip(jobs, trains)]
    hists = tr.fit_stack(models, trains, [{j.target: val[j.target]} for j in jobs], cfgs, [j.target for j in jobs],
                         dev)
    every = jobs[0].series == "defocus" and is_main_setting(jobs[0], pr)
    sets = [{d: val[d] for d in (val if every else (j.source,)) if d != j.target} for j in jobs]
    scored = _score_selected(hists, pr.width, sets, dev)
    rows = []
    for job, hist, extra, model, pre_row in zip(jobs, hists, scored, models, pre_rows):
        t_value, t_epoch = tr.select_loss(hist.losses, job.target, job.target)
        t_all = {job.target: (t_value, hist.study[job.target][t_epoch]), **extra}
        t_all = {d: t_all[d] for d in val if d in t_all}
        rows.append(_row(job, pr, dev, hist, model, best_epoch_pretrain=pre_row["best_epoch_pretrain"],
                         best_epoch_transfer=t_epoch, P=json.loads(pre_row["P_all"])[job.target], T=t_value,
                         P_study=json.loads(pre_row["P_all_study"])[job.target],
                         T_study=hist.study[job.target][t_epoch],
                         T_all=json.dumps({d: v[0] for d, v in t_all.items()}),
                         T_all_study=json.dumps({d: v[1] for d, v in t_all.items()}),
                         P_all=pre_row["P_all"], P_all_study=pre_row["P_all_study"]))
    return rows


def _mixtures(jobs: list[Job], pr: Preset, cache, dev) -> list[dict]:
    """Baseline: one stage on a source:target mixture for as many epochs as the two stages together; the
    mixtures of one total size train as one stack, each from its own initialisation on its own images."""
    val = _val_sets(jobs[0].series, pr, cache)
    trains = [_data(j.series, j.source, "train", pr, cache).take(j.mixture[0])
              + _data(j.series, j.target, "train", pr, cache).take(j.mixture[1]) for j in jobs]
    models = [tr.new_model(pr.width, j.seed) for j in jobs]
    cfgs = [_config(j, pr, j.lr_pretrain, 2 * pr.epochs, len(t)) for j, t in zip(jobs, trains)]
    hists = tr.fit_stack(models, trains, [val] * len(jobs), cfgs, [j.target for j in jobs], dev)
    rows = []
    for job, hist, model in zip(jobs, hists, models):
        t_value, t_epoch = tr.select_loss(hist.losses, job.target, job.target)
        rows.append(_row(job, pr, dev, hist, model, best_epoch_transfer=t_epoch, T=t_value,
                         T_study=hist.study[job.target][t_epoch]))
    return rows


def _scratch(jobs: list[Job], pr: Preset, cache, dev) -> list[dict]:
    """Baseline of the hands-on chapter: fresh U-Nets (one stack) trained on ``transfer_size`` target images only,
    with a pretraining's budget (``epochs`` epochs of ``epoch_crops`` crops) at the pretraining learning rate;
    scored like a transfer (the target's validation loss at its best epoch)."""
    val = _val_sets(jobs[0].series, pr, cache)
    models = [tr.new_model(pr.width, job.train_seed()) for job in jobs]
    trains = [_data(job.series, job.target, "train", pr, cache).take(job.transfer_size) for job in jobs]
    cfgs = [_config(job, pr, job.lr_pretrain, pr.epochs, len(t)) for job, t in zip(jobs, trains)]
    hists = tr.fit_stack(models, trains, [{job.target: val[job.target]} for job in jobs], cfgs,
                         [job.target for job in jobs], dev)
    rows = []
    for job, hist, model in zip(jobs, hists, models):
        t_value, t_epoch = tr.select_loss(hist.losses, job.target, job.target)
        rows.append(_row(job, pr, dev, hist, model, best_epoch_transfer=t_epoch, T=t_value,
                         T_study=hist.study[job.target][t_epoch]))
    return rows


ROW_KEYS = ("series", "kind", "source", "seed", "key", "preset")  # every results row has these


class DamagedRow(ValueError):
    """A results row that does not parse or lacks its keys (moved aside to ``<cache>/damaged/``)."""


def read_row(path: Path, cache=None) -> dict:
    """A results row; a damaged one (it does not parse, is not a row, lacks a key of ``ROW_KEYS``, or its key is
    not its file's) is moved aside and :class:`DamagedRow` raised, naming it and the reason."""
    path = Path(path)
    try:
        row = json.loads(path.read_bytes().decode("utf-8"))
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
        missing = [k for k in ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"lacks {', '.join(missing)}")
        if not path.stem.endswith(str(row["key"])):
            raise ValueError(f"holds the row of another model ({row['key']})")
    except (ValueError, UnicodeDecodeError) as err:  # json.JSONDecodeError is a ValueError
        reason = str(err).splitlines()[0]
        dest = move_aside(path, cache, reason)
        raise DamagedRow(f"results row {path} was damaged ({reason}); moved to {dest}") from None
    return row


def _finished(job: Job, preset: Preset, cache) -> bool:
    """Whether the job's row is there and sound (a damaged one is moved aside, so the job runs again)."""
    path = row_path(job, preset, cache)
    if not path.exists():
        return False
    try:
        read_row(path, cache)
    except DamagedRow:
        return False
    return True


def run_job(job: Job, preset: str | Preset, cache=None, device: str = "auto", threads: int | None = None) -> dict:
    """Train one job in its stack (a transfer first makes its pretraining if missing), write its row (and its
    stack's missing ones), and return it."""
    pr = get_preset(preset)
    stack = stacks([job], pr)[0]
    return run_stack(stack, pr, cache, device, threads)[stack.index(job)]


def run_stack(jobs: list[Job], preset: str | Preset, cache=None, device: str = "auto",
              threads: int | None = None) -> list[dict]:
    """Train the unfinished ``jobs`` (one :func:`stack_key`: pretrainings, or transfers of one freezing option) as
    one stacked network, write each model and row as its own artefact, and return their rows in order. A
    killed stack leaves its finished neighbours' rows; its own
    models run again."""
    import torch

    pr = get_preset(preset).for_series(jobs[0].series)
    rows: dict[int, dict] = {}
    for i, job in enumerate(jobs):
        path = row_path(job, pr, cache)
        if path.exists():
            try:
                rows[i] = read_row(path, cache)
            except DamagedRow:  # moved aside and warned: trained again below
                pass
    todo = [i for i in range(len(jobs)) if i not in rows]
    if todo:  # the whole stack trains (its finished members again, so that the others get the same numbers)
        if len({stack_key(job, pr) for job in jobs}) != 1:
            raise ValueError("a stack's jobs must share their stack_key (series, kind, freezing, learning rates, "
                             "transfer size, budget, minibatches)")
        dev = tr.pick_device(device)
        if dev.type == "cpu":  # one thread per stack, whichever scheduler runs it: the same numbers in-process and
            torch.set_num_threads(threads or 1)  # on a Dask worker (two threads sum in another order)
        _check_precision(pr, cache, dev)
        kind = jobs[0].kind
        if kind == "pretrain":
            made = _pretrain(jobs, pr, cache, dev, keep=set(todo))
        elif kind == "transfer":
            made = _transfer(jobs, pr, cache, dev, threads)
        elif kind == "scratch":
            made = _scratch(jobs, pr, cache, dev)
        else:
            made = _mixtures(jobs, pr, cache, dev)
        for i in todo:
            atomic_write(row_path(jobs[i], pr, cache), lambda tmp, row=made[i]: Path(tmp).write_text(json.dumps(row)))
            rows[i] = made[i]
    return [rows[i] for i in range(len(jobs))]


# Models trained as one stack (``train.fit_stack``). Measured on one core (2026-12-04, bf16, the narrow
# convolutions paired, ``model.StackConv``), ms of training step per model against 29.3 / 50.9 for the step before
# stacks: 64-pixel crops (defocus, structure) 27.7 / 15.2 / 14.0 / 14.7 at K = 1 / 4 / 8 / 16 (2.09x at 8, 1.93x at
# 4); 96-pixel crops (the dose series) 49.5 / 27.7 / 28.6 / 30.0. Pretrainings stack by 8 like transfers: 8 gains
# 8 % on the 64-pixel series and loses 3 % on the dose series' 15 pretrainings (2 stacks, one a core), and the
# stage's 63 pretrainings still make 10 stacks for 2 cores (17 at 4). Transfers (``TRANSFER_STACK_MEMBERS``):
# 700-900 a stage.
STACK_MEMBERS = 8
TRANSFER_STACK_MEMBERS = 8


def stack_members(kind: str, members: int = STACK_MEMBERS) -> int:
    """The most models of ``kind`` one stack holds: ``members`` pretrainings, ``members`` x
    ``TRANSFER_STACK_MEMBERS / STACK_MEMBERS`` transfers or models from scratch (as many, at the defaults), and
    ``members`` mixtures (models from scratch like the pretrainings)."""
    per_transfer = members * TRANSFER_STACK_MEMBERS // STACK_MEMBERS
    return {"pretrain": members, "mixture": members, "transfer": per_transfer, "scratch": per_transfer}[kind]


def stack_key(job: Job, pr: Preset) -> tuple:
    """Jobs with one stack key can train as one stack: the same series, kind, freezing option, learning rates,
    budget and minibatches, and the same transfer size unless they train a pretraining's budget (the hands-on
    chapter's transfers and models from scratch: every size trains as many minibatches an epoch). Mixtures stack
    when they share their total size (and so their minibatches), whatever their proportions."""
    if job.kind == "mixture":
        return (job.series, job.kind, job.lr_pretrain, sum(job.mixture), minibatches(job, pr, sum(job.mixture)))
    size = None if job.budget == "pretraining" or job.kind == "scratch" else job.transfer_size
    return (job.series, job.kind, job.freeze, job.lr_pretrain, job.lr_transfer, size, job.budget,
            minibatches(job, pr, train_images(job, pr)))


def train_images(job: Job, pr: Preset) -> int:
    """The images ``job`` trains on: its transfer set, or its source's training split (large-particle training
    sets hold ``large_train_scale`` times the scenes)."""
    if job.kind in ("transfer", "scratch"):
        return job.transfer_size
    n = ds.split_count(ds.SERIES[job.series], pr, "train")
    return n * pr.large_train_scale if job.source.endswith("_large") else n


def chunked(jobs: list[Job], pr: Preset, members: int = STACK_MEMBERS) -> list[list[Job]]:
    """``jobs`` cut into stacks of at most ``members`` consecutive jobs of one :func:`stack_key` (a pretraining's
    replicates and a series' sources, a cell's targets of one freezing option stack together)."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(stack_key(job, pr), []).append(job)
    out = []
    for group in groups.values():
        size = stack_members(group[0].kind, members)
        out += [group[i:i + size] for i in range(0, len(group), size)]
    return out


_GRID_STACKS: dict[tuple, dict] = {}


def _grid_stacks(series: str, pr: Preset, members: int) -> dict[Job, tuple]:
    """Job -> the stack of its series' grid it belongs to (its canonical stack; computed once per preset)."""
    key = (series, repr(pr), members)
    if key not in _GRID_STACKS:
        _GRID_STACKS[key] = {job: tuple(stack) for stack in chunked(grid(series, pr), pr, members) for job in stack}
    return _GRID_STACKS[key]


def stacks(jobs: list[Job], pr: Preset, members: int = STACK_MEMBERS) -> list[list[Job]]:
    """The stacks that train ``jobs``. A job of a series' grid trains in its grid stack, whichever other jobs are
    asked for, so that a model's numbers never depend on what else ran beside it (stacked and single models
    differ by float rounding, which training amplifies: measured, as much as one model on 1 or 2 threads); the
    other jobs (the hands-on chapter's) are cut into stacks in their order."""
    out, extra = {}, []
    for job in jobs:
        stack = _grid_stacks(job.series, pr, members).get(job)
        if stack is None:
            extra.append(job)
        else:
            out.setdefault(stack, list(stack))
    return list(out.values()) + chunked(extra, pr, members)


class MixedPrecision(ValueError):
    """A cache whose models of one preset were computed in another precision than this machine's."""


def _check_precision(pr: Preset, cache, dev) -> None:
    """One line instead of a mixed table: the rows of ``pr`` already in the cache say how they were computed;
    a machine that computes in another precision adds no models beside them (another cache, or --device)."""
    here = tr.precision_name(dev)
    others = sorted(_cached_precisions(pr.name, str(cache_dir(cache))) - {here})
    if others:  # models of another precision, whether or not models of this one sit beside them
        raise MixedPrecision(
            f"the cache {cache_dir(cache)} holds {pr.name} models computed in {', '.join(others)} and this "
            f"machine computes in {here}: use another --cache for this machine, or a machine that computes in "
            f"{', '.join(others)}")


@functools.lru_cache(maxsize=32)
def _cached_precisions(preset: str, cache: str) -> frozenset:
    """The precisions recorded by the first rows of ``preset`` in ``cache`` (read once per process)."""
    found = set()
    folder = Path(cache) / "results" / "rows"
    for path in itertools.islice(folder.glob("*/*.json") if folder.exists() else [], 200):
        try:
            row = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if row.get("preset") == preset:
            found.add(tr.precision_of(row.get("precision")))
    return frozenset(found)


def _check_datasets(series: str, preset: Preset, cache) -> None:
    for domain in ds.get_series(series, preset).domains:
        for split in ds.SPLITS:
            if not ds.dataset_path(series, domain, split, preset, cache).exists():
                raise FileNotFoundError(
                    f"datasets of the {series} series (preset {preset.name}) are missing; run "
                    f"`{command('simulate', series, preset, cache)}`")


def run_study(series: str = "all", preset: str | Preset = "cpu", cache=None, device: str = "auto",
              scheduler: str | None = None, progress: bool = True, extra_jobs=(),
              stage_seconds: dict | None = None) -> dict[str, pd.DataFrame]:
    """Train every missing job of ``series`` (pretrainings first), and of ``extra_jobs`` (the hands-on chapter's,
    whose datasets must exist too), and return the results tables (``stage_seconds`` gets each stage's time)."""
    names, pr = ds.series_names(series), get_preset(preset)
    for name in names:
        _check_datasets(name, pr, cache)
    run_jobs([j for name in names for j in grid(name, pr)] + list(extra_jobs), pr, cache, device, scheduler,
             progress, stage_seconds)
    return {name: load_results(name, pr, cache) for name in names}


def run_jobs(jobs, preset: Preset, cache=None, device: str = "auto", scheduler: str | None = None,
             progress: bool = True, stage_seconds: dict | None = None) -> None:
    """Train the unfinished ``jobs`` on the workers: every pretraining first, then the models that start from one
    or from scratch (one progress bar each); ``stage_seconds`` (a dict) gets the seconds of each stage."""
    import time

    from .parallel import n_cores, run_tasks

    dev = tr.pick_device(device)
    cache = str(cache_dir(cache))
    gpu = dev.type == "cuda"
    threads = None if scheduler == "synchronous" or gpu else 1
    every = list(dict.fromkeys(jobs))
    todo = {j for j in every if not _finished(j, preset, cache)}
    _check_precision(preset, cache, dev)
    for kinds, desc in ((("pretrain",), "pretrainings"), (("transfer", "mixture", "scratch"), "transfers")):
        # every pretraining of every series first: the transfers of all series then share the workers. Stacks are
        # cut from every job asked for, finished or not, so that they are the same in every run; the longest
        # first (members x minibatches), so that the last ones to finish are short (measured: a cpu book whose
        # single mixtures and equal-budget models ran last spent its last minute on one core)
        cut = stacks([j for j in every if j.kind in kinds], preset)
        batch = sorted([s for s in cut if any(j in todo for j in s)], key=lambda s: _cost(s, preset), reverse=True)
        start = time.perf_counter()
        run_tasks(run_stack, batch, dict(preset=preset, cache=cache, device=str(dev), threads=threads),
                  scheduler=scheduler, desc=desc, progress=progress, gpu=gpu, n_workers=None if gpu else n_cores(),
                  describe=_describe, unit="model", size=len, name=_stack_name)
        if stage_seconds is not None:
            stage_seconds[desc] = time.perf_counter() - start


def _cost(jobs: list[Job], pr: Preset) -> int:
    """Minibatches a stack trains, summed over its members (a mixture trains on both of its sets)."""
    job = jobs[0]
    images = sum(job.mixture) if job.kind == "mixture" else train_images(job, pr)
    epochs = 2 * pr.epochs if job.kind == "mixture" else pr.epochs
    return len(jobs) * minibatches(job, pr, images) * epochs // pr.epochs


def _stack_name(jobs: list[Job]) -> str:
    """A stack in an error message: its first job and how many more."""
    j = jobs[0]
    what = f"{j.series} {j.kind} {j.source}" + (f"->{j.target} {j.freeze}" if j.target else "")
    return what + (f" (and {len(jobs) - 1} more stacked with it)" if len(jobs) > 1 else "")


def _describe(rows) -> str:
    """Progress-bar text for a finished stack: the selected loss of its last model."""
    row = rows[-1] if isinstance(rows, list) else rows
    if row["kind"] == "pretrain":
        return f"{row['series']} {row['source']}: P={json.loads(row['P_all'])[row['source']]:.4f}"
    how = {"scratch": f"from scratch on {row.get('transfer_size')}", "mixture": "mix"}.get(row["kind"],
                                                                                       row.get("freeze"))
    return f"{row['series']} {row['source']}->{row['target']} {how}: T={row['T']:.4f}"


def simulation_device(device: str) -> str:
    """The multislice device that goes with a training device: the GPU when CUDA is used and CuPy works."""
    from .simulate import cuda_available

    return "cuda" if tr.pick_device(device).type == "cuda" and cuda_available() else "cpu"


def results(series: str, preset: str | Preset = "cpu", cache=None, device: str = "auto", seeds=None) -> pd.DataFrame:
    """The results table of one series, making whatever datasets and models are missing first (cached)."""
    pr = get_preset(preset, seeds)
    ds.simulate_series(series, pr, cache, simulation_device(device), progress=False)
    return run_study(series, pr, cache, device, progress=False)[series]


def load_results(series: str, preset: str | Preset | None = None, cache=None, seeds=None) -> pd.DataFrame:
    """Finished rows of ``series``, also saved as ``results/<series>.parquet``.

    With ``preset`` (and ``seeds``): only the rows of that preset's grid as it stands, so that rows left by
    earlier settings of a preset (an edited ``presets.py``) never mix into its tables.
    """
    ds.get_series(series)
    folder = results_dir(cache) / "rows" / series
    rows = []
    for path in sorted(folder.glob("*.json")) if folder.exists() else []:
        try:
            rows.append(read_row(path, cache))
        except DamagedRow as err:
            pr = get_preset(preset or "cpu", seeds)
            raise FileNotFoundError(f"{err}; rebuild it with `{command('train', series, pr, cache)}`") from None
    df = pd.DataFrame(rows)
    if len(df):
        df["mixture"] = df["mixture"].map(lambda m: None if m is None else json.dumps(m))
        out = results_dir(cache) / f"{series}.parquet"
        atomic_write(out, lambda tmp: df.to_parquet(tmp, index=False))
        if preset is not None:
            pr = get_preset(preset, seeds)
            keys = {job.key(pr) for job in grid(series, pr)}
            df = df[df["key"].isin(keys)].reset_index(drop=True)
    return df


def grid_size(series: str, preset: str | Preset) -> dict:
    """How many jobs of each kind the grid holds."""
    jobs = grid(series, preset)
    return {kind: sum(j.kind == kind for j in jobs) for kind in ("pretrain", "transfer", "mixture")}



# ---------------------------------------------------------------- tables of a series

def is_main_setting(job: Job, preset: Preset) -> bool:
    """Whether a transfer job has the main setting: the main learning rates and the main transfer size."""
    lr_pre, lr_tr = preset.main_lr
    return (job.kind == "transfer" and np.isclose(job.lr_pretrain, lr_pre) and np.isclose(job.lr_transfer, lr_tr)
            and job.transfer_size == preset.transfer_size)


def main_setting(df: pd.DataFrame, preset: str | Preset, kind: str = "transfer") -> pd.DataFrame:
    """The rows of ``kind`` with the main setting: transfers at the main learning rates and transfer size (the
    heatmaps, dose, structure), pretrainings at the main pretraining learning rate."""
    pr = get_preset(preset)
    lr_pre, lr_tr = pr.main_lr
    if not len(df):
        return df
    keep = (df.kind == kind) & np.isclose(df.lr_pretrain.astype(float), lr_pre)
    if kind == "transfer":
        keep &= np.isclose(df.lr_transfer.astype(float), lr_tr) & (df.transfer_size == pr.transfer_size)
    return df[keep]


@functools.lru_cache(maxsize=65536)
def parsed(text: str) -> dict:
    """A JSON column of the results table, parsed once (bootstrap draws reread the same rows): do not mutate."""
    return json.loads(text)


MODEL_COLUMNS = ["source", "target", "stage", "freeze", "seed", "replicate", "loss", "loss_study"]
PRETRAINED = "-"  # the freeze label of P values (and of the diagonal of T): they pass every freezing picker


def model_table(df: pd.DataFrame, series: str, preset: str | Preset, domains=None) -> pd.DataFrame:
    """The tidy table behind the heatmaps: one row per (model, target, stage), with ``loss`` (cross-entropy,
    nats) and ``loss_study`` (the same model on the study's published scale, ``train.study_scale_loss``).

    P rows come from the pretrainings themselves: every replicate of a source on every target at its selected
    epoch (freeze "-": P does not depend on the freezing option). T rows are the main-setting transfers; a
    diagonal cell has no transfer (as in the study), so its T rows repeat the P rows.
    """
    if not len(df):
        return pd.DataFrame(columns=MODEL_COLUMNS)
    out = []
    for _, row in main_setting(df, preset, "pretrain").iterrows():
        ce, study = parsed(row.P_all), parsed(row.P_all_study)
        replicate = row.get("replicate", 0)
        for target in ce:
            for stage in ("P", "T") if target == row.source else ("P",):
                out.append((row.source, target, stage, PRETRAINED, row.seed, replicate, ce[target], study[target]))
    transfers = main_setting(df, preset)
    table = pd.DataFrame(out, columns=MODEL_COLUMNS)
    if len(transfers):  # pretrainings alone (the ablation's arms) have P rows and the diagonal only
        replicates = transfers["replicate"] if "replicate" in transfers else 0
        table = pd.concat([table, pd.DataFrame(
            {"source": transfers.source, "target": transfers.target, "stage": "T", "freeze": transfers.freeze,
             "seed": transfers.seed, "replicate": replicates, "loss": transfers["T"],
             "loss_study": transfers.T_study})], ignore_index=True)
    if domains is not None:
        table = table[table.source.isin(domains) & table.target.isin(domains)]
    return table.reset_index(drop=True)


def cell_table(models: pd.DataFrame, reduction: str = "median", freezes=FREEZE_OPTIONS) -> pd.DataFrame:
    """P and T per (source, target) cell (cross-entropy and the study's scale), reduced over the models of the
    cell: every pretraining of the source for P, the transfers of the chosen freezing options for T (Python twin
    of the page). A cell without models of a stage gets NaN there."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction={reduction!r} is unknown; allowed: {', '.join(REDUCTIONS)}")
    sel = models[models.freeze.isin([*freezes, PRETRAINED])]
    cells = sel.groupby(["source", "target", "stage"])[["loss", "loss_study"]].agg(reduction).unstack("stage")
    cells.columns = [f"{stage}{'_study' if col == 'loss_study' else ''}" for col, stage in cells.columns]
    return cells.reindex(columns=["P", "T", "P_study", "T_study"]).reset_index()


def sweep_rows(df: pd.DataFrame, preset: str | Preset) -> pd.DataFrame:
    """The defocus hyperparameter sweep (Fig 6.1): transfers from its sources to its targets, every setting."""
    pr = get_preset(preset)
    s = ds.get_series("defocus", pr)
    if not len(df):
        return df
    sources, targets = _subset(pr.sweep_sources, s.sources), _subset(pr.sweep_targets, s.domains)
    return df[(df.series == "defocus") & (df.kind == "transfer") & df.source.isin(sources)
              & df.target.isin(targets)].reset_index(drop=True)
