"""Training: standardization, dihedral augmentation, Adam + cross-entropy, per-epoch validation, P/T selection.

STUDY.md 4: minibatch 16, Adam, cross-entropy on logits (no softmax before the loss: plain cross-entropy has
floor 0, unlike the published 0.3133), learning rate x0.99 per epoch, validation loss on every domain at every
epoch of pretraining. Mixed precision (STUDY.md 4): bf16 autocast and channels_last on CUDA, and on CPUs with
native bf16 (AVX512-BF16/AMX, about 2x faster here), else fp32; runs are repeatable for a seed on the CPU.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from .cache import atomic_write
from .model import UNet, count_trainable, freeze
from .simulate import standardize

LR_DECAY = 0.99  # per epoch, STUDY.md 4
AUGMENT_OPTIONS = ("all8", "random", "none")
# how the learning rate moves over the epochs: the study's x0.99 an epoch, or a half cosine from the rate to 0 over
# the epochs (the rate of epoch e is lr (1 + cos(pi e / E)) / 2)
SCHEDULES = ("exponential", "cosine")


def pick_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device={device!r} is unknown; allowed: auto, cpu, cuda")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but torch sees no CUDA device; allowed here: auto, cpu")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def new_model(width: int, seed: int) -> UNet:
    """A freshly initialised U-Net; the same ``seed`` gives the same weights."""
    torch.manual_seed(seed)
    return UNet(width)


def dihedral_forms(augment: str) -> int:
    """How many forms of each image an epoch shows: all 8 dihedral transforms (``all8``) or one."""
    return 8 if augment == "all8" else 1


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th (0..7) of the 8 dihedral transforms of the last two axes: k % 4 quarter turns, then a flip if k >= 4."""
    x = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if k >= 4 else x


@dataclass
class Data:
    """Standardized images (N, 1, H, W) float32 and masks (N, H, W) int64, on the CPU."""

    images: torch.Tensor
    masks: torch.Tensor

    @classmethod
    def from_arrays(cls, images: np.ndarray, masks: np.ndarray) -> "Data":
        return cls(torch.from_numpy(standardize(images))[:, None], torch.from_numpy(masks.astype(np.int64)))

    def take(self, n: int) -> "Data":
        if n > len(self):
            raise ValueError(f"transfer_size={n} exceeds the {len(self)} training images available")
        return Data(self.images[:n], self.masks[:n])

    def __add__(self, other: "Data") -> "Data":
        return Data(torch.cat([self.images, other.images]), torch.cat([self.masks, other.masks]))

    def __len__(self) -> int:
        return len(self.images)


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 1e-4
    batch_size: int = 16
    augment: str = "all8"
    crop: int = 0
    crops_per_image: int = 1  # random crops (with ``crop``; else passes) of each image and dihedral form per epoch
    seed: int = 0
    schedule: str = "exponential"  # one of SCHEDULES

    def __post_init__(self):
        if self.augment not in AUGMENT_OPTIONS:
            raise ValueError(f"augment={self.augment!r} is unknown; allowed: {', '.join(AUGMENT_OPTIONS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule={self.schedule!r} is unknown; allowed: {', '.join(SCHEDULES)}")
        if self.crops_per_image < 1:
            raise ValueError(f"crops_per_image={self.crops_per_image} must be >= 1")


@dataclass
class History:
    """Per-epoch validation losses per domain, the epoch timing and the weights at the selected epoch."""

    losses: dict = field(default_factory=dict)  # domain -> [cross-entropy per epoch]
    study: dict = field(default_factory=dict)  # domain -> [loss on the study's scale per epoch]
    train: list = field(default_factory=list)  # mean minibatch cross-entropy (nats) of each epoch, while training
    seconds_per_epoch: float = 0.0
    images_per_second: float = 0.0
    best_epoch: int = -1
    best_state: dict | None = None


