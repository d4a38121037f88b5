"""What a small study keeps: the same pretrainings at the scales a CPU preset shrinks, each arm scored like the
book (learned ratios, in-domain loss, how much the models specialise, and every Fig 9.1 / 9.2 statistic with its
90 % bootstrap interval), beside what it cost.

An arm is a registered preset (its data: pixel size, scenes) with training fields replaced (crop, width, epochs,
crops per epoch, replicates). Its models are keyed like every model (``Job.key`` on the arm's fields), so an arm
equal to a preset reuses that preset's models and a new arm trains only itself. Arms train pretrainings only:
the claims that need transfers are reported as "needs transfers" (the book's own scorecards have them).

Every source by default: pretrainings train in the stacks of their series' grid (``study.stacks``), so a subset
of the structure sources (``sources="figure"``: 9 small and 4 large) still trains most of the others beside it
(measured: 36 pretrainings for the subset's 26 at the cpu preset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from . import datasets as ds
from .cache import atomic_write, cache_dir
from .claims.evidence import Evidence, evidence, matrix, spearman
from .claims.report import scorecard
from .claims.sanity import learned_sources, learning, published_learning
from .claims.verdicts import interval
from .presets import Preset, get_preset
from .study import Job, grid, load_results, run_jobs, run_study

FIGURE_SERIES = ("dose", "structure")  # Fig 9.1 and Fig 9.2
# the structure sources an arm pretrains: every small lattice (the 9 x 9 heatmap) and the large particles of
# four lattices, one per symmetry class but spinel (the size panel); all of them with ``sources="all"``
SIZE_LATTICES = ("CdSe", "Cu", "Si", "Fe")
# what an arm may change: a series' pixels and electrons per pixel (its datasets are made for the arm: a preset
# travels as a value, so the arm's data are keyed by its own numbers), its training scenes per structure dataset
# (the new ones simulated) and the training
ARM_FIELDS = ("pixel_size", "count_pixel_size", "crop", "epoch_crops", "width", "epochs", "replicates", "main_lr",
              "structure_train", "scratch_schedule")


@dataclass(frozen=True)
class Arm:
    """One shrinking of the study: a registered preset with some training fields replaced."""

    name: str
    base: str  # a registered preset: its data (pixel size, scenes) and everything not replaced
    changes: dict = field(default_factory=dict)
    what: str = ""  # one line: what differs from the study
    seeds: tuple | None = None  # training seeds (None: the base preset's)

    def preset(self, series: str) -> Preset:
        """The base preset as ``series`` runs it, with this arm's changes on top."""
        bad = sorted(set(self.changes) - set(ARM_FIELDS))
        if bad:
            raise ValueError(f"arm {self.name!r} changes {', '.join(bad)}; an arm may change only "
                             f"{', '.join(ARM_FIELDS)} (other fields: another base preset)")
        return replace(get_preset(self.base, self.seeds).for_series(series), **self.changes)


