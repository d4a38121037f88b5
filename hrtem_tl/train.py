"""Training: standardization, dihedral augmentation, Adam + cross-entropy, per-epoch validation, P/T selection.

STUDY.md 4: minibatch 16, Adam, cross-entropy on logits (no softmax before the loss: plain cross-entropy has
floor 0, unlike the published 0.3133), learning rate x0.99 per epoch, validation loss on every domain at every
epoch of pretraining. Mixed precision (STUDY.md 4): bf16 autocast and channels_last on CUDA, and on CPUs with
native bf16 (AVX512-BF16/AMX, about 2x faster here), else fp32; runs are repeatable for a seed on the CPU.
"""

from __future__ import annotations

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

    def __post_init__(self):
        if self.augment not in AUGMENT_OPTIONS:
            raise ValueError(f"augment={self.augment!r} is unknown; allowed: {', '.join(AUGMENT_OPTIONS)}")
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


def batches(data: Data, cfg: TrainConfig, gen: torch.Generator):
    """Shuffled, augmented (and cropped) minibatches of one epoch.

    An epoch shows every image in all 8 dihedral forms (``all8``), in one random form (``random``) or as it is,
    each ``crops_per_image`` times (a new random crop each time when training on crops).
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
    for start in range(0, len(idx), cfg.batch_size):
        xs, ys = [], []
        for i, k in zip(idx[start:start + cfg.batch_size].tolist(), ks[start:start + cfg.batch_size].tolist()):
            x, y = data.images[i], data.masks[i]
            if cfg.crop and cfg.crop < min(h, w):
                r, c = (int(torch.randint(0, s - cfg.crop + 1, (1,), generator=gen)) for s in (h, w))
                x, y = x[..., r:r + cfg.crop, c:c + cfg.crop], y[r:r + cfg.crop, c:c + cfg.crop]
            xs.append(dihedral(x, k))
            ys.append(dihedral(y, k))
        yield torch.stack(xs), torch.stack(ys)


def mixed_precision(device: torch.device) -> bool:
    """bf16 autocast on CUDA, and on CPUs whose oneDNN has native bf16 kernels."""
    if device.type == "cuda":
        return True
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def precision_name(device: torch.device) -> str:
    return "bf16 autocast + channels_last" if mixed_precision(device) else "fp32"


def _autocast(device: torch.device):
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision(device))


def _to(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    x = x.to(device, non_blocking=True)
    return x.contiguous(memory_format=torch.channels_last) if mixed_precision(device) and x.ndim == 4 else x


STUDY_FLOOR = float(np.log1p(np.exp(-1.0)))  # log(1 + 1/e) = 0.3133, the published losses' floor (STUDY.md 4)


def study_scale_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Per-pixel loss on the study's published scale: cross-entropy applied to softmax probabilities (the
    study's doubled softmax), minus its floor. For two classes it is log(1 + e^(1 - 2 p)) - log(1 + 1/e), p the
    probability given to the true class: bounded in [0, 1], close to the expected error rate. Used to compare
    with the published values, never for training (STUDY.md 4: do not copy the artefact)."""
    p = torch.softmax(logits, dim=1).gather(1, masks[:, None])[:, 0]
    return torch.log1p(torch.exp(1 - 2 * p)) - STUDY_FLOOR


@torch.no_grad()
def evaluate_both(model: UNet, data: Data, device: torch.device, batch_size: int = 16) -> tuple[float, float]:
    """Mean per-pixel cross-entropy (nats) of ``model`` on ``data``, and the same on the study's scale."""
    was_training = model.training
    model.eval()
    total, study = 0.0, 0.0
    for start in range(0, len(data), batch_size):
        x, y = _to(data.images[start:start + batch_size], device), data.masks[start:start + batch_size].to(device)
        with _autocast(device):
            logits = model(x).float()
        total += F.cross_entropy(logits, y, reduction="sum").item()
        study += study_scale_loss(logits, y).sum().item()
    model.train(was_training)
    return total / data.masks.numel(), study / data.masks.numel()


def evaluate(model: UNet, data: Data, device: torch.device, batch_size: int = 16) -> float:
    """Mean per-pixel cross-entropy (nats) of ``model`` on ``data``."""
    return evaluate_both(model, data, device, batch_size)[0]


def fit(model: UNet, train: Data, val: dict[str, Data], cfg: TrainConfig, select: str,
        device: torch.device) -> History:
    """Train ``model`` on ``train`` for ``cfg.epochs``; validate on every set of ``val`` after each epoch.

    The returned history keeps a copy of the weights at the epoch of lowest loss on ``val[select]``.
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    if mixed_precision(device):
        model.to(memory_format=torch.channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=LR_DECAY)
    hist = History(losses={name: [] for name in val}, study={name: [] for name in val})
    train_time, seen = 0.0, 0
    for epoch in range(cfg.epochs):
        model.train()
        start = time.perf_counter()
        running, steps = torch.zeros((), device=device), 0  # summed on the device: no sync per step
        for x, y in batches(train, cfg, gen):
            x, y = _to(x, device), y.to(device)
            with _autocast(device):
                loss = F.cross_entropy(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            running += loss.detach()
            steps += 1
            seen += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - start
        hist.train.append(float(running) / max(steps, 1))
        sched.step()
        for name, data in val.items():
            ce, study = evaluate_both(model, data, device)
            hist.losses[name].append(ce)
            hist.study[name].append(study)
        if hist.best_epoch < 0 or hist.losses[select][-1] < hist.losses[select][hist.best_epoch]:
            hist.best_epoch = epoch
            hist.best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    hist.seconds_per_epoch = train_time / max(cfg.epochs, 1)
    hist.images_per_second = seen / max(train_time, 1e-9)
    return hist


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
