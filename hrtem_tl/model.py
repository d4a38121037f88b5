"""The study's U-Net (STUDY.md 4) in plain torch: pre-activation ResNet encoder, skip-connected decoder.

``width`` is the channel count of the first stage; stages have width x (1, 2, 4, 8), as in ResNet-18. At
``width=64`` the network has about 14.3 M trainable parameters, 78 % of them in the encoder (the study: ~14 M,
~80 %). Inputs must have sides divisible by 32.

``UNet(width, members=K)`` is K such networks trained as one (a "stack"): every convolution is grouped (K groups,
one per member), every batch norm has K x the channels (so each member keeps its own statistics), the skip
concatenation interleaves per member; input channel k is member k's image, output channels 2k, 2k + 1 its
logits. Its parameters are the members' concatenated along their first axis (:func:`stack_states`,
:func:`member_state`), so member k computes exactly the function of the single network with its weights, up to
float rounding. ``members=1`` is the plain network, parameter for parameter.

``model.encoder`` = initial block (7x7 conv with stride 2, BN, ReLU, then a max-pool) + four downsampling
stages of two pre-activation residual units (1/4 to 1/32 resolution); ``model.decoder`` = five upsampling
blocks (nearest upsampling, concatenation of the skip where there is one, BN-ReLU-conv x 2) with width x
(4, 2, 1, 1/2, 1/4) channels, and the 1x1 head to 2 classes.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

FREEZE_OPTIONS = ("none", "encoder", "decoder")


# A convolution with at most this many input x output channels per member runs two members as one group (see
# :class:`StackConv`). Measured on one AVX512-BF16 core (bf16, channels_last, a stack of 8, 16 crops of 64 px a
# member, forward + backward): the full-resolution 4 -> 4 convolution 18.5 -> 10.0 ms, the stem (1 -> 8, 7 x 7)
# 9.5 -> 6.4 ms, the 1 x 1 head (4 -> 2) 4.6 -> 2.4 ms, the 4 -> 4 one at half resolution 3.4 -> 2.4 ms; forward
# alone on a 320-px image: the stem 5.2 -> 1.6 ms, the head 1.1 -> 0.5 ms. Wider ones (8 -> 8 at 1/4 resolution
# 1.40 -> 1.49 ms, 16 -> 4 at 1/2 9.7 -> 9.6 ms) gain nothing and would double their arithmetic.
PAIRED_MAX_CHANNEL_PRODUCT = 16


class StackConv(nn.Conv2d):
    """A convolution of ``cin`` to ``cout`` channels per member, grouped over ``members``; when the members have few
    channels (``cin * cout <= PAIRED_MAX_CHANNEL_PRODUCT``) and pair up, two members run as one group of a
    block-diagonal weight (each member's own weights on the diagonal, exact zeros off it): oneDNN's kernels for
    2 x 4 channels a group run about twice as fast as for 4, though they multiply the zeros too. The parameters are
    those of the grouped convolution (the same state dicts), each member's outputs depend on its own inputs and
    weights only (tested) as long as its partner's activations are finite (0 x inf is not 0), and the gradients of
    the zero blocks are discarded by construction."""

    def __init__(self, cin: int, cout: int, size: int, stride: int = 1, members: int = 1, bias: bool = False):
        super().__init__(members * cin, members * cout, size, stride=stride, padding=size // 2, bias=bias,
                         groups=members)
        self.members = members
        self.paired = members % 2 == 0 and cin * cout <= PAIRED_MAX_CHANNEL_PRODUCT

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.paired:
            return super().forward(x)
        return F.conv2d(x, paired_weight(self.weight, self.members), self.bias, self.stride, self.padding, 1,
                        self.members // 2)


def paired_weight(weight: torch.Tensor, members: int) -> torch.Tensor:
    """The (K cout, cin, k, k) weight of a convolution grouped over K members -> the (K cout, 2 cin, k, k) weight of
    the same convolution grouped over K/2 pairs: member 2p + j's outputs see its own inputs through its weights
    and its partner's through zeros."""
    kc, cin, kh, kw = weight.shape
    eye = torch.eye(2, dtype=weight.dtype, device=weight.device).view(1, 2, 1, 2, 1, 1, 1)
    blocks = weight.view(members // 2, 2, kc // members, 1, cin, kh, kw) * eye
    fmt = torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
    return blocks.reshape(kc, 2 * cin, kh, kw).contiguous(memory_format=fmt)


def conv(cin: int, cout: int, size: int, stride: int = 1, members: int = 1, bias: bool = False) -> nn.Conv2d:
    """A convolution of ``cin`` to ``cout`` channels per member, grouped over ``members`` (zero padding keeps the
    side at stride 1; :class:`StackConv`)."""
    return StackConv(cin, cout, size, stride, members, bias)


def conv3x3(cin: int, cout: int, stride: int = 1, members: int = 1) -> nn.Conv2d:
    return conv(cin, cout, 3, stride, members)


class PreActUnit(nn.Module):
    """BN-ReLU-conv-BN-ReLU-conv with an identity shortcut, or a 1x1 conv when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1, members: int = 1):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(members * cin), conv3x3(cin, cout, stride, members)
        self.bn2, self.conv2 = nn.BatchNorm2d(members * cout), conv3x3(cout, cout, 1, members)
        self.shortcut = (conv(cin, cout, 1, stride, members) if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class Encoder(nn.Module):
    def __init__(self, width: int, in_channels: int = 1, members: int = 1):
        super().__init__()
        self.initial = nn.Sequential(conv(in_channels, width, 7, 2, members),
                                     nn.BatchNorm2d(members * width), nn.ReLU(inplace=True))
        chans = [width, width, 2 * width, 4 * width, 8 * width]
        self.stages = nn.ModuleList(
            nn.Sequential(PreActUnit(chans[i], chans[i + 1], 1 if i == 0 else 2, members),
                          PreActUnit(chans[i + 1], chans[i + 1], 1, members))
            for i in range(4))

    def forward(self, x):
        skips = [self.initial(x)]
        x = F.max_pool2d(skips[0], 2)
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips  # 1/2, 1/4, 1/8, 1/16, 1/32 resolution


def join_skip(x: torch.Tensor, skip: torch.Tensor, members: int) -> torch.Tensor:
    """Channels of ``x`` then of ``skip``, member by member (members=1: a plain concatenation)."""
    if members == 1:
        return torch.cat([x, skip], dim=1)
    n, _, h, w = x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and skip.is_contiguous(memory_format=torch.channels_last):
        # the same values, kept channels_last: channels are the last axis in memory, so each member's are a slice
        # of it. Joined as 5-D (N, K, C, H, W), the result (and every gradient through it) left channels_last, and
        # the batch norms, ReLUs and convolutions around it ran their slow mixed-layout paths and copies: 0.72-0.83x the
        # stack's step (bf16, K = 8, 64-pixel crops, one core, three pairs measured 2026-12-02)
        last = [t.permute(0, 2, 3, 1).reshape(n, h, w, members, -1) for t in (x, skip)]
        return torch.cat(last, dim=4).reshape(n, h, w, -1).permute(0, 3, 1, 2)
    return torch.cat([x.reshape(n, members, -1, h, w), skip.reshape(n, members, -1, h, w)], 2).reshape(n, -1, h, w)


class UpBlock(nn.Module):
    def __init__(self, cin: int, cskip: int, cout: int, members: int = 1):
        super().__init__()
        self.members = members
        self.body = nn.Sequential(nn.BatchNorm2d(members * (cin + cskip)), nn.ReLU(inplace=True),
                                  conv3x3(cin + cskip, cout, 1, members),
                                  nn.BatchNorm2d(members * cout), nn.ReLU(inplace=True),
                                  conv3x3(cout, cout, 1, members))

    def forward(self, x, skip=None):
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        return self.body(x if skip is None else join_skip(x, skip, self.members))


class Decoder(nn.Module):
    def __init__(self, width: int, n_classes: int = 2, members: int = 1):
        super().__init__()
        w = width
        c = [8 * w, 4 * w, 2 * w, w, max(w // 2, 4), max(w // 4, 4)]
        skip_channels = [4 * w, 2 * w, w, w, 0]
        self.blocks = nn.ModuleList(UpBlock(c[i], skip_channels[i], c[i + 1], members) for i in range(5))
        self.head = conv(c[-1], n_classes, 1, 1, members, bias=True)

    def forward(self, skips):
        x = skips[-1]
        for block, skip in zip(self.blocks, [*reversed(skips[:-1]), None]):
            x = block(x, skip)
        return self.head(x)


class UNet(nn.Module):
    """Segmentation U-Net: (N, 1, H, W) standardized images -> (N, 2, H, W) logits; with ``members`` K, (N, K, H, W)
    (member k's images in channel k) -> (N, 2K, H, W)."""

    def __init__(self, width: int = 64, in_channels: int = 1, n_classes: int = 2, members: int = 1):
        super().__init__()
        self.width, self.members = width, members
        self.encoder = Encoder(width, in_channels, members)
        self.decoder = Decoder(width, n_classes, members)
        self.frozen = "none"

    def forward(self, x):
        return self.decoder(self.encoder(x))

    def train(self, mode: bool = True):
        """Train mode, except that a frozen half keeps its batch-norm statistics (eval mode)."""
        super().train(mode)
        if mode and self.frozen != "none":
            getattr(self, self.frozen).eval()
        return self


def stack_states(states: list[dict]) -> dict:
    """The state of a stack whose member k has ``states[k]`` (the single networks' state dicts): every tensor
    concatenated along its first axis (the batch-norm step counters, scalars, are the first member's)."""
    return {name: (torch.cat([s[name] for s in states]) if value.ndim else value.clone())
            for name, value in states[0].items()}


def member_state(stack_state: dict, k: int, members: int) -> dict:
    """The state dict of member ``k`` of a stack of ``members`` (a copy on the CPU: a single network's)."""
    return {name: (value.chunk(members)[k] if value.ndim else value).detach().to("cpu", copy=True).contiguous()
            for name, value in stack_state.items()}


def count_trainable(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def freeze(model: UNet, option: str) -> int:
    """Freeze ``option`` ("none" | "encoder" | "decoder") of ``model``; return the trainable parameter count (of
    each member, for a stack).

    The frozen half gets no gradients (so no optimizer updates) and keeps its batch-norm running statistics:
    it stays in eval mode while the rest trains, so it computes exactly the function it had after pretraining.
    """
    if option not in FREEZE_OPTIONS:
        raise ValueError(f"freeze={option!r} is unknown; allowed: {', '.join(FREEZE_OPTIONS)}")
    for p in model.parameters():
        p.requires_grad_(True)
    if option != "none":
        for p in getattr(model, option).parameters():
            p.requires_grad_(False)
    model.frozen = option
    model.train(model.training)
    return count_trainable(model) // model.members