ARMS = (
    Arm("cpu", "cpu", {}, "the default: dose on 0.25 Å pixels (1.56x the study's electrons per pixel) with 96-pixel "
        "crops, 512 an epoch; defocus and structure on 0.5 Å with 64-pixel crops, 1024 an epoch; width 8, 6 epochs"),
    Arm("cpu 0.5 Å pixels", "cpu", {"pixel_size": 0.5}, "the default on 0.5 Å pixels (6.25x the study's electrons "
        "per pixel at a dose): the cpu preset before the dose series moved to 0.25 Å"),
    Arm("cpu 0.5 Å counted as 0.25 Å", "cpu", {"pixel_size": 0.5, "count_pixel_size": 0.25}, "0.5 Å pixels holding "
        "the electrons of 0.25 Å ones (a quarter of the dose per Å²): cpu-fine's electrons per pixel, not its pixels"),
    Arm("cpu 2x steps", "cpu", {"epoch_crops": 2048}, "the default with twice the minibatches an epoch"),
    Arm("cpu 96-pixel crops", "cpu", {"crop": 96}, "the default with 96-pixel crops (48 Å on 0.5 Å pixels: a "
        "small particle fits)"),
    Arm("cpu lr 1e-2", "cpu", {"main_lr": (1e-2, 1e-3)}, "the default with a pretraining learning rate of "
        "1e-2 (3e-3 by default; Adam, decayed 0.99 an epoch)"),
    Arm("cpu lr 1e-3", "cpu", {"main_lr": (1e-3, 1e-3)}, "the default with a pretraining learning rate of 1e-3"),
    Arm("cpu width 16", "cpu", {"width": 16}, "the default with twice the channels (0.9 M parameters)"),
    Arm("cpu cosine", "cpu", {"scratch_schedule": "cosine"}, "the default with the pretraining rate annealed to 0 "
        "by a half cosine over the epochs (the study: x0.99 an epoch)"),
    Arm("cpu width 16 cosine", "cpu", {"width": 16, "scratch_schedule": "cosine"}, "width 16 and the cosine "
        "schedule"),
    Arm("cpu 2x scenes", "cpu", {"structure_train": 64}, "the default with 64 training scenes per structure "
        "dataset (128 for large particles) instead of 32: twice the particles seen, the same steps"),
    Arm("cpu 64-pixel crops", "cpu", {"crop": 64, "epoch_crops": 1024}, "every series on 64-pixel crops, 1024 an "
        "epoch: the dose series as it was before its 96-pixel crops (16 Å on its 0.25 Å pixels)"),
    Arm("cpu 96-pixel crops x1024", "cpu", {"crop": 96, "epoch_crops": 1024}, "96-pixel crops, 1024 an epoch (the "
        "dose series: twice its steps; the others: 'cpu 96-pixel crops')"),
    Arm("cpu 96-pixel crops x512", "cpu", {"crop": 96, "epoch_crops": 512}, "96-pixel crops, 512 an epoch (the "
        "dose series' step on every series: on 0.5 Å pixels a 48 Å crop that holds a small particle whole, 1.1x the "
        "default's pixels an epoch)"),
    Arm("cpu-fine", "cpu-fine", {}, "0.25 Å pixels (1.56x the study's electrons per pixel), 96-pixel (24 Å) crops, "
        "2048 crops an epoch"),
    Arm("cpu-fine 16 Å crops", "cpu-fine", {"crop": 64},
        "cpu-fine with 64-pixel (16 Å) crops: the cpu preset's pixels per step on 0.25 Å pixels"),
    Arm("cpu-fine cpu step", "cpu-fine", {"crop": 64, "epoch_crops": 1024},
        "cpu-fine with the cpu preset's training step: 64-pixel crops, 1024 an epoch"),
    Arm("cpu-fine 40 Å crops", "cpu-fine", {"crop": 160}, "cpu-fine with 160-pixel (40 Å) crops"),
    Arm("cpu-fine width 16", "cpu-fine", {"width": 16}, "cpu-fine with twice the channels (0.9 M parameters)"),
    Arm("cpu-fine 512 an epoch", "cpu-fine", {"epoch_crops": 512}, "cpu-fine's 96-pixel crops, 512 an epoch: the "
        "`cpu` dose series' step (1.1x the cpu preset's pixels per epoch) on every series"),
    Arm("cpu-fine 1024 an epoch", "cpu-fine", {"epoch_crops": 1024}, "cpu-fine's 96-pixel crops, 1024 an epoch: "
        "half cpu-fine's minibatches (2.25x the cpu preset's pixels per epoch)"),
)


def get_arm(name: str) -> Arm:
    for arm in ARMS:
        if arm.name == name:
            return arm
    raise ValueError(f"arm={name!r} is unknown; allowed: {', '.join(a.name for a in ARMS)}")


def arm_sources(series: str, sources: str = "all") -> tuple:
    """The pretraining sources of an arm: every source of the dose series; the structure series' small lattices
    and four large ones (``figure``), or every source (``all``)."""
    if sources not in ("figure", "all"):
        raise ValueError(f"sources={sources!r} is unknown; allowed: figure, all")
    every = ds.SERIES[series].sources
    if series != "structure" or sources == "all":
        return every
    return tuple(d for d in every if d.endswith("_small") or d.rsplit("_", 1)[0] in SIZE_LATTICES)


def arm_jobs(arm: Arm, series: str, sources: str = "all") -> list[Job]:
    """The pretrainings of ``arm`` on ``series``: the preset's main-setting pretrainings of the chosen sources."""
    keep = set(arm_sources(series, sources))
    return [j for j in grid(series, arm.preset(series)) if j.kind == "pretrain" and j.source in keep]


def _heatmap_domains(ev: Evidence) -> list[str]:
    """The domains of a series' P heatmap: the small particles for structure, every domain otherwise."""
    return [d for d in ev.cells.source.unique() if ev.series != "structure" or d.endswith("_small")]


