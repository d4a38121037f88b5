"""The study's claims as statistics: known answers on hand-made tables, the published values, smoke end to end."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from hrtem_tl import claims
from hrtem_tl.datasets import SERIES
from hrtem_tl.model import FREEZE_OPTIONS
from hrtem_tl.presets import get_preset
from hrtem_tl.structures import LATTICES


def cells_evidence(series: str, p_of, t_of, domains, preset=None, models=None) -> claims.Evidence:
    """Evidence whose cells are P = p_of(source, target), T = t_of(source, target) for every freezing option."""
    rows = [{"freeze": f, "source": a, "target": b, "P": p_of(a, b), "T": t_of(a, b) if a != b else p_of(a, b)}
            for f in (*FREEZE_OPTIONS, "all") for a, b in itertools.product(domains, domains)]
    return claims.Evidence(series, pd.DataFrame(rows), models, preset, metric="ce")


def shuffled(ev: claims.Evidence, seed: int) -> claims.Evidence:
    """The same cell values, shuffled across cells (one permutation for P, another for T)."""
    rng = np.random.default_rng(seed)
    cells = ev.cells.copy()
    for stage in ("P", "T"):
        cells[stage] = rng.permutation(cells[stage].to_numpy())
    return claims.Evidence(ev.series, cells, ev.models, ev.preset, ev.metric)


def verdicts(ev: claims.Evidence, keys=None) -> dict:
    return {c.key: claims.verdict(c, claims.measure(c, ev), claims.study_value(c))
            for c in claims.get_claims(ev.series) if keys is None or c.key in keys}


# ---------------------------------------------------------------- hand-made dose table

DOSES = SERIES["dose"].domains


def dose_evidence() -> claims.Evidence:
    """Low-dose pretraining is worse, more so towards high doses; after transfer only the target's dose counts."""
    floor = {d: 0.02 * (600 / float(d)) ** 0.5 for d in DOSES}  # lower loss at higher dose

    def p_of(a, b):
        gap = np.log(float(b) / float(a))  # > 0: carried from low to high dose
        return floor[b] * (1 + 3 * gap if gap > 0 else 1 - 0.1 * gap)

    return cells_evidence("dose", p_of, lambda a, b: floor[b] * 1.05, DOSES)


def test_dose_claims_hold_on_a_table_built_to_satisfy_them():
    assert set(verdicts(dose_evidence()).values()) == {"holds"}


def test_dose_claims_fail_on_the_same_values_shuffled():
    for seed in (0, 1):
        found = verdicts(shuffled(dose_evidence(), seed), ["dose_low_to_high", "dose_source_fades"])
        assert "holds" not in found.values(), found


def test_dose_statistics_have_their_known_values():
    ev = dose_evidence()
    assert claims.dose_low_to_high_loses_more(ev) == 1.0  # every pair
    assert claims.dose_target_snr(ev) == pytest.approx(1.0)
    assert claims.dose_low_pretraining_worse(ev) == pytest.approx(1.0)


# ---------------------------------------------------------------- hand-made structure table

def structure_evidence() -> claims.Evidence:
    small = [f"{n}_small" for n in LATTICES]
    domains = small + [f"{n}_large" for n in LATTICES]
    classes = sorted({lat.structure for lat in LATTICES.values()})  # one floor per symmetry class
    floor = {d: 0.01 * (1 + classes.index(LATTICES[d.rsplit("_", 1)[0]].structure)) for d in small}
    floor.update({f"{n}_large": 0.8 * floor[f"{n}_small"] for n in LATTICES})
    sym = {d: LATTICES[d.rsplit("_", 1)[0]].structure for d in domains}
    mass = {d: claims._lattice_mass(d.rsplit("_", 1)[0]) for d in domains}

    def p_of(a, b):
        penalty = 1 + (2.0 if sym[a] != sym[b] else 0.2 * (mass[a] > mass[b]))
        if a.rsplit("_", 1)[0] == b.rsplit("_", 1)[0] and a != b:  # the same lattice, the other size
            penalty = 1.5
        return floor[b] * penalty

    return cells_evidence("structure", p_of, lambda a, b: floor[b] * 1.02, domains)


def test_structure_claims_hold_on_a_table_built_to_satisfy_them():
    assert set(verdicts(structure_evidence()).values()) == {"holds"}


