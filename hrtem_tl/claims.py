"""The study's findings (STUDY.md section 5) as statistics of a results table, each with a verdict.

A claim is one function of an :class:`Evidence` (the cells of a series' heatmaps per freezing option and, for our
runs, the per-model rows) that returns one number, signed so that a positive value supports the claim. The same
function applied to the published values (``reference/``) gives the study's own number wherever the published
tables hold what it needs; where they do not, the number the study states is used (Fig 6.2), or none.

Statistics compare losses by ranks, signs and log10 ratios, never by absolute nats. They are computed on the
study's own scale by default: our models trained on plain cross-entropy (STUDY.md 4), then scored with the
study's published loss (``train.study_scale_loss``: its doubled softmax, floor subtracted), which is bounded in
[0, 1] like an error rate. The scale matters for comparisons between cells: cross-entropy charges a confidently
wrong pixel without bound, the study's loss at most 1, so a model that fails confidently on a few pixels can rank
differently on the two. The scorecard shows the cross-entropy statistic beside it.

The verdict rule, written once in :func:`verdict`:

- ``direction``: holds when the statistic is > 0 and, where the study gives a number, at least half of it;
- ``equivalence`` ("comparable", "~"): the statistic is a log10 ratio and holds within a factor 1.25 either way;
- ``share`` ("not necessarily"): the statistic is a share of models and holds from one quarter up.

Before any verdict, a sanity line per series: each pretraining's in-domain loss against the constant-prediction
loss of its own masks (the loss of a model that learnt nothing), both on the study's scale. A series with a
pretraining above two thirds of that reports "not learned" instead of verdicts. The threshold is checked on the
study's own pretrainings (:func:`published_learning`): its hardest, diamond C on small particles, stands at 0.58
of a constant prediction (its particle fraction estimated from STUDY.md's geometry), so a threshold of one half
would call the study's own model unlearned.
"""

from __future__ import annotations

import itertools
import json
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from . import datasets as ds
from . import train as tr
from .model import FREEZE_OPTIONS
from .presets import Preset, get_preset
from .structures import LATTICES
from .study import MIXTURE_PAIR, cell_table, model_table, sweep_rows

REFERENCE = Path(__file__).parent / "reference"
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
    pr = get_preset(preset)
    if seeds is not None:
        results = results[results.seed.isin(list(seeds))].reset_index(drop=True)
    models = model_table(results, series, pr)
    if metric == "study":
        models = models.assign(P=models.P_study, T=models.T_study)
    models = models[["source", "target", "freeze", "seed", "P", "T"]]
    parts = [cell_table(models, "median", (f,)).assign(freeze=f) for f in FREEZE_OPTIONS]
    parts.append(cell_table(models, "median").assign(freeze="all"))
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


def _small(ev: Evidence) -> list[str]:
    return [f"{name}_small" for name in LATTICES if f"{name}_small" in set(ev.cells.source)]


def _per_freeze_median_t(ev: Evidence, freeze: str) -> float:
    return float(off_diagonal(matrix(ev, "T", freeze)).median())