def _ratios_by_target(ev: Evidence) -> dict[str, list[float]]:
    """Per target t of the P heatmap with a positive own cell: P(s -> t) / P(t -> t) for every other source s
    with a cell on t."""
    m = matrix(ev, "P", domains=_heatmap_domains(ev))
    out = {}
    for t in m.columns:
        if t in m.index and m.loc[t, t] > 0:
            ratios = [m.loc[s, t] / m.loc[t, t] for s in m.index if s != t and np.isfinite(m.loc[s, t])]
            if ratios:
                out[t] = ratios
    return out


def specialisation(ev: Evidence) -> tuple[float, float]:
    """Median and minimum over the off-diagonal cells (small particles for structure) of P(s -> t) / P(t -> t):
    how much worse a model of another domain does on t than t's own (the study: median 1.81, minimum 1.04)."""
    ratios = [r for rs in _ratios_by_target(ev).values() for r in rs]
    return (float(np.median(ratios)), float(np.min(ratios))) if ratios else (float("nan"), float("nan"))


def fit_and_specialisation(ev: Evidence, fit: pd.Series | None = None) -> pd.DataFrame:
    """Per target t of the P heatmap: how well t's own models fit it (``own_fit``: in-domain over constant-prediction
    loss on the study's scale, the median over its pretrainings; for the study's published evidence its diagonal
    cell, ``sanity.published_learning``; or ``fit``, a Series by domain) and how much the other sources lose on it
    (``specialisation``: the median over s != t of P(s -> t) / P(t -> t))."""
    if fit is None:
        fit = (published_learning(ev.series).set_index("source").ratio if ev.models is None
               else learned_sources(ev).set_index("source")["median"])
    rows = [{"target": t, "own_fit": float(fit[t]), "specialisation": float(np.median(ratios))}
            for t, ratios in _ratios_by_target(ev).items() if t in fit.index]
    return pd.DataFrame(rows, columns=["target", "own_fit", "specialisation"])


def fit_rank_correlation(points: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0,
                         confidence: float = 0.9) -> tuple[float, float, float]:
    """Spearman correlation of ``own_fit`` and ``specialisation`` over the targets of :func:`fit_and_specialisation`
    (< 0: the better a target's own models fit it, the more they beat the other sources' there), with a percentile
    bootstrap interval over the targets (resampled with replacement); NaN with fewer than three targets."""
    if len(points) < 3:
        return float("nan"), float("nan"), float("nan")
    x, y = points.own_fit.to_numpy(), points.specialisation.to_numpy()
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_bootstrap):  # a resample holding one value of either has no rank correlation: NaN, dropped
        i = rng.integers(0, len(x), len(x))
        draws.append(spearman(x[i], y[i]) if len(set(x[i])) > 1 and len(set(y[i])) > 1 else float("nan"))
    low, high = interval(pd.Series(draws), confidence)
    return float(spearman(x, y)), low, high


def arm_rows(arm: Arm, series: str, cache=None, sources: str = "all", n_bootstrap: int = 200,
             card: pd.DataFrame | None = None) -> list[dict]:
    """The statistics of one trained arm on one series: one row per claim (statistic, interval, verdict) and
    the arm's learning, specialisation and cost (core-seconds of training, measured per model). ``card``: a
    scorecard to take the claims from instead of bootstrapping the arm's pretrainings (the book's own, which
    holds its transfers too)."""
    pr = arm.preset(series)
    keys = {j.key(pr) for j in arm_jobs(arm, series, sources)}
    df = load_results(series, None, cache)
    df = df[df.key.isin(keys)].reset_index(drop=True) if len(df) else df
    if len(df) < len(keys):
        raise FileNotFoundError(f"arm {arm.name!r} has {len(df)} of its {len(keys)} {series} pretrainings; run "
                                f"`python -m hrtem_tl ablate --arms {json.dumps(arm.name)} --series {series}`")
    ev = evidence(series, df, pr)
    card = scorecard(ev, n_bootstrap) if card is None else card
    sources_table, learn = learned_sources(ev), learning(ev)
    median_spec, min_spec = specialisation(ev)
    common = {"arm": arm.name, "series": series, "what": arm.what, "models": len(df),
              "core_seconds": float((df.seconds_per_epoch * df.epochs).sum()),
              "learned": f"{int(sources_table.learned.sum())}/{len(sources_table)}",
              "worst_ratio": float(sources_table["median"].max()), "in_domain": float(learn.in_domain.median()),
              "specialisation": median_spec, "specialisation_min": min_spec}
    rows = []
    for _, c in card.iterrows():
        needs_transfers = np.isnan(c["this run"])
        rows.append({**common, "claim": c.claim, "key": c.key, "figure": c.figure, "study": c.study,
                     "statistic": c["this run"], "low": c.low, "high": c.high,
                     "verdict": "needs transfers" if needs_transfers else c.verdict})
    return rows


