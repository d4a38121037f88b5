"""What the claims are computed from: our results as :class:`Evidence` (median cells per freezing option and
the per-model rows), the published cells, and the matrix helpers the statistics share."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .. import structures as st
from ..model import FREEZE_OPTIONS
from ..presets import Preset, get_preset
from ..structures import LATTICES
from ..study import cell_table, model_table

REFERENCE = Path(__file__).parent.parent / "reference"
CITATION = ("Rangel DaCosta, Oill, Scott, Elemental Microscopy EM000010 (2025), doi 10.69761/kjte5358, "
            "CC-BY-4.0; values from the companion repository msa-em/hrtem-transfer-learning")
# a pretraining learned if its in-domain loss <= this x the constant-prediction loss (study's scale); the study's
# own pretrainings reach 0.01-0.58 by the same measure (published_learning)
LEARNED_FRACTION = 2 / 3
HALF = 0.5  # a direction claim needs at least this fraction of the study's effect
EQUIVALENCE_FACTOR = 1.25  # "comparable": the two losses within this factor of each other
MIN_SHARE = 0.25  # "not necessarily": at least this share of models goes the other way
IN_FOCUS = "0"  # the defocus domain of the in-focus images


class MissingEvidence(Exception):
    """The evidence lacks what a statistic needs (for example the published tables hold no per-model rows)."""


@dataclass
class Evidence:
    """What the claims of one series are computed from.

    ``cells``: one row per (freeze, source, target) with P and T, the median over the cell's models; freeze "all"
    pools the three freezing options. ``models``: our per-model results rows (None for the published values).
    """

    series: str
    cells: pd.DataFrame
    models: pd.DataFrame | None = None
    preset: Preset | None = None
    metric: str = "study"  # "study": the study's published scale; "ce": cross-entropy

    def need_models(self) -> pd.DataFrame:
        if self.models is None or not len(self.models):
            raise MissingEvidence("per-model rows")
        return self.models

    def column(self, name: str) -> str:
        """The results column of a loss (``T``, ``P_all``, ...) in this evidence's metric."""
        return f"{name}_study" if self.metric == "study" else name


# ---------------------------------------------------------------- evidence

METRICS = ("study", "ce")


def evidence(series: str, results: pd.DataFrame, preset: str | Preset, seeds=None, metric: str = "study") -> Evidence:
    """Our run's evidence for ``series``: results rows (of ``seeds``, default all) and their median cells, in
    ``metric`` ("study": the study's published scale, the default; "ce": cross-entropy)."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is unknown; allowed: {', '.join(METRICS)}")
    pr = get_preset(preset).for_series(series)
    if seeds is not None:
        results = results[results.seed.isin(list(seeds))].reset_index(drop=True)
    models = model_table(results, series, pr)

    def cells(freezes) -> pd.DataFrame:
        c = cell_table(models, "median", freezes)
        if metric == "study":
            c = c.assign(P=c.P_study, T=c.T_study)
        return c[["source", "target", "P", "T"]]

    parts = [cells((f,)).assign(freeze=f) for f in FREEZE_OPTIONS] + [cells(FREEZE_OPTIONS).assign(freeze="all")]
    return Evidence(series, pd.concat(parts, ignore_index=True), results, pr, metric)


def reference_cells(series: str, reduction: str = "median") -> pd.DataFrame:
    """Published cells (freeze, source, target, P, T) on our domain labels; see ``reference/README.md``.

    ``structure`` joins the 9 small-particle lattices with the small/large cells of the size figure.
    """
    files = {"dose": ["dose"], "defocus": ["defocus"], "structure": ["structure", "size"]}[series]
    parts = []
    for name in files:
        ref = pd.read_csv(REFERENCE / f"{name}_heatmaps_long.csv")
        if name == "dose":
            ref = ref[ref.variant == "corrected"]
        ref = ref[ref.reduction == reduction].copy()
        for col in ("pretrain", "target"):
            ref[col] = ref[col].astype(str).map(_reference_domain)
        parts.append(ref.rename(columns={"pretrain": "source"})[["freeze", "source", "target", "P", "T"]])
    cells = pd.concat(parts, ignore_index=True).drop_duplicates(["freeze", "source", "target"], keep="first")
    return cells.reset_index(drop=True)


def published(series: str) -> Evidence:
    """The study's evidence for ``series``: its published median cells."""
    return Evidence(series, reference_cells(series))


def _reference_domain(name: str) -> str:
    """``w_CdSe_small`` -> ``CdSe_small``; numbers stay numbers (defocus in Å, dose in e-/Å²)."""
    if "_" in name:
        return name.split("_", 1)[1]
    return str(int(float(name)))


# ---------------------------------------------------------------- helpers

def matrix(ev: Evidence, stage: str, freeze: str = "all", domains=None) -> pd.DataFrame:
    """Source x target matrix of the median ``stage`` loss (NaN where a cell has no model)."""
    c = ev.cells[ev.cells.freeze == freeze]
    if domains is not None:
        c = c[c.source.isin(domains) & c.target.isin(domains)]
    if not len(c):
        raise MissingEvidence(f"cells of freeze={freeze}")
    return c.pivot(index="source", columns="target", values=stage)


def off_diagonal(m: pd.DataFrame) -> pd.Series:
    """The off-diagonal cells of a matrix as a Series indexed by (source, target), NaN cells dropped."""
    s = m.stack()
    s = s[[a != b for a, b in s.index]]
    return s.dropna()


def spearman(x, y) -> float:
    """Spearman rank correlation of two sequences."""
    x, y = pd.Series(list(x), dtype=float), pd.Series(list(y), dtype=float)
    if len(x) < 3:
        raise MissingEvidence("at least 3 points for a rank correlation")
    return float(x.rank().corr(y.rank()))


def log_spread_across_sources(m: pd.DataFrame) -> float:
    """Median over targets of the standard deviation of log10 loss across pretraining domains (off-diagonal)."""
    off = np.log10(off_diagonal(m))
    sd = off.groupby(level=1).std().dropna()
    if not len(sd):
        raise MissingEvidence("two or more pretraining domains per target")
    return float(sd.median())


def _numeric_order(labels) -> list[str]:
    return sorted(labels, key=float)


def lattice_names(ev: Evidence) -> list[str]:
    """The materials of a structure run in its order: the study's nine, or those its preset images (built-in
    lattices, CIF crystals)."""
    if ev.preset is None:
        return list(LATTICES)
    from ..datasets import get_series

    return list(dict.fromkeys(d.rsplit("_", 1)[0] for d in get_series("structure", ev.preset).domains))


def lattice_of(ev: Evidence, name: str):
    """A material of a structure run: a built-in lattice, or a CIF crystal its preset carries."""
    from ..datasets import crystals_of

    crystals = crystals_of(ev.preset)
    return st.Crystal.from_spec(crystals[name]) if name in crystals else st.get_lattice(name)


def _small(ev: Evidence) -> list[str]:
    return [f"{name}_small" for name in lattice_names(ev) if f"{name}_small" in set(ev.cells.source)]


def _per_freeze_median_t(ev: Evidence, freeze: str) -> float:
    return float(off_diagonal(matrix(ev, "T", freeze)).median())


def _log_ratio(a: float, b: float) -> float:
    """log10(a / b); +inf when b is 0 and a is not (a spread that vanishes entirely)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log10(np.float64(a) / np.float64(b)))


def _sign(x: float) -> float:
    return float(np.sign(x))