def _log_ratio(a: float, b: float) -> float:
    """log10(a / b); +inf when b is 0 and a is not (a spread that vanishes entirely)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.log10(np.float64(a) / np.float64(b)))


def _sign(x: float) -> float:
    return float(np.sign(x))


# ---------------------------------------------------------------- dose (Fig 9.1)

def dose_low_to_high_loses_more(ev: Evidence) -> float:
    """Over dose pairs, (pairs where P(low -> high) > P(high -> low) minus the reverse) / pairs."""
    m = matrix(ev, "P")
    doses = _numeric_order(m.index)
    signs = [_sign(m.loc[lo, hi] - m.loc[hi, lo]) for lo, hi in itertools.combinations(doses, 2)
             if hi in m.columns and lo in m.columns and np.isfinite(m.loc[lo, hi] - m.loc[hi, lo])]
    if not signs:
        raise MissingEvidence("dose pairs carried both ways")
    return float(np.mean(signs))


def dose_low_pretraining_worse(ev: Evidence) -> float:
    """-Spearman(pretraining dose, median over targets of log10(P(s -> t) / P(t -> t))): low dose, worse rows."""
    m = matrix(ev, "P")
    diag = pd.Series({d: m.loc[d, d] for d in m.index if d in m.columns})
    excess = np.log10(off_diagonal(m) / diag.reindex([t for _, t in off_diagonal(m).index]).to_numpy())
    rows = excess.groupby(level=0).median()
    return -spearman(rows.index.astype(float), rows.to_numpy())


def transfer_removes_the_source(ev: Evidence) -> float:
    """log10(spread of log P across pretraining domains / the same spread of log T): > 0 when transfer evens out."""
    return _log_ratio(log_spread_across_sources(matrix(ev, "P")), log_spread_across_sources(matrix(ev, "T")))


def dose_target_snr(ev: Evidence) -> float:
    """-Spearman(target dose, median T of the target's column, off-diagonal): higher dose, lower loss."""
    cols = off_diagonal(matrix(ev, "T")).groupby(level=1).median()
    return -spearman(cols.index.astype(float), cols.to_numpy())


# ---------------------------------------------------------------- structure and size (Fig 9.2)

def structure_symmetry_transfers(ev: Evidence) -> float:
    """Per target lattice (small), the mean sign of P(other-symmetry source) - P(same-symmetry source) over all
    such source pairs, averaged over targets: +1 when a same-symmetry source always transfers best."""
    small = _small(ev)
    m = matrix(ev, "P", domains=small)
    sym = {d: LATTICES[d.rsplit("_", 1)[0]].structure for d in small}
    scores = []
    for t in m.columns:
        same = [m.loc[s, t] for s in m.index if s != t and sym[s] == sym[t] and np.isfinite(m.loc[s, t])]
        other = [m.loc[s, t] for s in m.index if sym[s] != sym[t] and np.isfinite(m.loc[s, t])]
        if same and other:
            scores.append(np.mean([_sign(o - a) for a in same for o in other]))
    if not scores:
        raise MissingEvidence("targets with a same-symmetry and an other-symmetry source")
    return float(np.mean(scores))


def _lattice_mass(name: str) -> float:
    """Mean atomic mass (u) of a lattice's atoms: 'lighter elements'."""
    return float(LATTICES[name].unit_cell().get_masses().mean())


def structure_lighter_transfers_better(ev: Evidence) -> float:
    """Per symmetry class of two lattices (small), sign of P(heavy -> light) - P(light -> heavy); mean over classes."""
    small = _small(ev)
    m = matrix(ev, "P", domains=small)
    by_class: dict[str, list[str]] = {}
    for d in small:
        by_class.setdefault(LATTICES[d.rsplit("_", 1)[0]].structure, []).append(d)
    signs = []
    for members in by_class.values():
        if len(members) != 2:
            continue
        light, heavy = sorted(members, key=lambda d: _lattice_mass(d.rsplit("_", 1)[0]))
        diff = m.loc[heavy, light] - m.loc[light, heavy]
        if np.isfinite(diff):
            signs.append(_sign(diff))
    if not signs:
        raise MissingEvidence("symmetry classes of two lattices carried both ways")
    return float(np.mean(signs))


def structure_target_dominates(ev: Evidence) -> float:
    """log10(sd across targets of the column medians of log10 T / sd across sources of the row medians):
    > 0 when T depends more on the target lattice than on the pretraining lattice (small, off-diagonal)."""
    off = np.log10(off_diagonal(matrix(ev, "T", domains=_small(ev))))
    by_target, by_source = off.groupby(level=1).median().std(), off.groupby(level=0).median().std()
    return _log_ratio(by_target, by_source)


def _size_gaps(ev: Evidence, stage: str) -> pd.Series:
    """Per lattice with both sizes: log10(stage(small -> large) / P(large -> large))."""
    m = matrix(ev, stage)
    gaps = {}
    for name in LATTICES:
        s, big = f"{name}_small", f"{name}_large"
        if s in m.index and big in m.index and big in m.columns and np.isfinite(m.loc[s, big]):
            gaps[name] = np.log10(m.loc[s, big] / m.loc[big, big])
    if not gaps:
        raise MissingEvidence("small -> large cells")
    return pd.Series(gaps)


def size_small_pretrained_lose_on_large(ev: Evidence) -> float:
    """Median over lattices of log10(P(small -> large) / P(large -> large)): > 0 when small-trained models lose."""
    return float(_size_gaps(ev, "P").median())


def size_transfer_irons_out(ev: Evidence) -> float:
    """The size gap after pretraining minus the gap after transfer (median log10 ratios): > 0 when it closes."""
    return float(_size_gaps(ev, "P").median() - _size_gaps(ev, "T").median())


# ---------------------------------------------------------------- defocus (Figs 7.1, 6.1, 6.2, 7.2, 8.1)

def defocus_in_focus_hardest(ev: Evidence) -> float:
    """log10(median T on 0 nm / the highest median T of any other target), off-diagonal: > 0 iff 0 nm is hardest."""
    cols = off_diagonal(matrix(ev, "T")).groupby(level=1).median()
    if IN_FOCUS not in cols.index:
        raise MissingEvidence("transfers to 0 nm")
    return float(np.log10(cols[IN_FOCUS] / cols.drop(IN_FOCUS).max()))


def _sweep(ev: Evidence) -> pd.DataFrame:
    rows = sweep_rows(ev.need_models(), ev.preset)
    if not len(rows):
        raise MissingEvidence("the hyperparameter sweep")
    return rows


def more_images_lower_loss(ev: Evidence) -> float:
    """-Spearman(transfer images, median T), over the hyperparameter sweep."""
    med = _sweep(ev).groupby("transfer_size")[ev.column("T")].median()
    return -spearman(med.index, med.to_numpy())


def more_images_less_spread(ev: Evidence) -> float:
    """-Spearman(transfer images, interquartile range of T), over the hyperparameter sweep."""
    iqr = _sweep(ev).groupby("transfer_size")[ev.column("T")].agg(lambda t: t.quantile(0.75) - t.quantile(0.25))
    return -spearman(iqr.index, iqr.to_numpy())


def freezing_encoder_costs_loss(ev: Evidence) -> float:
    """log10(median off-diagonal T with the encoder frozen / with nothing frozen): > 0 when slightly worse."""
    return float(np.log10(_per_freeze_median_t(ev, "encoder") / _per_freeze_median_t(ev, "none")))


def freezing_decoder_like_none(ev: Evidence) -> float:
    """log10(median off-diagonal T with the decoder frozen / with nothing frozen): ~0 when alike."""
    return float(np.log10(_per_freeze_median_t(ev, "decoder") / _per_freeze_median_t(ev, "none")))


def aggressive_learning_rates_best(ev: Evidence) -> float:
    """log10(median T of the other learning-rate pairs / median T of the largest pair), over the sweep."""
    sweep = _sweep(ev)
    med = sweep.groupby(["lr_pretrain", "lr_transfer"])[ev.column("T")].median()
    if len(med) < 2:
        raise MissingEvidence("two or more learning-rate pairs")
    top = max(med.index)
    return float(np.log10(med.drop(top).median() / med[top]))


def _transfers(ev: Evidence) -> pd.DataFrame:
    rows = ev.need_models()
    rows = rows[rows.kind == "transfer"]
    if not len(rows):
        raise MissingEvidence("transfer rows")
    return rows


def freezing_encoder_saves_parameters(ev: Evidence) -> float:
    """1 - trainable parameters with the encoder frozen / with nothing frozen (median over transfers)."""
    by = _transfers(ev).groupby("freeze")["trainable_params"].median()
    return float(1 - by["encoder"] / by["none"])


def freezing_encoder_saves_time(ev: Evidence) -> float:
    """1 - training time per image with the encoder frozen / with nothing frozen (median over transfers)."""
    by = (1 / _transfers(ev).images_per_second).groupby(_transfers(ev).freeze).median()
    return float(1 - by["encoder"] / by["none"])


def transfer_like_mixture(ev: Evidence) -> float:
    """log10(median T of transfers -10 -> +5 nm / median T of single-stage training on their mixtures)."""
    rows = ev.need_models()
    src, tgt = MIXTURE_PAIR
    lr_pre, lr_tr = ev.preset.main_lr
    tl = rows[(rows.kind == "transfer") & (rows.source == src) & (rows.target == tgt)
              & np.isclose(rows.lr_pretrain, lr_pre) & np.isclose(rows.lr_transfer.astype(float), lr_tr)]
    mix = rows[rows.kind == "mixture"]
    if not len(tl) or not len(mix):
        raise MissingEvidence("transfers and mixtures of the baseline pair")
    return float(np.log10(tl[ev.column("T")].median() / mix[ev.column("T")].median()))


def ood_spread(ev: Evidence) -> pd.DataFrame:
    """Per main-setting defocus transfer: sd of its loss across all defocus domains before (P) and after (T)."""
    rows = ev.need_models()
    lr_pre, lr_tr = ev.preset.main_lr
    main = rows[(rows.kind == "transfer") & np.isclose(rows.lr_pretrain, lr_pre)
                & np.isclose(rows.lr_transfer.astype(float), lr_tr) & (rows.transfer_size == ev.preset.transfer_size)]
    return pd.DataFrame({"source": main.source, "target": main.target, "freeze": main.freeze,
                         "P": [np.std(list(json.loads(p).values())) for p in main[ev.column("P_all")]],
                         "T": [np.std(list(json.loads(t).values())) for t in main[ev.column("T_all")]]}
                        ).reset_index(drop=True)


def transfer_not_more_robust(ev: Evidence) -> float:
    """Share of transferred models whose loss spread across the defocus domains did not fall."""
    spread = ood_spread(ev)
    if not len(spread):
        raise MissingEvidence("main-setting transfers")
    return float((spread["T"] >= spread["P"]).mean())


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
    Claim("structure_symmetry", "structure", "Fig 9.2", "after pretraining, lattices sharing crystal symmetry "
          "transfer well to each other", structure_symmetry_transfers),
    Claim("structure_lighter", "structure", "Fig 9.2", "within a symmetry class, lighter elements tend to "
          "transfer slightly better", structure_lighter_transfers_better),
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
    Claim("hyper_images_loss", "defocus", "Fig 6.1", "more transfer images, lower loss", more_images_lower_loss),
    Claim("hyper_images_spread", "defocus", "Fig 6.1", "more transfer images, less spread", more_images_less_spread),
    Claim("hyper_encoder_worse", "defocus", "Fig 6.1", "freezing the encoder is slightly worse than no freezing",
          freezing_encoder_costs_loss),
    Claim("hyper_decoder_alike", "defocus", "Fig 6.1", "freezing the decoder ~ no freezing",
          freezing_decoder_like_none, kind="equivalence"),
    Claim("hyper_lr", "defocus", "Fig 6.1", "the more aggressive learning rates did best",
          aggressive_learning_rates_best),
    Claim("cost_parameters", "defocus", "Fig 6.2", "freezing the encoder cuts trainable parameters by ~80 %",
          freezing_encoder_saves_parameters, stated=0.80),
    Claim("cost_time", "defocus", "Fig 6.2", "freezing the encoder cuts training time by 15-25 %",
          freezing_encoder_saves_time, stated=0.20),
    Claim("baseline", "defocus", "Fig 7.2", "transfer from -10 to +5 nm is comparable to single-stage training on "
          "mixtures", transfer_like_mixture, kind="equivalence"),
    Claim("ood", "defocus", "Fig 8.1", "transfer learning does not necessarily improve out-of-distribution "
          "generalization", transfer_not_more_robust, kind="share"),
)