def summary_path(cache=None):
    return cache_dir(cache) / "ablation" / "summary.json"


def run_ablation(arms=None, series=FIGURE_SERIES, cache=None, device: str = "auto", scheduler=None,
                 sources: str = "all", progress: bool = True, n_bootstrap: int = 200) -> pd.DataFrame:
    """Pretrain what the arms lack (cached), score every arm on every series and write the table to
    ``<cache>/ablation/summary.json`` (the book's page reads it); return it."""
    chosen = [get_arm(a) if isinstance(a, str) else a for a in (arms or [a.name for a in ARMS])]
    for arm in chosen:
        for name in series:
            pr = arm.preset(name)
            ds.simulate_series(name, pr, cache, "cpu", scheduler, progress=progress)
            run_jobs(arm_jobs(arm, name, sources), pr, cache, device, scheduler, progress)
    rows = [r for arm in chosen for name in series for r in arm_rows(arm, name, cache, sources, n_bootstrap)]
    table = pd.DataFrame(rows)
    path = summary_path(cache)
    old = read_summary(cache)
    if len(old):  # arms measured before and not now stay in the summary
        old = old[~old.set_index(["arm", "series"]).index.isin(table.set_index(["arm", "series"]).index)]
        table = pd.concat([old, table], ignore_index=True)
    atomic_write(path, lambda tmp: open(tmp, "w").write(table.to_json(orient="records", indent=1)))
    return table


def read_summary(cache=None) -> pd.DataFrame:
    """The last ablation table in the cache (empty when none was run)."""
    path = summary_path(cache)
    return pd.read_json(path, orient="records") if path.exists() else pd.DataFrame()


def format_table(table: pd.DataFrame) -> str:
    """The ablation for the terminal: per arm and series its cost and learning, then each claim's statistic."""
    lines = []
    for (arm, series), part in table.groupby(["arm", "series"], sort=False):
        first = part.iloc[0]
        lines.append(f"{arm} / {series}: {first.models} pretrainings, {first.core_seconds / 60:.1f} core-min of "
                     f"training; learned {first.learned} (worst source {first.worst_ratio:.2f} of a constant "
                     f"prediction); in-domain {first.in_domain:.3f}; specialisation median "
                     f"{first.specialisation:.2f}, min {first.specialisation_min:.2f} (study 1.81, 1.04)")
        for _, r in part.iterrows():
            if r.verdict == "needs transfers":
                continue
            lines.append(f"    {r.statistic:+.2f} [{r.low:+.2f}, {r.high:+.2f}] {r.verdict:12s} (study "
                         f"{r.study:+.2f}) {r.claim}")
    return "\n".join(lines)


def default_arm(preset: str | Preset) -> Arm:
    """The arm of a preset as it is: its own pretrainings, which a book at that preset has already made."""
    pr = get_preset(preset)
    own = [a for a in ARMS if a.name == pr.name and a.base == pr.name and not a.changes]
    arm = own[0] if own else Arm(pr.name, pr.name, {}, f"the {pr.name} preset as the book runs it")
    return replace(arm, seeds=pr.seeds)


def page_table(preset: str | Preset, cache=None, device: str = "auto") -> pd.DataFrame:
    """The ablation page's table: the preset's own arm (its pretrainings, made here if missing, with the claims of
    the book's own scorecard: the chapters' numbers, transfers included) and every arm the cache's ablation
    summary holds (``python -m hrtem_tl ablate``), the default's row first."""
    from .claims.report import cached_scorecard

    pr = get_preset(preset)
    arm = default_arm(pr)
    rows = []
    for name in FIGURE_SERIES:
        ds.simulate_series(name, pr, cache, "cpu", progress=False)
        run_study(name, pr, cache, device, progress=False)
        book = evidence(name, load_results(name, pr, cache), pr)
        rows += arm_rows(arm, name, cache, card=cached_scorecard(book, cache))
    own = pd.DataFrame(rows)
    stored = read_summary(cache)
    if len(stored):
        stored = stored[stored.arm != arm.name]
    return pd.concat([own, stored], ignore_index=True) if len(stored) else own


__all__ = ["ARMS", "Arm", "run_ablation", "read_summary", "format_table", "arm_jobs", "arm_rows",
           "specialisation", "fit_and_specialisation", "fit_rank_correlation", "default_arm", "page_table"]