def test_structure_claims_fail_on_the_same_values_shuffled():
    keys = ["structure_symmetry", "structure_target"]
    for seed in (0, 1):
        found = verdicts(shuffled(structure_evidence(), seed), keys)
        assert "holds" not in found.values(), found


# ---------------------------------------------------------------- hand-made defocus tables, with per-model rows

def defocus_models(preset) -> pd.DataFrame:
    """Per-model rows of a defocus grid: more images and larger learning rates help, encoder freezing costs a
    little, mixtures match transfers, half of the models grow less robust across domains after transfer."""
    rows, lr_pre = [], preset.main_lr[0]
    domains = SERIES["defocus"].domains
    rng = np.random.default_rng(0)
    for k, (a, b, f, n, (lp, lt)) in enumerate(itertools.product(
            ["-100"], domains, FREEZE_OPTIONS, preset.transfer_sizes, preset.lr_pairs)):
        t = 0.02 * (1 + 16 / n) * (1.1 if f == "encoder" else 1.0) * (1 if lp == max(preset.lr_pairs)[0] else 1.2)
        t *= np.exp(rng.normal(0, 0.02 * 16 / n))
        spread_p = {d: 0.05 for d in domains} | {b: 0.04}
        spread_t = {d: (0.05 if k % 2 else 0.02) + 0.001 * i for i, d in enumerate(domains)}
        rows.append(dict(series="defocus", kind="transfer", source=a, target=b, freeze=f, seed=0, lr_pretrain=lp,
                         lr_transfer=lt, transfer_size=n, T=t, P=2 * t, P_all=json.dumps(spread_p),
                         T_all=json.dumps(spread_t), trainable_params=100 if f == "encoder" else 500,
                         images_per_second=1200 if f == "encoder" else 1000, mixture=None))
    for mix in preset.mixtures:
        rows.append(dict(series="defocus", kind="mixture", source="-100", target="50", freeze=None, seed=0,
                         lr_pretrain=lr_pre, lr_transfer=None, transfer_size=None, T=0.02 * (1 + 16 / 16),
                         mixture=json.dumps(mix)))
    return pd.DataFrame(rows)


def test_defocus_claims_hold_on_tables_built_to_satisfy_them():
    preset = get_preset("cpu")
    domains = SERIES["defocus"].domains

    def t_of(a, b):
        return 0.03 if b == "0" else 0.01 * (1 + abs(float(b)) / 500)

    ev = cells_evidence("defocus", lambda a, b: t_of(a, b) * (1 + abs(float(a) - float(b)) / 100), t_of, domains,
                        preset, defocus_models(preset))
    ev.cells.loc[ev.cells.freeze == "encoder", "T"] *= 1.2
    result = verdicts(ev)
    assert set(result.values()) == {"holds"}, result


def test_equivalence_and_share_claims_have_their_own_rule():
    decoder = next(c for c in claims.CLAIMS if c.key == "hyper_decoder_alike")
    assert claims.verdict(decoder, np.log10(1.2), np.nan) == "holds"
    assert claims.verdict(decoder, -np.log10(1.3), np.nan) == "contradicts"
    assert claims.verdict(decoder, 0.0, np.nan, -0.05, 0.2) == "undecided"  # the interval leaves the band
    ood = next(c for c in claims.CLAIMS if c.key == "ood")
    assert claims.verdict(ood, 0.25, np.nan) == "holds" and claims.verdict(ood, 0.2, np.nan) == "weaker"
    assert claims.verdict(ood, 0.0, np.nan) == "contradicts"  # every model more robust after transfer
    size = next(c for c in claims.CLAIMS if c.key == "size_small_loses")
    study = claims.study_value(size)
    assert claims.verdict(size, 0.6 * study, study) == "holds"
    assert claims.verdict(size, 0.4 * study, study) == "weaker"  # the right direction, but under half the effect


def test_verdict_words_read_the_interval():
    size = next(c for c in claims.CLAIMS if c.key == "size_small_loses")
    study = claims.study_value(size)  # +0.16: bar +0.08
    edge = claims.bar(size, study)
    assert claims.verdict(size, 2 * edge, study, 0.5 * edge, 3 * edge) == "holds"
    assert claims.verdict(size, 2 * edge, study, -0.1, 3 * edge) == "undecided"  # reaches the bar, spans 0
    assert claims.verdict(size, -0.1, study, -0.2, -0.01) == "contradicts"
    assert claims.verdict(size, -0.1, study, -0.2, 0.0) == "contradicts"  # at or below 0
    assert claims.verdict(size, 0.5 * edge, study, 0.2 * edge, 0.8 * edge) == "weaker"
    assert claims.verdict(size, 0.5 * edge, study, 0.2 * edge, 1.5 * edge) == "undecided"
    assert claims.verdict(size, np.nan, study, 0, 1) == "no data"