def get_claims(series: str) -> list[Claim]:
    ds.get_series(series)
    return [c for c in CLAIMS if c.series == series]


def measure(claim: Claim, ev: Evidence) -> float:
    """The claim's statistic on ``ev``; NaN where the evidence lacks what it needs."""
    try:
        return float(claim.compute(ev))
    except (MissingEvidence, KeyError):
        return float("nan")


def study_value(claim: Claim) -> float:
    """The study's number for a claim: the statistic of its published cells, else the number it states."""
    value = measure(claim, published(claim.series))
    return value if not np.isnan(value) else (claim.stated if claim.stated is not None else float("nan"))


def verdict(claim: Claim, ours: float, study: float) -> str:
    """"holds" / "fails" by the rule of the module docstring; "no data" where this run has no number."""
    if np.isnan(ours):
        return "no data"
    if claim.kind == "equivalence":
        ok = abs(ours) <= np.log10(EQUIVALENCE_FACTOR)
    elif claim.kind == "share":
        ok = ours >= MIN_SHARE
    else:
        ok = ours > 0 and (np.isnan(study) or ours >= HALF * study)
    return "holds" if ok else "fails"


# ---------------------------------------------------------------- sanity and scorecard

def learning(ev: Evidence) -> pd.DataFrame:
    """Per pretraining: its in-domain loss (P on its own domain) and the constant-prediction loss of that domain's
    validation masks, both on the study's scale, their ratio, and whether it learned (ratio <= LEARNED_FRACTION)."""
    rows = ev.need_models()
    pre = rows[rows.kind == "pretrain"]
    if ev.preset is not None:
        pre = pre[np.isclose(pre.lr_pretrain, ev.preset.main_lr[0])]
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


