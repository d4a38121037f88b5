"""Scorecards: every claim of a series with the study's number, ours with its interval, and the verdict; for the
terminal (``python -m hrtem_tl claims``), the chapters' tables and their glued numbers."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd

from .. import datasets as ds
from ..datasets import command
from ..presets import Preset, get_preset
from .evidence import Evidence, MissingEvidence, evidence, matrix, off_diagonal, published, spearman
from .registry import get_claims, measure, study_value
from .sanity import _blocker, sanity_line
from .verdicts import (
    CONFIDENCE,
    N_BOOTSTRAP,
    VERDICTS,
    bar,
    bootstrap,
    interval,
    replicates_of,
    replicates_to_decide,
    verdict,
)


def scorecard(ev: Evidence, n_bootstrap: int = N_BOOTSTRAP) -> pd.DataFrame:
    """One row per claim of the series: the finding, the study's number, this run's number on the study's scale
    with its bootstrap interval (``low``, ``high``; ``n_bootstrap`` = 0: none), in cross-entropy, the bar, the
    verdict, and for an undecided claim the replicates per source that would likely decide it."""
    blocked = _blocker(ev)
    twin = evidence(ev.series, ev.models, ev.preset, metric="ce") if ev.models is not None else None
    draws = bootstrap(ev, n_bootstrap) if ev.models is not None and n_bootstrap else None
    replicates = replicates_of(ev) if ev.models is not None else 0
    rows = []
    for claim in get_claims(ev.series):
        ours, study = measure(claim, ev), study_value(claim)
        low, high = interval(draws[claim.key]) if draws is not None else (float("nan"), float("nan"))
        # one pretraining per source: the draws cannot vary P, so an interval would be a single model's luck
        single = ev.models is not None and replicates < 2 and claim.random
        word = SINGLE if single and not np.isnan(ours) else verdict(claim, ours, study, low, high)
        if np.isnan(ours) and _other_domains(ev):  # the claim was made for domains this run does not have
            word = NOT_APPLICABLE
        if single:
            low = high = float("nan")
        rows.append({"series": claim.series, "figure": claim.figure, "claim": claim.text, "key": claim.key,
                     "statistic": claim.statistic, "kind": claim.kind, "study": study, "bar": bar(claim, study),
                     "this run": ours, "low": low, "high": high,
                     "cross-entropy": measure(claim, twin) if twin is not None else float("nan"),
                     "verdict": blocked or word, "verdict if learned": word, "replicates": replicates,
                     "replicates to decide": replicates_to_decide(claim, ours, study, low, high, replicates)})
    return pd.DataFrame(rows)


def agreement(ev: Evidence, stage: str, domains=None) -> float:
    """Spearman rank correlation between our median cells and the published ones (freeze "all", matched cells);
    NaN when fewer than three cells match (a run on other domains than the study's)."""
    try:
        ours = off_diagonal(matrix(ev, stage, domains=domains)).rename("ours")
        ref = matrix(published(ev.series), stage, domains=domains).stack().rename("paper")
        both = pd.concat([ours, ref], axis=1, join="inner").dropna()
        return spearman(both.ours, both.paper)
    except MissingEvidence:  # no published cell among the run's domains, or fewer than three matched
        return float("nan")


def _fmt(x: float, sign: bool = True) -> str:
    return "–" if np.isnan(x) else (f"{x:+.2f}" if sign else f"{x:.2f}")


def interval_text(low: float, high: float) -> str:
    """``[-0.12, +0.30]``, or "–" without an interval."""
    return "–" if np.isnan(low) else f"[{low:+.2f}, {high:+.2f}]"


def verdict_text(row) -> str:
    """The verdict, with the replicates that would likely decide an undecided claim."""
    if row.verdict == "undecided":
        need = row["replicates to decide"]
        more = "not within reach" if not np.isfinite(need) else f"~{int(need)} replicates would likely decide"
        return f"undecided ({more}; R = {int(row.replicates)})"
    if row.verdict == "not learned":
        return f"not learned (else: {row['verdict if learned']})"
    return row.verdict


def format_scorecard(card: pd.DataFrame) -> str:
    """The scorecard as aligned text for the terminal."""
    pct = int(CONFIDENCE * 100)
    lines = [f"  {'figure':8s} {'claim':62s} {'study':>6s} {'bar':>6s} {'run':>6s} {pct} % interval   verdict"]
    for _, r in card.iterrows():
        first, *rest = textwrap.wrap(r.claim, 62) or [""]
        lines.append(f"  {r.figure:8s} {first:62s} {_fmt(r.study):>6s} {_fmt(r.bar, False):>6s} "
                     f"{_fmt(r['this run']):>6s} {interval_text(r.low, r.high):16s} {verdict_text(r)}")
        lines += [f"  {'':8s} {more}" for more in rest]
    return "\n".join(lines)


def verdict_counts(card: pd.DataFrame) -> str:
    """``3 hold, 1 undecided, 1 contradicts`` (the words that occur)."""
    counts = card.verdict.value_counts()
    names = {"holds": "hold", SINGLE: "undecided (one pretraining per source)"}
    order = [*VERDICTS, SINGLE, "not learned", "no verdict (test scale)", NOT_APPLICABLE, "no data"]
    words = [w for w in order if w in counts] + sorted(set(counts.index) - set(order))
    return ", ".join(f"{counts[w]} {names.get(w, w)}" for w in words)


def _code_hash() -> str:
    """A hash of the code that computes a scorecard (this package, ``study``, ``optics``): an edit recomputes."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).parent
    files = sorted(here.glob("*.py")) + [here.parent / "study.py", here.parent / "optics.py"]
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()[:16]


SINGLE = "undecided (one pretraining per source: no interval)"
NOT_APPLICABLE = "not applicable"


def _other_domains(ev: Evidence) -> bool:
    """Whether ``ev``'s run has other domains than the study's (``datasets.with_parameters``)."""
    return ev.preset is not None and ev.models is not None and \
        ds.get_series(ev.series, ev.preset).domains != ds.SERIES[ev.series].domains


def cached_scorecard(ev: Evidence, cache=None) -> pd.DataFrame:
    """:func:`scorecard` of our evidence, computed once per set of results rows and kept in
    ``<cache>/results/scorecards`` (the bootstrap takes seconds to a minute; the chapters and ``claims`` share it)."""
    from ..cache import atomic_write, key_of
    from ..study import results_dir

    if ev.models is None or "key" not in ev.models:
        return scorecard(ev)
    key = key_of({"series": ev.series, "rows": sorted(ev.models["key"]), "draws": N_BOOTSTRAP,
                  "confidence": CONFIDENCE, "metric": ev.metric, "preset": ev.preset.name, "code": _code_hash()})
    path = results_dir(cache) / "scorecards" / f"{ev.series}-{key}.parquet"
    if path.exists():
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError):  # damaged: computed again and rewritten
            path.unlink(missing_ok=True)
    card = scorecard(ev)
    atomic_write(path, lambda tmp: card.to_parquet(tmp, index=False))
    return card


def run_evidence(series: str, preset: str | Preset, cache=None, seeds=None) -> Evidence:
    """Our evidence for ``series`` from the cache (no training); a clear error names the command that makes it."""
    from ..study import load_results

    pr = get_preset(preset, seeds)
    results = load_results(series, pr, cache)
    if not len(results):
        raise FileNotFoundError(f"no trained models of the {series} series (preset {pr.name}, seeds "
                                f"{','.join(map(str, pr.seeds))}) in the cache; run "
                                f"`{command('train', series, pr, cache)}`")
    return evidence(series, results, pr)


def print_scorecards(series: str = "all", preset: str | Preset = "cpu", cache=None, seeds=None) -> None:
    """``python -m hrtem_tl claims``: the sanity line and the scorecard of each series, from the cache."""
    pr = get_preset(preset, seeds)
    print(f"claims of the study, preset {pr.name}, seeds {','.join(map(str, pr.seeds))}; statistics on the study's "
          f"scale with {int(CONFIDENCE * 100)} % bootstrap intervals ({N_BOOTSTRAP} draws over the pretrainings "
          f"of each source and the transfers of each cell)")
    for name in ds.series_names(series):
        ev = run_evidence(name, pr, cache)
        card = cached_scorecard(ev, cache)
        print(f"\n{sanity_line(ev)}\n{name}: {verdict_counts(card)} (of {len(card)} claims)")
        print(format_scorecard(card))


def display_table(card: pd.DataFrame, statistic: bool = True) -> pd.DataFrame:
    """The scorecard as a reader's table: (series,) figure, claim, (statistic,) the study's number, the bar, this
    run's number with its interval, and the verdict; the series column appears when the card spans several."""
    pct = int(CONFIDENCE * 100)
    table = pd.DataFrame({"series": card.series, "figure": card.figure, "claim (the study's finding)": card.claim,
                          "statistic": card.statistic, "study": card.study.map(_fmt),
                          "bar": card.bar.map(lambda x: _fmt(x, False)), "this run": card["this run"].map(_fmt),
                          f"{pct} % interval": [interval_text(lo, hi) for lo, hi in zip(card.low, card.high)],
                          "this run, cross-entropy": card["cross-entropy"].map(_fmt),
                          "verdict": [verdict_text(r) for _, r in card.iterrows()]}).reset_index(drop=True)
    if card.series.nunique() < 2:
        table = table.drop(columns="series")
    return table if statistic else table.drop(columns="statistic")


def glue_scorecard(ev: Evidence, glue, card: pd.DataFrame | None = None, cache=None) -> pd.DataFrame:
    """Glue (myst-nb) each claim's numbers and verdict as ``claim_<key>_{study,run,low,high,ce,verdict}``, and
    the series' sanity line, verdict counts and count of holding claims as ``<series>_{sanity,verdicts,holds,
    claims}``; returns the scorecard."""
    card = cached_scorecard(ev, cache) if card is None else card
    for _, r in card.iterrows():
        glue(f"claim_{r.key}_study", float(r.study))
        glue(f"claim_{r.key}_run", float(r["this run"]))
        glue(f"claim_{r.key}_low", float(r.low))
        glue(f"claim_{r.key}_high", float(r.high))
        glue(f"claim_{r.key}_interval", interval_text(r.low, r.high))
        glue(f"claim_{r.key}_ce", float(r["cross-entropy"]))
        glue(f"claim_{r.key}_verdict", verdict_text(r))
    glue(f"{ev.series}_sanity", sanity_line(ev))
    glue(f"{ev.series}_verdicts", verdict_counts(card))
    glue(f"{ev.series}_holds", int((card.verdict == "holds").sum()))
    glue(f"{ev.series}_replicates", int(card.replicates.iloc[0]) if len(card) else 0)
    glue(f"{ev.series}_claims", int(len(card)))
    return card
