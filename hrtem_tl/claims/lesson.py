"""The hands-on chapter's conclusions as statistics of its model table (``lesson.model_table``), with intervals.

The gap at a target-set size n is log10(median loss of the from-scratch models / median loss of the transfers),
both on the study's scale, the transfers pooled over freezing options (as a T cell of the study pools them):
positive when transfer learning is better. Two claims, each with a bar of log10(1.25) (a factor 1.25, the same
factor that "comparable" uses in the study's claims), since the study states no number for them:

- ``transfer_beats_scratch``: the gap at the smallest target set;
- ``gap_closes``: the gap at the smallest set minus the gap at the largest.

The bootstrap resamples whole pretrainings (each with all its transfers: every size and freezing option) and,
independently, whole from-scratch replicates (each with its models of every size: a replicate's models share an
initialisation), so the intervals carry the spread between pretrainings and between initialisations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..lesson import PRETRAINED_ONLY, SCRATCH, TRANSFER
from .evidence import EQUIVALENCE_FACTOR
from .registry import Claim
from .verdicts import CONFIDENCE, N_BOOTSTRAP, interval, replicates_to_decide, verdict

BAR = float(np.log10(EQUIVALENCE_FACTOR))


def gaps(models: pd.DataFrame, column: str = "loss_study") -> pd.Series:
    """The gap (module docstring) per target-set size."""
    sizes = sorted(models.loc[models.method != PRETRAINED_ONLY, "size"].unique())
    medians = models.groupby(["method", "size"])[column].median()
    return pd.Series({n: float(np.log10(medians[(SCRATCH, n)] / medians[(TRANSFER, n)])) for n in sizes},
                     name="gap")


def transfer_beats_scratch(models: pd.DataFrame) -> float:
    """log10(median from-scratch loss / median transfer loss) at the smallest target set (study's scale)."""
    return float(gaps(models).iloc[0])


def gap_closes(models: pd.DataFrame) -> float:
    """The gap at the smallest target set minus the gap at the largest (log10 ratios, study's scale)."""
    g = gaps(models)
    return float(g.iloc[0] - g.iloc[-1])


CLAIMS = (
    Claim("transfer_beats_scratch", "lesson", "hands-on", "at the smallest target set, transfer learning beats "
          "training from scratch on the same images", transfer_beats_scratch, threshold=BAR),
    Claim("gap_closes", "lesson", "hands-on", "the advantage of transfer learning shrinks as the target set grows",
          gap_closes, threshold=BAR),
)


def _units(models: pd.DataFrame) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Row positions of each pretraining (its pretrained-only row and its transfers) and of each from-scratch
    replicate (its models of every size)."""
    draw = models.seed.astype(str) + "/" + models.replicate.astype(str)

    def units(mask: pd.Series) -> list[np.ndarray]:
        return [np.flatnonzero(mask & (draw == d)) for d in sorted(draw[mask].unique())]

    return units(models.method.isin([PRETRAINED_ONLY, TRANSFER])), units(models.method == SCRATCH)


def bootstrap(models: pd.DataFrame, n: int = N_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """The claims' statistics and the gap per size on ``n`` draws (one row per draw)."""
    pretrainings, scratch = _units(models)
    rng, rows = np.random.default_rng(seed), []
    for _ in range(n):
        picks = [pretrainings[i] for i in rng.integers(0, len(pretrainings), len(pretrainings))]
        picks += [scratch[i] for i in rng.integers(0, len(scratch), len(scratch))]
        draw = models.iloc[np.concatenate(picks)]
        rows.append({**{c.key: c.compute(draw) for c in CLAIMS},
                     **{f"gap_{size}": value for size, value in gaps(draw).items()}})
    return pd.DataFrame(rows)


def scorecard(models: pd.DataFrame, n_bootstrap: int = N_BOOTSTRAP) -> pd.DataFrame:
    """One row per claim: the statistic, its interval, the bar and the verdict (rule of ``verdicts.verdict``);
    then one row per target-set size with its gap and interval (no verdict)."""
    draws = bootstrap(models, n_bootstrap)
    replicates = len(_units(models)[0])
    rows = []
    for claim in CLAIMS:
        ours = claim.compute(models)
        low, high = interval(draws[claim.key], CONFIDENCE)
        rows.append({"key": claim.key, "claim": claim.text, "statistic": claim.statistic, "this run": ours,
                     "low": low, "high": high, "bar": BAR, "verdict": verdict(claim, ours, np.nan, low, high),
                     "replicates to decide": replicates_to_decide(claim, ours, np.nan, low, high, replicates)})
    for size, value in gaps(models).items():
        low, high = interval(draws[f"gap_{size}"], CONFIDENCE)
        rows.append({"key": f"gap_{size}", "claim": f"gap at {size} target images", "statistic": gaps.__doc__,
                     "this run": value, "low": low, "high": high, "bar": BAR, "verdict": "",
                     "replicates to decide": np.nan})
    return pd.DataFrame(rows)


def images_saved(models: pd.DataFrame) -> tuple[int, int | None]:
    """(n, m): transfer learning on the smallest target set n matches training from scratch on m images, the
    smallest size whose median from-scratch loss is at or below the transfers' median at n (None: no size does)."""
    medians = models.groupby(["method", "size"]).loss_study.median()
    sizes = sorted(models.loc[models.method == SCRATCH, "size"].unique())
    n = sizes[0]
    matched = [m for m in sizes if medians[(SCRATCH, m)] <= medians[(TRANSFER, n)]]
    return int(n), (int(matched[0]) if matched else None)