def sanity_line(ev: Evidence) -> str:
    """One line: how many pretrainings learned, and the range of their in-domain / constant-loss ratios."""
    table = learning(ev)
    if not len(table) or table.ratio.isna().all():
        return f"{ev.series}: no pretraining with a recorded constant-prediction loss"
    word = "learned" if table.learned.all() else "DID NOT LEARN"
    worst = table.loc[table.ratio.idxmax()]
    theirs = published_learning(ev.series)
    their_worst = theirs.loc[theirs.ratio.idxmax()]
    line = (f"{ev.series}: {word}: {int(table.learned.sum())}/{len(table)} pretrainings below "
            f"{LEARNED_FRACTION:.2f} x the constant-prediction loss (in-domain / constant on the study's scale "
            f"{table.ratio.min():.2f}-{table.ratio.max():.2f}, worst: {worst.source}, seed {worst.seed}; the study's "
            f"own up to {their_worst.ratio:.2f}: {their_worst.source})")
    if ev.preset is not None and not ev.preset.verdicts:
        line += f"; the {ev.preset.name} preset is a test scale: statistics only, no verdicts"
    elif not table.learned.all():
        line += "; its claims show their statistics without verdicts (README: which preset learns every series)"
    return line


def _blocker(ev: Evidence) -> str | None:
    """Why no verdict can be drawn for the series (a test-scale preset, pretrainings that did not learn)."""
    if ev.models is None:
        return None
    if ev.preset is not None and not ev.preset.verdicts:
        return "no verdict (test scale)"
    return None if learning(ev).learned.all() else "not learned"