def _crop_offsets(n: int, h: int, w: int, crop: int, gen: torch.Generator) -> torch.Tensor:
    """(n, 2) random top-left corners (row, column) of ``crop``-pixel crops, drawn row, column, row, ... from
    ``gen``: one draw for square images, the same numbers as one draw per corner."""
    if h == w:
        return torch.randint(0, h - crop + 1, (2 * n,), generator=gen).view(n, 2)
    return torch.tensor([[int(torch.randint(0, s - crop + 1, (1,), generator=gen)) for s in (h, w)]
                         for _ in range(n)], dtype=torch.long).view(n, 2)


def dihedral_batch(x: torch.Tensor, ks: torch.Tensor) -> torch.Tensor:
    """Sample i of ``x`` in dihedral form ``ks[i]`` (square last two axes): one transform per distinct form."""
    out = torch.empty_like(x)
    for k in ks.unique().tolist():
        pick = ks == k
        out[pick] = dihedral(x[pick], k)
    return out


@functools.lru_cache(maxsize=8)
def dihedral_maps(side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(8, side, side) source row and source column of each pixel of the 8 dihedral forms of a square
    (:func:`dihedral` applied to the coordinate grids: a form is a permutation of the pixels)."""
    grid = torch.arange(side)
    rows, cols = grid[:, None].expand(side, side), grid[None, :].expand(side, side)
    return (torch.stack([dihedral(rows, k) for k in range(8)]).contiguous(),
            torch.stack([dihedral(cols, k) for k in range(8)]).contiguous())


def batches(data: Data, cfg: TrainConfig, gen: torch.Generator):
    """Shuffled, augmented (and cropped) minibatches of one epoch.

    An epoch shows every image in all 8 dihedral forms (``all8``), in one random form (``random``) or as it is,
    each ``crops_per_image`` times (a new random crop each time when training on crops). Each minibatch is cut
    and transformed as a whole (the same minibatches as sample by sample, tested): a crop and its dihedral form are
    one gather of the pixels each output pixel comes from.
    """
    n, repeats = len(data), cfg.crops_per_image
    if cfg.augment == "all8":
        idx = torch.arange(n).repeat(8 * repeats)
        ks = torch.arange(8).repeat_interleave(n).repeat(repeats)
    else:
        idx = torch.arange(n).repeat(repeats)
        ks = (torch.randint(0, 8, (n * repeats,), generator=gen) if cfg.augment == "random"
              else torch.zeros(n * repeats, dtype=torch.long))
    order = torch.randperm(len(idx), generator=gen)
    idx, ks = idx[order], ks[order]
    h, w = data.images.shape[-2:]
    cropping = bool(cfg.crop) and cfg.crop < min(h, w)
    if cropping:  # where each pixel of a crop in form k comes from, as an offset from the crop's corner pixel
        row_map, col_map = dihedral_maps(cfg.crop)
        offsets = row_map * w + col_map
    for start in range(0, len(idx), cfg.batch_size):
        i, k = idx[start:start + cfg.batch_size], ks[start:start + cfg.batch_size]
        if cropping:  # one gather from the (N, 1, H, W) images each: 0.47 ms against 1.89 for cutting, then
            # transforming form by form (16 crops of 64 px from 160-px images, one core, measured 2026-12-03)
            corner = _crop_offsets(len(i), h, w, cfg.crop, gen)
            pixels = ((i * h + corner[:, 0]) * w + corner[:, 1])[:, None, None] + offsets[k]
            yield torch.take(data.images, pixels)[:, None], torch.take(data.masks, pixels)
        else:
            yield dihedral_batch(data.images[i], k), dihedral_batch(data.masks[i], k)


def mixed_precision(device: torch.device) -> bool:
    """bf16 autocast on CUDA, and on CPUs whose oneDNN has native bf16 kernels."""
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_name(device: torch.device) -> str:
    """How a model is computed on ``device``: "bf16" (autocast) or "fp32" (part of a model's identity: each
    results row and model file records it, and ``study`` refuses to mix the two under one key)."""
    return "bf16" if mixed_precision(device) else "fp32"


def precision_of(recorded: str | None) -> str:
    """The precision of a recorded row: "bf16" or "fp32" (rows before this field said "bf16 autocast + ...")."""
    return "bf16" if str(recorded).startswith("bf16") else "fp32"


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision(device))


# oneDNN's channels_last backward pass corrupts the heap on CPUs for whole images of 288 px and more (torch 2.13.0:
# "free(): invalid next size", "double free or corruption" at 288, 320, 352 and 640 px, fp32 and bf16, batch 2
# and 16; the first encoder stages; 64-256 px run), so on a CPU training on larger inputs runs in the default
# layout. The forward pass alone is sound at every side: at 288, 320, 352 and 640 px, 1 and 8 members, fp32 and
# bf16, under glibc's heap checks (GLIBC_TUNABLES=glibc.malloc.check=3), its fp32 logits equal the default
# layout's within 6e-8 (measured 2026-12-02), so evaluation runs channels_last whatever the side.
CHANNELS_LAST_MAX_SIDE = 256
# On an AVX2 CPU (no AVX512; fp32) the same backward pass corrupts the heap for networks of width 4 at every side
# from 32 to 320 px ("double free or corruption", "free(): invalid next size"), while width 8 and 16 run at 32-320
# px under the heap checks (measured 2026-12-02): narrower networks train in the default layout
CHANNELS_LAST_MIN_WIDTH = 8


def memory_format(device: torch.device, side: int, training: bool = True, width: int = 8) -> torch.memory_format:
    """The layout of a network of ``width`` and its inputs of ``side`` pixels: channels_last on CUDA, for
    evaluation (no gradients) on a CPU, and for training on a CPU up to 256 px at width 8 or more (1.43x the fp32
    steps of the default layout at the cpu preset's shapes on an AVX512 core, 1.27x for a stack of 8 on an AVX2
    one, measured), whatever the precision; the default layout otherwise (the crashes above)."""
    if device.type == "cuda" or not training:
        return torch.channels_last
    if side <= CHANNELS_LAST_MAX_SIDE and width >= CHANNELS_LAST_MIN_WIDTH:
        return torch.channels_last
    return torch.contiguous_format


def _layout(model: UNet, x: torch.Tensor, device: torch.device, training: bool = True) -> torch.Tensor:
    """``x`` on ``device`` in the layout for its side (and for training or evaluation), with ``model``'s weights
    in that layout too (converted only when it changes)."""
    fmt = memory_format(device, max(x.shape[-2:]), training, model.width)
    if getattr(model, "_layout", None) is not fmt:
        model.to(memory_format=fmt)
        model._layout = fmt
    return x.to(device, non_blocking=True).contiguous(memory_format=fmt)


STUDY_FLOOR = float(np.log1p(np.exp(-1.0)))  # log(1 + 1/e) = 0.3133, the published losses' floor (STUDY.md 4)


def study_scale_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss on the study's published scale: cross-entropy applied to softmax probabilities (the
    study's doubled softmax), minus its floor. For two classes it is log(1 + e^(1 - 2 p)) - log(1 + 1/e), p the
    probability given to the true class: bounded in [0, 1], close to the expected error rate. Used to compare
    with the published values, never for training (STUDY.md 4: do not copy the artefact)."""
    p = torch.softmax(logits, dim=1).gather(1, masks[:, None])[:, 0]
    return torch.log1p(torch.exp(1 - 2 * p)) - STUDY_FLOOR


def class_margin(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """z = (logit of the other class) - (logit of the true class) per pixel, fp32: (N, 2K, H, W) logits of a
    stack of K (member k's classes in channels 2k, 2k + 1; K = 1: a single network) and (N, K, H, W) masks (or
    (N, H, W) for K = 1) -> (N, K, H, W). Two classes need nothing else: the cross-entropy is softplus(z) and the
    probability of the true class sigmoid(-z) (:func:`margin_cross_entropy`, :func:`margin_study_loss`)."""
    if masks.dim() == 3:
        masks = masks[:, None]
    logits = logits.float()
    return (logits[:, 1::2] - logits[:, 0::2]).mul_(torch.rsub(masks, 1, alpha=2))  # x (1 - 2 y)


def margin_cross_entropy(z: torch.Tensor) -> torch.Tensor:
    """Per-pixel cross-entropy (nats) from :func:`class_margin`: log(1 + e^z), what ``F.cross_entropy`` computes
    for two classes (a log-softmax and a gather) in one elementwise pass (equal to float rounding, tested)."""
    return F.softplus(z)


def margin_study_loss(z: torch.Tensor, floor: bool = True) -> torch.Tensor:
    """:func:`study_scale_loss` from :func:`class_margin`: p = sigmoid(-z) (equal to float rounding, tested);
    ``floor=False``: without subtracting the floor (for sums that subtract it once)."""
    loss = F.softplus(torch.rsub(torch.sigmoid(z.neg()), 1, alpha=2))  # softplus(1 - 2 p)
    return loss - STUDY_FLOOR if floor else loss


# member-pixels per evaluation minibatch (images x members x side^2): with no gradients kept, the activations of
# about a million member-pixels stay in the caches. Measured on one core (bf16, channels_last, width 8): 320 px x
# 8 members at 1-2 images 11-13 Mpx/s against 5.5 at the 20 images of 2^21 pixels per image set; 160 px x 8 at 4
# images 12.8-13.6 against 10.4 at 16; 160 px x 1 member at 32 images 11.7
EVAL_PIXELS = 2 ** 20


def eval_batch(side: int, members: int = 1) -> int:
    """Images per evaluation minibatch for images of ``side`` pixels through a stack of ``members`` (at least 1)."""
    return max(1, EVAL_PIXELS // (side * side * members))


def _member_logits(logits: torch.Tensor, members: int) -> torch.Tensor:
    """(N, 2K, H, W) stack logits -> (N, 2, K, H, W): member k's two classes at [:, :, k]."""
    n, _, h, w = logits.shape
    return logits.view(n, members, 2, h, w).transpose(1, 2)


@torch.no_grad()
def evaluate_members(model: UNet, datas: list[Data], device: torch.device) -> list[tuple[float, float]]:
    """Mean per-pixel cross-entropy (nats) and study-scale loss of each member k of ``model`` on ``datas[k]``
    (one list entry per member; all the same size; one set for every member when they are one object)."""
    was_training = model.training
    model.eval()
    members = model.members
    shared = all(d is datas[0] for d in datas)
    n, side = len(datas[0]), max(datas[0].images.shape[-2:])
    total, study = torch.zeros(members, dtype=torch.float64), torch.zeros(members, dtype=torch.float64)
    step = eval_batch(side, members)
    for start in range(0, n, step):
        if shared:
            x = datas[0].images[start:start + step].expand(-1, members, -1, -1)
            y = datas[0].masks[start:start + step, None].expand(-1, members, -1, -1)
        else:
            x = torch.cat([d.images[start:start + step] for d in datas], dim=1)
            y = torch.stack([d.masks[start:start + step] for d in datas], dim=1)
        x, y = _layout(model, x, device, training=False), y.to(device)
        with _autocast(device):
            out = model(x)
        z = class_margin(out, y)  # the two losses from one margin per member-pixel (1.2x the evaluation)
        total += margin_cross_entropy(z).sum((0, 2, 3)).double().cpu()
        study += margin_study_loss(z, floor=False).sum((0, 2, 3)).double().cpu()
    model.train(was_training)
    pixels = [d.masks.numel() for d in datas]
    return [(float(t) / p, float(s) / p - STUDY_FLOOR) for t, s, p in zip(total, study, pixels)]


def evaluate_both(model: UNet, data: Data, device: torch.device) -> tuple[float, float]:
    """Mean per-pixel cross-entropy (nats) of ``model`` on ``data``, and the same on the study's scale (every
    member of a stack on the same set: the first member's)."""
    return evaluate_members(model, [data] * model.members, device)[0]


def evaluate(model: UNet, data: Data, device: torch.device) -> float:
    """Mean per-pixel cross-entropy (nats) of ``model`` on ``data``."""
    return evaluate_both(model, data, device)[0]


def adam(params, lr: float) -> torch.optim.Adam:
    """Adam with its multi-tensor (``foreach``) update: the same arithmetic as the per-tensor loop in a tenth of
    the operator calls (1.18x the steps of the cpu preset's network, measured on one core)."""
    return torch.optim.Adam(params, lr=lr, foreach=True)


def scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LRScheduler:
    """The per-epoch learning-rate schedule of ``cfg`` (stepped after each epoch)."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            opt, lambda e: 0.5 * (1 + np.cos(np.pi * min(e, cfg.epochs) / cfg.epochs)))
    return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=LR_DECAY)


def fit(model: UNet, train: Data, val: dict[str, Data], cfg: TrainConfig, select: str,
        device: torch.device) -> History:
    """Train ``model`` on ``train`` for ``cfg.epochs``; validate on every set of ``val`` after each epoch.

    The returned history keeps a copy of the weights at the epoch of lowest loss on ``val[select]``.
    """
    return fit_stack([model], [train], [val], [cfg], [select], device)[0]


def fit_stack(models: list[UNet], trains: list[Data], vals: list[dict[str, Data]], cfgs: list[TrainConfig],
              selects: list[str], device: torch.device) -> list[History]:
    """Train K models of one width, freezing option, learning rate and minibatch count as one stacked network
    (``UNet(members=K)``): model k on ``trains[k]`` with its own minibatches, dihedral forms and crops (from
    ``cfgs[k].seed``), its own batch-norm statistics and Adam state, validated on ``vals[k]``, its weights kept at
    its own best epoch on ``vals[k][selects[k]]``. Each history equals the one :func:`fit` gives that model alone,
    up to float rounding (tested); ``models`` are left untouched (one model: trained in place, as ``fit``)."""
    from .model import member_state, stack_states

    members = len(models)
    if len({len(v) for v in vals}) != 1 or len({(c.epochs, c.lr, c.schedule) for c in cfgs}) != 1:
        raise ValueError("a stack's models need the same epochs, learning rate, schedule and number of "
                         "validation sets")
    if members == 1:
        net = models[0]
    else:
        net = UNet(models[0].width, members=members)
        net.load_state_dict(stack_states([m.state_dict() for m in models]))
        freeze(net, models[0].frozen)
    torch.manual_seed(cfgs[0].seed)
    gens = [torch.Generator().manual_seed(c.seed) for c in cfgs]
    net.to(device)
    opt = adam([p for p in net.parameters() if p.requires_grad], cfgs[0].lr)
    sched = scheduler(opt, cfgs[0])
    hists = [History(losses={name: [] for name in v}, study={name: [] for name in v}) for v in vals]
    names = [list(v) for v in vals]
    train_time, seen = 0.0, 0
    for epoch in range(cfgs[0].epochs):
        net.train()
        start = time.perf_counter()
        running, steps = torch.zeros(members, device=device), 0  # summed on the device: no sync per step
        for parts in zip(*(batches(t, c, g) for t, c, g in zip(trains, cfgs, gens)), strict=True):
            if members == 1:
                x, y = _layout(net, parts[0][0], device), parts[0][1][:, None].to(device)
            else:
                x = _layout(net, torch.cat([p[0] for p in parts], dim=1), device)
                y = torch.stack([p[1] for p in parts], dim=1).to(device)
            with _autocast(device):
                out = net(x)
            each = margin_cross_entropy(class_margin(out, y)).mean((0, 2, 3))
            loss = each.sum()  # the members' gradients are independent: each gets its own mean's
            each = each.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += each
            steps += 1
            seen += len(x) * members
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - start
        sched.step()
        for j in range(len(names[0])):
            scores = evaluate_members(net, [v[n[j]] for v, n in zip(vals, names)], device)
            for hist, n, (ce, study) in zip(hists, names, scores):
                hist.losses[n[j]].append(ce)
                hist.study[n[j]].append(study)
        state = None  # the stack's state dict, taken once an epoch for the members that improved
        for k, (hist, select) in enumerate(zip(hists, selects)):
            hist.train.append(float(running[k]) / max(steps, 1))
            if hist.best_epoch < 0 or hist.losses[select][-1] < hist.losses[select][hist.best_epoch]:
                state = net.state_dict() if state is None else state
                hist.best_epoch = epoch
                hist.best_state = member_state(state, k, members)
    for hist in hists:
        hist.seconds_per_epoch = train_time / max(cfgs[0].epochs, 1) / members
        hist.images_per_second = seen / max(train_time, 1e-9)
    return hists


def constant_prediction_loss(masks: torch.Tensor) -> float:
    """Cross-entropy (nats) of the best constant prediction, the particle fraction p: a model that learnt nothing."""
    p = float(masks.float().mean())
    if p <= 0 or p >= 1:
        return 0.0
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


def particle_fraction_of(constant_loss: float) -> float:
    """The minority-class fraction f <= 0.5 whose constant-prediction cross-entropy is ``constant_loss`` (nats):
    the inverse of :func:`constant_prediction_loss` (bisection; the entropy rises monotonically on [0, 0.5])."""
    lo, hi = 0.0, 0.5
    for _ in range(60):
        mid = (lo + hi) / 2
        entropy = -(mid * np.log(mid) + (1 - mid) * np.log(1 - mid)) if mid > 0 else 0.0
        lo, hi = (mid, hi) if entropy < constant_loss else (lo, mid)
    return (lo + hi) / 2


def study_scale_constant_loss(fraction: float) -> float:
    """The study-scale loss (:func:`study_scale_loss`) of the best constant prediction for masks whose particle
    fraction is ``fraction``. With q the constant probability of the minority class f, the loss f L(q) +
    (1 - f) L(1 - q), L(p) = log(1 + e^(1 - 2 p)) - floor, is least at q = 0 while f <= 1 / (1 + e) (it is then f:
    L(0) = 1), else where f / (1 - f) = e^(2 q - 1)."""
    f = min(fraction, 1 - fraction)
    q = max(0.0, (1 - np.log((1 - f) / f)) / 2) if f > 0 else 0.0

    def loss(p):
        return float(np.log1p(np.exp(1 - 2 * p)) - STUDY_FLOOR)

    return f * loss(q) + (1 - f) * loss(1 - q)


def select_loss(losses: dict, select: str, target: str) -> tuple[float, int]:
    """Loss on ``target`` at the epoch of lowest loss on ``select``, and that epoch.

    P (after pretraining): select = pretraining domain. T (after transfer): select = target (STUDY.md 4).
    """
    epoch = int(np.argmin(losses[select]))
    return float(losses[target][epoch]), epoch


def transfer_model(pretrained_state: dict, width: int, option: str) -> tuple[UNet, int]:
    """A fresh U-Net with the pretrained weights, frozen as ``option``; also its trainable parameter count."""
    model = UNet(width)
    model.load_state_dict(pretrained_state)
    return model, freeze(model, option)


def save_model(path: Path, state: dict, meta: dict) -> Path:
    """Weights as a ``state_dict`` (``.pt``) beside a JSON metadata file holding their SHA-256, both written
    atomically: weights cut short, zeroed or copied from another model fail :func:`load_model`."""
    import hashlib
    import io

    path, buffer = Path(path), io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getvalue()
    meta = {**meta, "sha256": hashlib.sha256(data).hexdigest()}
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


class DamagedModel(ValueError):
    """Model weights that are not the ones their metadata records."""


def load_model(path: Path) -> tuple[UNet, dict]:
    """A U-Net from :func:`save_model` (``weights_only=True``: no pickled code is executed); the weights must
    match the SHA-256 of their metadata (:class:`DamagedModel` otherwise)."""
    import hashlib

    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    data = path.read_bytes()
    if "sha256" in meta and hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise DamagedModel(f"{path}: the weights are not the ones their metadata records (SHA-256)")
    import io

    model = UNet(meta["width"])
    model.load_state_dict(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))
    return model, meta


__all__ = ["UNet", "count_trainable", "freeze", "fit", "evaluate", "select_loss", "Data", "TrainConfig"]
