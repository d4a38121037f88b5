"""One statistic per finding of the study (STUDY.md section 5), signed so that a positive value supports it:
dose (Fig 9.1), structure and size (Fig 9.2), defocus (Figs 7.1, 6.1, 6.2, 7.2, 8.1)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .. import optics
from .. import structures as st
from ..datasets import particle_lattice
from ..study import MIXTURE_PAIR, main_setting, parsed, sweep_rows
from .evidence import (
    IN_FOCUS,
    Evidence,
    MissingEvidence,
    _log_ratio,
    _numeric_order,
    _per_freeze_median_t,
    _sign,
    _small,
    lattice_names,
    lattice_of,
    log_spread_across_sources,
    matrix,
    off_diagonal,
    spearman,
)

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
    sym = {d: lattice_of(ev, d.rsplit("_", 1)[0]).structure for d in small}
    scores = []
    for t in m.columns:
        same = [m.loc[s, t] for s in m.index if s != t and sym[s] == sym[t] and np.isfinite(m.loc[s, t])]
        other = [m.loc[s, t] for s in m.index if sym[s] != sym[t] and np.isfinite(m.loc[s, t])]
        if same and other:
            scores.append(np.mean([_sign(o - a) for a in same for o in other]))
    if not scores:
        raise MissingEvidence("targets with a same-symmetry and an other-symmetry source")
    return float(np.mean(scores))


def _lattice_mass(lattice) -> float:
    """Mean atomic mass (u) of a lattice's atoms (a lattice, or a built-in one's name): 'lighter elements'."""
    return float(st.get_lattice(lattice).unit_cell().get_masses().mean())


def _symmetry_pairs(domains, ev: Evidence | None = None) -> list[tuple[str, str]]:
    """(lighter, heavier) lattice domains per symmetry class of exactly two lattices (the materials of ``ev``'s
    run: CIF crystals included; without it, built-in lattices)."""
    def material(d):
        name = d.rsplit("_", 1)[0]
        return lattice_of(ev, name) if ev is not None else st.get_lattice(name)

    by_class: dict[str, list[str]] = {}
    for d in domains:
        by_class.setdefault(material(d).structure, []).append(d)
    return [tuple(sorted(m, key=lambda d: _lattice_mass(material(d)))) for m in by_class.values() if len(m) == 2]


def structure_lighter_transfers_better(ev: Evidence) -> float:
    """Per symmetry class of two lattices and per small target t (its own two included), the sign of
    P(heavier -> t) - P(lighter -> t), averaged: > 0 when the lighter source does better on the same targets."""
    small = _small(ev)
    m = matrix(ev, "P", domains=small)
    signs = [_sign(m.loc[heavy, t] - m.loc[light, t]) for light, heavy in _symmetry_pairs(small, ev) for t in m.columns
             if light in m.index and heavy in m.index and np.isfinite(m.loc[heavy, t] - m.loc[light, t])]
    if not signs:
        raise MissingEvidence("symmetry classes of two lattices with cells on common targets")
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
    for name in lattice_names(ev):
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
    main = main_setting(ev.need_models(), ev.preset)
    return pd.DataFrame({"source": main.source, "target": main.target, "freeze": main.freeze,
                         "P": [np.std(list(parsed(p).values())) for p in main[ev.column("P_all")]],
                         "T": [np.std(list(parsed(t).values())) for t in main[ev.column("T_all")]]}
                        ).reset_index(drop=True)


def transfer_not_more_robust(ev: Evidence) -> float:
    """Share of transferred models whose loss spread across the defocus domains did not fall."""
    spread = ood_spread(ev)
    if not len(spread):
        raise MissingEvidence("main-setting transfers")
    return float((spread["T"] >= spread["P"]).mean())


# ---------------------------------------------------------------- optical distance (defocus, dose; issue 17)

def _pixel_size(ev: Evidence) -> float:
    """The pixel of the images behind ``ev``: the run's preset, else the study's 0.2 Å."""
    return ev.preset.pixel_size if ev.preset is not None else 0.2


def distance_table(ev: Evidence, stage: str) -> pd.DataFrame:
    """Off-diagonal cells of ``stage`` with the optical distance of their two domains (``optics``) and log10 of
    the loss over the median of its target column (so that targets of every difficulty share one axis)."""
    m = matrix(ev, stage)
    cells = off_diagonal(m).rename("loss").reset_index()
    cells.columns = ["source", "target", "loss"]
    scope = tuple(sorted(ev.preset.microscope.items())) if ev.preset is not None else ()
    material = particle_lattice(ev.preset)
    cells["distance"] = [optics.domain_distance(ev.series, a, b, _pixel_size(ev), scope, material)
                         for a, b in zip(cells.source, cells.target)]
    cells["relative"] = np.log10(cells.loss / cells.groupby("target").loss.transform("median"))
    return cells


def distance_cells(ev: Evidence) -> pd.DataFrame:
    """:func:`distance_table` of P and of T in one table, with a ``stage`` column (the distance charts)."""
    return pd.concat([distance_table(ev, stage).assign(stage=stage) for stage in ("P", "T")], ignore_index=True)


def _per_target(ev: Evidence, stage: str) -> tuple[float, float]:
    """Over target columns with >= 3 sources: the mean Spearman correlation of distance and loss, and the median
    least-squares slope of log10 loss against distance."""
    cells = distance_table(ev, stage)
    rhos, slopes = [], []
    for _, col in cells.groupby("target"):
        if len(col) >= 3 and col.distance.nunique() > 1:
            rhos.append(spearman(col.distance, col.loss))
            slopes.append(np.polyfit(col.distance, np.log10(col.loss), 1)[0])
    if not rhos:
        raise MissingEvidence("target columns with three or more pretraining domains")
    finite = [r for r in rhos if np.isfinite(r)]  # a column of equal losses has no rank correlation
    return (float(np.mean(finite)) if finite else float("nan")), float(np.median(slopes))


def loss_grows_with_distance(ev: Evidence) -> float:
    """Mean over targets of Spearman(optical distance source-target, P), off-diagonal: > 0 when the loss after
    pretraining grows with the distance between pretraining and target domain."""
    return _per_target(ev, "P")[0]


def distance_fades_after_transfer(ev: Evidence) -> float:
    """(slope(P) - slope(T)) / (|slope(P)| + |slope(T)|), the median per-target least-squares slopes of log10
    loss on the optical distance: > 0 when transfer learning weakens the loss's growth with distance, +1 when it
    removes or reverses it (bounded, so a flat P slope cannot blow it up)."""
    slope_p, slope_t = _per_target(ev, "P")[1], _per_target(ev, "T")[1]
    if slope_p == 0 and slope_t == 0:
        raise MissingEvidence("a loss that depends on the distance")
    return float((slope_p - slope_t) / (abs(slope_p) + abs(slope_t)))
