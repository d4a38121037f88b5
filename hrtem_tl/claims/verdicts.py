"""Verdicts from a statistic and its interval, and the bootstrap that gives the interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..study import main_setting
from .evidence import EQUIVALENCE_FACTOR, HALF, MIN_SHARE, Evidence, evidence
from .registry import Claim, get_claims, measure

VERDICTS = ("holds", "weaker", "undecided", "contradicts")


def bar(claim: Claim, study: float) -> float:
    """The value a statistic must reach for the claim to hold: half the study's (direction claims; 0 where the
    study gives no number), MIN_SHARE (share claims), log10(EQUIVALENCE_FACTOR) on |statistic| (equivalence)."""
    if claim.kind == "equivalence":
        return float(np.log10(EQUIVALENCE_FACTOR))
    if claim.threshold is not None:
        return float(claim.threshold)
    if claim.kind == "share":
        return MIN_SHARE
    return HALF * study if np.isfinite(study) and study > 0 else 0.0


def verdict(claim: Claim, ours: float, study: float, low: float = float("nan"), high: float = float("nan")) -> str:
    """The verdict of the module docstring from this run's statistic and its interval [low, high].

    direction and share claims: ``holds`` (the statistic reaches the bar and the interval excludes 0, the side
    where the effect is absent or reversed), ``contradicts`` (the interval lies at or below 0), ``weaker`` (the
    interval lies above 0 and below the bar: the study's sign, firmly smaller than half its size), ``undecided``
    (otherwise). equivalence claims: ``holds`` (the interval lies within the factor), ``contradicts`` (outside it,
    either way), ``undecided`` (otherwise). Without an interval (NaN) the statistic alone decides, as if the
    interval were a point. "no data" where this run has no number.
    """
    if np.isnan(ours):
        return "no data"
    lo, hi = (ours, ours) if np.isnan(low) or np.isnan(high) else (low, high)
    edge = bar(claim, study)
    if claim.kind == "equivalence":
        if -edge <= lo and hi <= edge:
            return "holds"
        return "contradicts" if lo > edge or hi < -edge else "undecided"
    if ours >= edge and lo > 0:
        return "holds"
    if hi <= 0:
        return "contradicts"
    if lo > 0 and hi < edge:
        return "weaker"
    return "undecided"


def replicates_to_decide(claim: Claim, ours: float, study: float, low: float, high: float, replicates: int) -> float:
    """For an undecided claim: about how many replicates per source would give it a verdict, if its interval
    narrows as 1 / sqrt(replicates) around the same statistic (inf when the statistic sits on a boundary)."""
    if np.isnan(ours) or np.isnan(low) or verdict(claim, ours, study, low, high) != "undecided":
        return float("nan")
    edge = bar(claim, study)
    if claim.kind == "equivalence":
        bounds = [-edge, edge] if abs(ours) <= edge else [edge if ours > 0 else -edge]
    else:
        bounds = [0.0] if ours >= edge else [b for b in (0.0, edge) if low <= b <= high] or [0.0]
    factor = 0.0
    for b in bounds:
        half_width = (ours - low) if b <= ours else (high - ours)
        if not low <= b <= high:
            continue
        distance = abs(ours - b)
        factor = max(factor, float("inf") if distance == 0 else (half_width / distance) ** 2)
    return float(np.ceil(replicates * max(factor, 1.0))) if np.isfinite(factor) else float("inf")


# ---------------------------------------------------------------- the bootstrap

CONFIDENCE = 0.90  # the two-sided interval printed for every statistic
N_BOOTSTRAP = 200  # draws per interval (the percentile ends move by about 0.01-0.02 between 200 and 1000)


def _text(row, cols) -> str:
    return "|".join(str(row.get(c)) for c in cols)


def strata(results: pd.DataFrame) -> list[list[list[np.ndarray]]]:
    """The nested resampling units of a results table: groups of clusters of strata (row positions).

    - the pretrainings of a source (all replicates and seeds: a P cell's crowd): one group, each row a cluster;
    - the transfers from a source: one group whose clusters are its pretrained models (seed, replicate), each
      holding a stratum per cell and setting (target, learning rates, size) with its freezing options: a draw
      takes pretrained models with replacement, then transfers within each, so that the spread between
      pretrainings reaches the T cells (the study's T cell pools freezing options and initialisations);
    - the models of a mixture: one group, each row a cluster.

    Where some cells are transferred from more of a source's pretrainings than the others (the defocus sweep and
    baseline pair, ``Preset.sweep_replicates``), the cells held by the same pretrained models form a group of their
    own: every drawn model then holds every cell of its group.
    """
    tree: dict = {}
    for pos, row in enumerate(results.to_dict("records")):
        if row.get("kind") == "transfer":
            group = _text(row, ("series", "kind", "source", "lr_pretrain"))
            cluster = _text(row, ("seed", "replicate"))
            stratum = _text(row, ("target", "lr_transfer", "transfer_size"))
        else:
            group = _text(row, ("series", "kind", "source", "target", "lr_pretrain", "mixture"))
            cluster, stratum = str(pos), ""
        tree.setdefault(group, {}).setdefault(cluster, {}).setdefault(stratum, []).append(pos)
    units = []
    for _, group in sorted(tree.items()):
        holders: dict = {}  # stratum -> the clusters that hold it
        for name, cluster in group.items():
            for stratum in cluster:
                holders.setdefault(stratum, set()).add(name)
        families: dict = {}  # the same holders -> one group
        for stratum, names in holders.items():
            families.setdefault(frozenset(names), []).append(stratum)
        for names, family in sorted(families.items(), key=lambda kv: sorted(kv[1])):
            units.append([[np.asarray(group[c][st]) for st in sorted(family)] for c in sorted(names)])
    return units


def resample(results: pd.DataFrame, units: list[list[list[np.ndarray]]], rng: np.random.Generator) -> pd.DataFrame:
    """One bootstrap draw: in each group, as many clusters as it holds, drawn with replacement; in each drawn
    cluster, each stratum's rows drawn with replacement, as many as it holds."""
    picks = []
    for clusters in units:
        for c in rng.integers(0, len(clusters), size=len(clusters)):
            picks += [rng.choice(rows, size=len(rows), replace=True) for rows in clusters[c]]
    return results.iloc[np.concatenate(picks)].reset_index(drop=True)


def bootstrap(ev: Evidence, n: int = N_BOOTSTRAP, seed: int = 0) -> pd.DataFrame:
    """Each claim's statistic on ``n`` bootstrap draws of ``ev``'s results (one row per draw, one column per
    claim key); the draws resample the units of :func:`strata`."""
    results = ev.need_models()
    units, rng = strata(results), np.random.default_rng(seed)
    claims = get_claims(ev.series)
    rows = []
    for _ in range(n):
        draw = evidence(ev.series, resample(results, units, rng), ev.preset, metric=ev.metric)
        rows.append({c.key: measure(c, draw) for c in claims})
    return pd.DataFrame(rows, columns=[c.key for c in claims])


def interval(draws: pd.Series, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The percentile interval of bootstrap draws (NaN draws dropped; NaN when fewer than half are finite)."""
    finite = draws.replace([np.inf, -np.inf], np.nan).dropna()
    if len(finite) < max(2, len(draws) / 2):
        return float("nan"), float("nan")
    tail = (1 - confidence) / 2 * 100
    lo, hi = np.percentile(finite, [tail, 100 - tail])
    return float(lo), float(hi)


def replicates_of(ev: Evidence) -> int:
    """Pretrainings per source in ``ev`` (replicates x seeds): the R that intervals narrow with."""
    pre = main_setting(ev.need_models(), ev.preset, "pretrain")
    return int(pre.groupby("source").size().median()) if len(pre) else 0