def scorecard(ev: Evidence) -> pd.DataFrame:
    """One row per claim of the series: the finding, the study's number, this run's number on the study's scale
    (the verdict's) and in cross-entropy, the verdict."""
    blocked = _blocker(ev)
    twin = evidence(ev.series, ev.models, ev.preset, metric="ce") if ev.models is not None else None
    rows = []
    for claim in get_claims(ev.series):
        ours, study = measure(claim, ev), study_value(claim)
        rows.append({"series": claim.series, "figure": claim.figure, "claim": claim.text, "key": claim.key,
                     "statistic": claim.statistic, "kind": claim.kind, "study": study, "this run": ours,
                     "cross-entropy": measure(claim, twin) if twin is not None else float("nan"),
                     "verdict": blocked or verdict(claim, ours, study)})
    return pd.DataFrame(rows)


def agreement(ev: Evidence, stage: str, domains=None) -> float:
    """Spearman rank correlation between our median cells and the published ones (freeze "all", matched cells)."""
    ours = off_diagonal(matrix(ev, stage, domains=domains)).rename("ours")
    ref = matrix(published(ev.series), stage, domains=domains).stack().rename("paper")
    both = pd.concat([ours, ref], axis=1, join="inner").dropna()
    return spearman(both.ours, both.paper)


