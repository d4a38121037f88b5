"""The claims: each finding as the study states it, its statistic and its kind; measuring a claim on evidence,
and the study's own number."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import datasets as ds
from .evidence import Evidence, MissingEvidence, published
from .statistics import (
    aggressive_learning_rates_best,
    defocus_in_focus_hardest,
    distance_fades_after_transfer,
    dose_low_pretraining_worse,
    dose_low_to_high_loses_more,
    dose_target_snr,
    freezing_decoder_like_none,
    freezing_encoder_costs_loss,
    freezing_encoder_saves_parameters,
    freezing_encoder_saves_time,
    loss_grows_with_distance,
    more_images_less_spread,
    more_images_lower_loss,
    size_small_pretrained_lose_on_large,
    size_transfer_irons_out,
    structure_lighter_transfers_better,
    structure_symmetry_transfers,
    structure_target_dominates,
    transfer_like_mixture,
    transfer_not_more_robust,
    transfer_removes_the_source,
)

# ---------------------------------------------------------------- the claims

@dataclass(frozen=True)
class Claim:
    key: str
    series: str
    figure: str
    text: str  # the finding, as the study states it
    compute: Callable[[Evidence], float] = field(repr=False)
    kind: str = "direction"  # "direction" | "equivalence" | "share"
    stated: float | None = None  # the study's number where its tables do not hold what the statistic needs
    # False for a statistic of the network itself (parameters, time per image), which no pretraining's luck moves
    random: bool = True
    # the bar of a claim the study states no number for (the hands-on chapter's); None: from the study's value
    threshold: float | None = None

    @property
    def statistic(self) -> str:
        """What the number is (the first line of the statistic's docstring)."""
        return " ".join((self.compute.__doc__ or "").split())


CLAIMS: tuple[Claim, ...] = (
    Claim("dose_low_to_high", "dose", "Fig 9.1", "after pretraining, a model carried from low to high dose loses "
          "more than one carried from high to low", dose_low_to_high_loses_more),
    Claim("dose_low_worse", "dose", "Fig 9.1", "after pretraining, models trained on low dose are worse",
          dose_low_pretraining_worse),
    Claim("dose_source_fades", "dose", "Fig 9.1", "after transfer, performance barely depends on the pretraining "
          "dose (it depended strongly on the pair before)", transfer_removes_the_source),
    Claim("dose_tracks_snr", "dose", "Fig 9.1", "after transfer, the loss tracks the target's signal-to-noise: "
          "lower at higher dose", dose_target_snr),
    Claim("dose_distance_p", "dose", "Fig 9.1", "after pretraining, the loss grows with the distance between "
          "pretraining and target dose (log ratio of their counts)", loss_grows_with_distance),
    Claim("dose_distance_t", "dose", "Fig 9.1", "after transfer, the loss depends less on that distance",
          distance_fades_after_transfer),
    Claim("structure_symmetry", "structure", "Fig 9.2", "after pretraining, lattices sharing crystal symmetry "
          "transfer well to each other", structure_symmetry_transfers),
    Claim("structure_lighter", "structure", "Fig 9.2", "within a symmetry class, models trained on lighter "
          "elements do slightly better, in and out of distribution", structure_lighter_transfers_better),
    Claim("structure_target", "structure", "Fig 9.2", "after transfer, performance depends mostly on the target "
          "lattice", structure_target_dominates),
    Claim("size_small_loses", "structure", "Fig 9.2", "small-trained models lose a little on large particles "
          "after pretraining", size_small_pretrained_lose_on_large),
    Claim("size_irons_out", "structure", "Fig 9.2", "transfer learning irons the size gap out",
          size_transfer_irons_out),
    Claim("defocus_source_fades", "defocus", "Fig 7.1", "after transfer, performance is nearly independent of the "
          "pretraining defocus", transfer_removes_the_source),
    Claim("defocus_focus_hardest", "defocus", "Fig 7.1", "0 nm (in focus) is the hardest target",
          defocus_in_focus_hardest),
    Claim("defocus_distance_p", "defocus", "Fig 7.1", "after pretraining, the loss grows with the contrast-"
          "transfer distance between pretraining and target defocus", loss_grows_with_distance),
    Claim("defocus_distance_t", "defocus", "Fig 7.1", "after transfer, the loss depends less on that distance",
          distance_fades_after_transfer),
    Claim("hyper_images_loss", "defocus", "Fig 6.1", "more transfer images, lower loss", more_images_lower_loss),
    Claim("hyper_images_spread", "defocus", "Fig 6.1", "more transfer images, less spread", more_images_less_spread),
    Claim("hyper_encoder_worse", "defocus", "Fig 6.1", "freezing the encoder is slightly worse than no freezing",
          freezing_encoder_costs_loss),
    Claim("hyper_decoder_alike", "defocus", "Fig 6.1", "freezing the decoder ~ no freezing",
          freezing_decoder_like_none, kind="equivalence"),
    Claim("hyper_lr", "defocus", "Fig 6.1", "the more aggressive learning rates did best",
          aggressive_learning_rates_best),
    Claim("cost_parameters", "defocus", "Fig 6.2", "freezing the encoder cuts trainable parameters by ~80 %",
          freezing_encoder_saves_parameters, stated=0.80, random=False),
    Claim("cost_time", "defocus", "Fig 6.2", "freezing the encoder cuts training time by 15-25 %",
          freezing_encoder_saves_time, stated=0.20, random=False),
    Claim("baseline", "defocus", "Fig 7.2", "transfer from -10 to +5 nm is comparable to single-stage training on "
          "mixtures", transfer_like_mixture, kind="equivalence"),
    Claim("ood", "defocus", "Fig 8.1", "transfer learning does not necessarily improve out-of-distribution "
          "generalization", transfer_not_more_robust, kind="share"),
)


def get_claims(series: str) -> list[Claim]:
    ds.get_series(series)
    return [c for c in CLAIMS if c.series == series]


def measure(claim: Claim, ev: Evidence) -> float:
    """The claim's statistic on ``ev``; NaN where the evidence lacks what it needs (:class:`MissingEvidence`
    only: any other error is a bug and propagates)."""
    try:
        return float(claim.compute(ev))
    except MissingEvidence:
        return float("nan")


def study_value(claim: Claim) -> float:
    """The study's number for a claim: the statistic of its published cells, else the number it states."""
    value = measure(claim, published(claim.series))
    return value if not np.isnan(value) else (claim.stated if claim.stated is not None else float("nan"))
