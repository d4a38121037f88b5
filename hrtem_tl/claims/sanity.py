"""The gate before any verdict: did every source of a series learn? (ours, and the study's own pretrainings)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from .. import train as tr
from ..presets import get_preset
from ..study import main_setting
from .evidence import LEARNED_FRACTION, Evidence, reference_cells

# ---------------------------------------------------------------- sanity and scorecard

def learning(ev: Evidence) -> pd.DataFrame:
    """Per pretraining: its in-domain loss (P on its own domain) and the constant-prediction loss of that domain's
    validation masks, both on the study's scale, their ratio, and whether it learned (ratio <= LEARNED_FRACTION)."""
    rows = ev.need_models()
    pre = main_setting(rows, ev.preset, "pretrain") if ev.preset is not None else rows[rows.kind == "pretrain"]
    entropy = pre.get("constant_loss", pd.Series(np.nan, index=pre.index))
    constant = [tr.study_scale_constant_loss(tr.particle_fraction_of(h)) if np.isfinite(h) else np.nan
                for h in entropy]
    out = pd.DataFrame({"source": pre.source, "seed": pre.seed,
                        "in_domain": [json.loads(p)[s] for p, s in zip(pre.P_all_study, pre.source)],
                        "constant": constant})
    out["ratio"] = out.in_domain / out.constant
    out["learned"] = out.ratio <= LEARNED_FRACTION
    return out.reset_index(drop=True)


def study_particle_fraction(series: str, domain: str) -> float:
    """Expected particle fraction of the study's images (not published): mean particles per image x the mean
    projected area of a particle (radius uniform in its range) / the field, from the ``paper`` preset (STUDY.md 1)."""
    pr = get_preset("paper")
    if series == "structure":
        size = domain.rsplit("_", 1)[1]
        (r_lo, r_hi), count = pr.size_radius[size], pr.particles[size]
    else:
        (r_lo, r_hi), count = tuple(d / 2 for d in pr.cdse_diameter), pr.particles["cdse"]
    mean_r2 = (r_hi**3 - r_lo**3) / (3 * (r_hi - r_lo))
    return float(np.mean(count) * np.pi * mean_r2 / pr.extent**2)


def published_learning(series: str) -> pd.DataFrame:
    """The sanity measure of :func:`learning` on the study's published pretrainings: each diagonal P over the
    constant-prediction loss of the expected particle fraction of its images (:func:`study_particle_fraction`)."""
    cells = reference_cells(series)
    diagonal = cells[(cells.freeze == "all") & (cells.source == cells.target)]
    constant = [tr.study_scale_constant_loss(study_particle_fraction(series, d)) for d in diagonal.source]
    out = pd.DataFrame({"source": diagonal.source.to_numpy(), "in_domain": diagonal.P.to_numpy(),
                        "constant": constant})
    out["ratio"] = out.in_domain / out.constant
    out["learned"] = out.ratio <= LEARNED_FRACTION
    return out


def learned_sources(ev: Evidence) -> pd.DataFrame:
    """Per source: the median over its pretrainings (replicates and seeds) of the in-domain / constant ratio, the
    worst replicate's, and whether the source learned (median <= LEARNED_FRACTION).

    The gate is the median, as a P cell is the median over its pretrainings. It gates the whole series: every
    claim of a series touches every source of it (the structure claims read all nine small lattices, the size
    claims all nine lattice pairs), so a per-claim gate would decide nothing differently.
    """
    table = learning(ev)
    by = table.groupby("source").ratio
    out = pd.DataFrame({"median": by.median(), "worst": by.max(), "replicates": by.size()}).reset_index()
    out["learned"] = out["median"] <= LEARNED_FRACTION
    return out


def _count_range(counts: pd.Series) -> str:
    lo, hi = int(counts.min()), int(counts.max())
    return str(lo) if lo == hi else f"{lo}-{hi}"


def sanity_line(ev: Evidence) -> str:
    """One line: how many sources learned (median over their pretrainings), and the range of the ratios."""
    table = learning(ev)
    if not len(table) or table.ratio.isna().all():
        return f"{ev.series}: no pretraining with a recorded constant-prediction loss"
    sources = learned_sources(ev)
    word = "learned" if sources.learned.all() else "DID NOT LEARN"
    worst = sources.loc[sources["median"].idxmax()]
    theirs = published_learning(ev.series)
    their_worst = theirs.loc[theirs.ratio.idxmax()]
    line = (f"{ev.series}: {word}: {int(sources.learned.sum())}/{len(sources)} sources below "
            f"{LEARNED_FRACTION:.2f} x the constant-prediction loss (median over {_count_range(sources.replicates)} "
            f"pretrainings each; in-domain / constant on the study's scale "
            f"{table.ratio.min():.2f}-{table.ratio.max():.2f} over all {len(table)}, worst source "
            f"{worst.source} {worst['median']:.2f}; the study's own up to {their_worst.ratio:.2f}: "
            f"{their_worst.source})")
    if ev.preset is not None and not ev.preset.verdicts:
        line += f"; the {ev.preset.name} preset is a test scale: statistics only, no verdicts"
    elif not sources.learned.all():
        line += "; its claims show their statistics without verdicts (README: which preset learns every series)"
    return line


def _blocker(ev: Evidence) -> str | None:
    """Why no verdict can be drawn for the series (a test-scale preset, sources that did not learn)."""
    if ev.models is None:
        return None
    if ev.preset is not None and not ev.preset.verdicts:
        return "no verdict (test scale)"
    return None if learned_sources(ev).learned.all() else "not learned"