def test_replicates_to_decide_grow_as_the_interval_must_shrink():
    size = next(c for c in claims.CLAIMS if c.key == "size_small_loses")
    study = claims.study_value(size)
    edge = claims.bar(size, study)
    # the statistic at twice the bar, the interval reaching 0.1 below 0: it must shrink to 2 edge / (2 edge + 0.1)
    need = claims.replicates_to_decide(size, 2 * edge, study, -0.1, 3 * edge, 4)
    assert need == np.ceil(4 * ((2 * edge + 0.1) / (2 * edge)) ** 2)
    assert np.isnan(claims.replicates_to_decide(size, 2 * edge, study, edge, 3 * edge, 4))  # decided already
    assert claims.replicates_to_decide(size, 0.0, study, -0.1, 0.1, 4) == np.inf  # sits on the boundary


# ---------------------------------------------------------------- replicates and the bootstrap

def dose_results(effect: float, replicates: int = 4, noise: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """A results table of the dose series, as ``study`` writes it: ``replicates`` pretrainings per source whose
    P carries a low -> high penalty of size ``effect`` and log-normal noise, and one transfer per cell and
    freezing option whose T depends on the target only."""
    pr = get_preset("cpu")
    rng = np.random.default_rng(seed)
    floor = {d: 0.02 * (600 / float(d)) ** 0.5 for d in DOSES}  # below 2/3 of a constant prediction
    rows = []
    for s, r in itertools.product(DOSES, range(replicates)):
        p = {t: floor[t] * (1 + effect * max(np.log(float(t) / float(s)), 0)) * np.exp(rng.normal(0, noise))
             for t in DOSES}
        rows.append(dict(series="dose", kind="pretrain", source=s, target=None, freeze=None, seed=0, replicate=r,
                         lr_pretrain=pr.main_lr[0], lr_transfer=None, transfer_size=None, mixture=None,
                         P_all=json.dumps(p), P_all_study=json.dumps(p), constant_loss=0.5))
    for s, t, f in itertools.product(DOSES, DOSES, FREEZE_OPTIONS):
        if s != t:
            value = floor[t] * 1.05 * np.exp(rng.normal(0, noise))
            rows.append(dict(series="dose", kind="transfer", source=s, target=t, freeze=f, seed=0, replicate=0,
                             lr_pretrain=pr.main_lr[0], lr_transfer=pr.main_lr[1], transfer_size=pr.transfer_size,
                             mixture=None, T=value, T_study=value))
    return pd.DataFrame(rows)


def test_p_cells_pool_every_pretraining_of_the_source():
    table = dose_results(0.0, replicates=2, noise=0.0)
    p30 = json.loads(table.P_all_study[0])  # source 30, replicate 0
    table.loc[1, "P_all_study"] = json.dumps({t: 3 * v for t, v in p30.items()})  # replicate 1: three times worse
    ev = claims.evidence("dose", table, "cpu")
    m = claims.matrix(ev, "P", "encoder")  # P does not depend on the freezing option
    assert m.loc["30", "600"] == pytest.approx(np.median([p30["600"], 3 * p30["600"]]))
    assert claims.matrix(ev, "P", "none").equals(m)
    models = claims.model_table(table, "dose", "cpu")
    assert len(models[(models.stage == "P") & (models.source == "30") & (models.target == "600")]) == 2


def test_a_strong_effect_holds_with_a_narrow_interval():
    ev = claims.evidence("dose", dose_results(effect=3.0), "cpu")
    card = claims.scorecard(ev, n_bootstrap=50).set_index("key")
    row = card.loc["dose_low_to_high"]
    assert row["this run"] == 1.0 and row.low == 1.0 and row.high == 1.0 and row.verdict == "holds"
    assert card.loc["dose_tracks_snr", "verdict"] == "holds"
    assert (card.replicates == 4).all()


def test_without_the_effect_the_claim_does_not_hold():
    for seed in (0, 1):
        ev = claims.evidence("dose", dose_results(effect=0.0, noise=0.3, seed=seed), "cpu")
        row = claims.scorecard(ev, n_bootstrap=50).set_index("key").loc["dose_low_to_high"]
        assert row.verdict in {"undecided", "contradicts"}, row
        assert row.low <= row["this run"] <= row.high


def test_bootstrap_draws_resample_within_units():
    table = dose_results(0.0, replicates=3)
    units = claims.strata(table)
    assert len(units) == 5 + 5  # the pretrainings of each source; the transfers from each source
    transfer_groups = [g for g in units if len(g[0]) > 1]
    assert len(transfer_groups) == 5 and all(len(g) == 1 and len(g[0]) == 4 for g in transfer_groups)
    draw = claims.resample(table, units, np.random.default_rng(0))
    assert len(draw) == len(table)
    assert (draw.groupby(["kind", "source"]).size() == table.groupby(["kind", "source"]).size()).all()


def _with_second_pretraining(table: pd.DataFrame, rows: pd.Series) -> pd.DataFrame:
    """``table`` with the chosen transfer ``rows`` again, as from a second pretrained model (replicate 1) whose
    transfers lose ten times as much."""
    second = table[rows].assign(replicate=1, T=lambda t: t["T"] * 10, T_study=lambda t: t.T_study * 10)
    return pd.concat([table, second], ignore_index=True)


def test_bootstrap_draws_whole_pretrained_models_for_the_transfers():
    """Transfers from two pretrainings of a source: a draw takes each pretraining's transfers as a block, so a
    draw can hold the transfers of one pretraining twice (the spread between pretrainings reaches T)."""
    table = dose_results(0.0, replicates=2)
    table = _with_second_pretraining(table, table.kind == "transfer")
    units = claims.strata(table)
    rng = np.random.default_rng(1)
    shares = []
    for _ in range(40):
        draw = claims.resample(table, units, rng)
        tr = draw[(draw.kind == "transfer") & (draw.source == "30")]
        shares.append((tr.replicate == 1).mean())
    assert set(np.round(shares, 6)) <= {0.0, 0.5, 1.0} and {0.0, 1.0} <= set(np.round(shares, 6))


def test_cells_transferred_from_more_pretrainings_are_drawn_among_those_only():
    """A second pretraining of one source transferred to one target only (the defocus sweep's and baseline
    pair's cells, ``Preset.sweep_replicates``): every draw keeps every cell of the other targets (drawn among the
    pretrainings that hold them), and that target's cell draws whole pretrainings from its two."""
    table = dose_results(0.0, replicates=2)
    transfers = table[table.kind == "transfer"]
    table = _with_second_pretraining(table, (table.kind == "transfer") & (table.source == "30")
                                     & (table.target == "600"))
    units = claims.strata(table)
    rng = np.random.default_rng(2)
    shares = []
    for _ in range(40):
        draw = claims.resample(table, units, rng)
        tr = draw[(draw.kind == "transfer") & (draw.source == "30")]
        assert set(tr.target) == set(transfers[transfers.source == "30"].target)
        assert (tr[tr.target != "600"].replicate == 0).all()
        shares.append((tr[tr.target == "600"].replicate == 1).mean())
    assert {0.0, 1.0} <= set(np.round(shares, 6)) <= {0.0, 0.5, 1.0}


def test_the_lighter_statistic_compares_sources_on_the_same_targets():
    # only the lighter of each class is better, by a constant factor on every target: +1
    small = [f"{n}_small" for n in LATTICES]
    light = {pair[0] for pair in claims._symmetry_pairs(small)}
    ev = cells_evidence("structure", lambda a, b: 0.5 if a in light else 1.0, lambda a, b: 1.0, small)
    assert claims.structure_lighter_transfers_better(ev) == 1.0
    assert len(claims._symmetry_pairs(small)) == 4  # wurtzite, fcc, diamond, spinel (bcc Fe alone)


# ---------------------------------------------------------------- the published values

@pytest.mark.parametrize("claim", claims.CLAIMS, ids=lambda c: c.key)
def test_the_studys_own_numbers_satisfy_its_claims(claim):
    study = claims.measure(claim, claims.published(claim.series))
    if np.isfinite(study):
        assert claims.verdict(claim, study, study) == "holds", (claim.key, study)
    else:  # not in the published tables: the study's stated number, or direction only
        assert claim.key in {"hyper_images_loss", "hyper_images_spread", "hyper_lr", "cost_parameters", "cost_time",
                             "baseline", "ood"}


@pytest.mark.parametrize("series", ["dose", "defocus", "structure"])
def test_the_studys_own_pretrainings_pass_the_learned_rule(series):
    table = claims.published_learning(series)
    assert len(table) == {"dose": 5, "defocus": 5, "structure": 16}[series]  # the diagonals published
    assert table.learned.all(), table[~table.learned]
    assert table.ratio.between(0, claims.LEARNED_FRACTION).all()


def test_the_study_particle_fraction_follows_the_geometry():
    # 3 particles on average, radius uniform in 1-2 nm: 3 pi E[r^2] / (128 A)^2, E[r^2] = 233.3 A^2
    assert claims.study_particle_fraction("structure", "Cu_small") == pytest.approx(3 * np.pi * 233.33 / 128**2,
                                                                                    rel=1e-4)
    assert (claims.study_particle_fraction("structure", "Cu_small")
            < claims.study_particle_fraction("dose", "30") < claims.study_particle_fraction("structure", "Cu_large"))


def test_published_cells_cover_the_heatmaps():
    for series, n in (("dose", 5), ("defocus", None), ("structure", 9)):
        cells = claims.reference_cells(series)
        assert set(cells.freeze) == {"all", *FREEZE_OPTIONS}
        if n:
            assert len(claims.matrix(claims.published(series), "P", domains=claims._small(
                claims.published(series)) if series == "structure" else None)) == n
    assert claims.agreement(claims.published("dose"), "T") == pytest.approx(1.0)


def test_the_rank_correlation_is_nan_on_domains_the_study_did_not_publish():
    """A run on gold and a CIF crystal (none published) or with one published lattice among them: no correlation."""
    for domains in (["Au_small", "NaCl_small", "CeO2_small"], ["Au_small", "NaCl_small", "Cu_small"]):
        ev = cells_evidence("structure", lambda a, b: 1.0 + (a != b) + 0.1 * len(b), lambda a, b: 1.0, domains)
        assert np.isnan(claims.agreement(ev, "P", domains))


# ---------------------------------------------------------------- smoke end to end

def test_claims_command_on_the_smoke_cache_reports_statistics_but_no_verdicts(smoke_cache):
    from hrtem_tl import study

    study.run_study("dose", "smoke", smoke_cache, device="cpu", scheduler="synchronous", progress=False)
    env = dict(os.environ, HRTEM_TL_CACHE=str(smoke_cache))
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "claims", "--preset", "smoke", "--series", "dose"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "sources below 0.67 x the constant-prediction loss (median over 2 pretrainings each" in out
    assert "test scale: statistics only, no verdicts" in out
    assert "90 % bootstrap intervals" in out and "90 % interval" in out
    assert "no verdict (test scale)" in out and " holds" not in out and " contradicts" not in out
    lines = [line for line in out.splitlines() if "Fig 9.1" in line]
    assert len(lines) == len(claims.get_claims("dose"))
    assert sum("[" in line and "]" in line for line in lines) >= 2  # the P claims have intervals


def test_claims_command_without_models_names_the_command(tmp_path):
    env = dict(os.environ, HRTEM_TL_CACHE=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "claims", "--preset", "smoke", "--series", "dose"],
                            capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: no trained models of the dose series")
    assert "python -m hrtem_tl train --series dose --preset smoke" in result.stderr


def test_claims_error_gives_the_whole_command_with_seeds_and_cache(tmp_path):
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "claims", "--preset", "smoke", "--series", "dose",
                             "--seeds", "7", "--cache", str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert f"python -m hrtem_tl train --series dose --preset smoke --seeds 7 --cache {tmp_path}" in line


def test_one_pretraining_per_source_gives_no_interval_and_no_verdict():
    card = claims.scorecard(claims.evidence("dose", dose_results(effect=3.0, replicates=1), "cpu"), n_bootstrap=20)
    row = card.set_index("key").loc["dose_low_to_high"]
    assert row["this run"] == 1.0 and np.isnan(row.low) and row.verdict == claims.SINGLE
    assert "undecided (one pretraining per source)" in claims.verdict_counts(card)