def format_scorecard(card: pd.DataFrame) -> str:
    """The scorecard as aligned text for the terminal."""
    lines = []
    for _, r in card.iterrows():
        study = "  -  " if np.isnan(r.study) else f"{r.study:+.2f}"
        ours = "  -  " if np.isnan(r["this run"]) else f"{r['this run']:+.2f}"
        ce = "  -  " if np.isnan(r["cross-entropy"]) else f"{r['cross-entropy']:+.2f}"
        first, *rest = textwrap.wrap(r.claim, 70) or [""]
        lines.append(f"  {r.figure:8s} {first:70s} study {study:>6s}  run {ours:>6s} (CE {ce:>6s})  "
                     f"{r.verdict}")
        lines += [f"  {'':8s} {more}" for more in rest]
    return "\n".join(lines)


def run_evidence(series: str, preset: str | Preset, cache=None, seeds=None) -> Evidence:
    """Our evidence for ``series`` from the cache (no training); a clear error names the command that makes it."""
    from .study import load_results

    pr = get_preset(preset, seeds)
    results = load_results(series, pr, cache)
    if not len(results):
        raise FileNotFoundError(f"no trained models of the {series} series (preset {pr.name}, seeds "
                                f"{','.join(map(str, pr.seeds))}) in the cache; run `python -m hrtem_tl train "
                                f"--series {series} --preset {pr.name}`")
    return evidence(series, results, pr)


def print_scorecards(series: str = "all", preset: str | Preset = "cpu", cache=None, seeds=None) -> None:
    """``python -m hrtem_tl claims``: the sanity line and the scorecard of each series, from the cache."""
    pr = get_preset(preset, seeds)
    print(f"claims of the study, preset {pr.name}, seeds {','.join(map(str, pr.seeds))}")
    for name in ds.series_names(series):
        ev = run_evidence(name, pr, cache)
        card = scorecard(ev)
        holds = int((card.verdict == "holds").sum())
        print(f"\n{sanity_line(ev)}\n{name}: {holds}/{len(card)} claims hold")
        print(format_scorecard(card))


def display_table(card: pd.DataFrame, statistic: bool = True) -> pd.DataFrame:
    """The scorecard as a reader's table: (series,) figure, claim, (statistic,) the study's and this run's number
    and the verdict; the series column appears when the card spans several series."""
    def fmt(x):
        return "–" if np.isnan(x) else f"{x:+.2f}"

    table = pd.DataFrame({"series": card.series, "figure": card.figure, "claim (the study's finding)": card.claim,
                          "statistic": card.statistic, "study": card.study.map(fmt),
                          "this run": card["this run"].map(fmt),
                          "this run, cross-entropy": card["cross-entropy"].map(fmt),
                          "verdict": card.verdict}).reset_index(drop=True)
    if card.series.nunique() < 2:
        table = table.drop(columns="series")
    return table if statistic else table.drop(columns="statistic")


def glue_scorecard(ev: Evidence, glue) -> pd.DataFrame:
    """Glue (myst-nb) each claim's numbers and verdict as ``claim_<key>_{study,run,ce,verdict}``, and the series'
    sanity line and count of holding claims as ``<series>_{sanity,holds,claims}``; returns the scorecard."""
    card = scorecard(ev)
    for _, r in card.iterrows():
        glue(f"claim_{r.key}_study", float(r.study))
        glue(f"claim_{r.key}_run", float(r["this run"]))
        glue(f"claim_{r.key}_ce", float(r["cross-entropy"]))
        glue(f"claim_{r.key}_verdict", r.verdict)
    glue(f"{ev.series}_sanity", sanity_line(ev))
    glue(f"{ev.series}_holds", int((card.verdict == "holds").sum()))
    glue(f"{ev.series}_claims", int(len(card)))
    return card
