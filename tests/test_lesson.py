"""The hands-on chapter's experiment: its grid, the equal budgets of transfer and from-scratch training, the
class preset, the statistics and intervals of its conclusions, and the tables a smoke run gives."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from hrtem_tl import lesson, study
from hrtem_tl.claims import lesson as lesson_claims
from hrtem_tl.presets import PRESETS, get_preset


def test_the_lesson_grid_pairs_every_transfer_with_models_from_scratch():
    pr = get_preset("class")
    jobs = lesson.grid(pr)
    draws = pr.lesson_replicates * len(pr.seeds)
    kinds = pd.Series([j.kind for j in jobs]).value_counts()
    assert kinds["pretrain"] == draws
    assert kinds["transfer"] == len(pr.lesson_sizes) * 3 * draws
    assert kinds["scratch"] == len(pr.lesson_sizes) * draws
    source, target = pr.lesson_pair
    assert {j.source for j in jobs if j.kind != "scratch"} == {source}
    assert {j.target for j in jobs if j.kind != "pretrain"} == {target}
    assert len({j.key(pr) for j in jobs}) == len(jobs)
    # the lesson's pretrainings are the defocus series' own where the series has them (trained once)
    series_keys = {j.key(pr) for j in study.grid(pr.lesson_series, pr) if j.kind == "pretrain"}
    shared = [j for j in jobs if j.kind == "pretrain" and j.replicate < pr.n_replicates(pr.lesson_series)]
    assert shared and all(j.key(pr) in series_keys for j in shared)


@pytest.mark.parametrize("name", ["class", "cpu", "paper"])
def test_transfers_and_models_from_scratch_train_as_long_as_a_pretraining(name):
    pr = get_preset(name)
    source, target = pr.lesson_pair
    pretraining = study.Job(pr.lesson_series, "pretrain", source, 0, pr.main_lr[0])
    n_source = pr.n_train

    def minibatches(job, n):
        cfg = study._config(job, pr, 1e-3, pr.epochs, n)
        forms = 8 if cfg.augment == "all8" else 1
        return n * forms * cfg.crops_per_image / cfg.batch_size

    reference = minibatches(pretraining, n_source)
    for job in lesson.grid(pr):
        if job.kind == "pretrain":
            continue
        assert minibatches(job, job.transfer_size) == pytest.approx(reference, rel=0.5 / job.transfer_size + 0.02)
    # the study's own transfers see each image once per epoch
    protocol = lesson.variant_grid(pr, "protocol")
    assert all(study._config(j, pr, 1e-3, pr.epochs, j.transfer_size).crops_per_image == 1 for j in protocol)


def test_budget_leaves_the_keys_of_existing_models_alone_and_rejects_unknown_values():
    cpu = get_preset("cpu")
    job = study.Job("dose", "pretrain", "30", 0, cpu.main_lr[0])
    assert job.key(cpu) == "4db3cf323d45c777"  # the golden key of test_train: budget None is left out of keys
    budgeted = replace(job, kind="transfer", target="600", freeze="none", lr_transfer=1e-3, transfer_size=8)
    assert replace(budgeted, budget="pretraining").key(cpu) != budgeted.key(cpu)
    with pytest.raises(ValueError, match="budget='long' is unknown; allowed"):
        study._config(replace(budgeted, budget="long"), cpu, 1e-3, 6, 8)


def test_the_class_preset_shares_the_cpu_data_and_fits_a_lab_session():
    cls, cpu = get_preset("class"), get_preset("cpu")
    assert cls.simulation_params() == cpu.simulation_params()  # the same scenes: a cpu cache serves a class
    assert (cls.n_train, cls.n_val, cls.structure_train, cls.structure_val) == (
        cpu.n_train, cpu.n_val, cpu.structure_train, cpu.structure_val)
    assert all(cls.n_replicates(s) >= 2 for s in ("dose", "defocus", "structure"))  # every P statistic: an interval
    sizes = {s: (sum(study.grid_size(s, cls).values()), sum(study.grid_size(s, cpu).values()))
             for s in ("dose", "defocus", "structure")}
    assert all(ours <= theirs for ours, theirs in sizes.values())  # never more models than cpu
    assert sum(ours for ours, _ in sizes.values()) < sum(theirs for _, theirs in sizes.values())
    assert cls.lesson_pair == ("-100", "0") and max(cls.lesson_sizes) <= cls.n_train
    assert cls.lesson_replicates >= 2 and cls.lesson_sizes[0] == 1
    for pr in PRESETS.values():
        lesson.check(pr)


@pytest.mark.parametrize("change, message", [
    ({"lesson_pair": ("-100", "7")}, "lesson_pair target='7' is not a defocus domain; allowed"),
    ({"lesson_pair": ("0", "0")}, "must name two different domains"),
    ({"lesson_sizes": (8, 4)}, "must be increasing sizes in 1..64"),
    ({"lesson_sizes": (1, 500)}, "must be increasing sizes in 1..64"),
    ({"lesson_replicates": 1}, "lesson_replicates=1 must be at least 2"),
])
def test_bad_lesson_settings_get_a_one_line_error(change, message):
    with pytest.raises(ValueError, match=message):
        lesson.grid(replace(get_preset("cpu"), **change))


def _table(scratch: dict, transfer: dict, replicates: int = 4, spread: float = 0.02) -> pd.DataFrame:
    """A lesson model table whose medians per size are ``scratch`` and ``transfer`` (study's scale)."""
    rng, rows = np.random.default_rng(1), []
    for r in range(replicates):
        rows.append((lesson.PRETRAINED_ONLY, "-", 0, 0, r, 0.3, 0.3))
        for n in scratch:
            noise = 1 + spread * rng.standard_normal(2)
            rows.append((lesson.SCRATCH, "-", n, 0, r, scratch[n] * noise[0], scratch[n] * noise[0]))
            for freeze in ("none", "encoder", "decoder"):
                rows.append((lesson.TRANSFER, freeze, n, 0, r, transfer[n] * noise[1], transfer[n] * noise[1]))
    return pd.DataFrame(rows, columns=lesson.MODEL_COLUMNS)


def test_gap_statistics_on_a_table_built_for_them():
    models = _table({1: 0.4, 8: 0.12, 64: 0.05}, {1: 0.1, 8: 0.08, 64: 0.05}, spread=0.0)
    gaps = lesson_claims.gaps(models)
    assert gaps[1] == pytest.approx(np.log10(4)) and gaps[64] == pytest.approx(0.0)
    assert lesson_claims.transfer_beats_scratch(models) == pytest.approx(np.log10(4))
    assert lesson_claims.gap_closes(models) == pytest.approx(np.log10(4))
    assert lesson_claims.images_saved(models) == (1, 64)  # from scratch needs 64 images to match transfer on 1


def test_lesson_verdicts_hold_undecide_and_contradict_as_the_intervals_say():
    clear = lesson_claims.scorecard(_table({1: 0.4, 64: 0.05}, {1: 0.1, 64: 0.05})).set_index("key")
    assert clear.loc["transfer_beats_scratch", "verdict"] == "holds"
    assert clear.loc["transfer_beats_scratch", "low"] > lesson_claims.BAR
    assert clear.loc["gap_1", "low"] <= clear.loc["gap_1", "this run"] <= clear.loc["gap_1", "high"]
    noisy = lesson_claims.scorecard(_table({1: 0.11, 64: 0.05}, {1: 0.1, 64: 0.05}, spread=0.5)).set_index("key")
    assert noisy.loc["transfer_beats_scratch", "verdict"] == "undecided"
    reversed_ = lesson_claims.scorecard(_table({1: 0.05, 64: 0.05}, {1: 0.2, 64: 0.05})).set_index("key")
    assert reversed_.loc["transfer_beats_scratch", "verdict"] == "contradicts"


@pytest.fixture(scope="module")
def smoke_lesson(smoke_cache):
    lesson.run("smoke", smoke_cache, "cpu", scheduler="synchronous", progress=False)
    return lesson.model_table("smoke", smoke_cache), lesson.curve_table("smoke", smoke_cache)


def test_a_smoke_lesson_gives_every_model_its_loss_and_its_curves(smoke_lesson, smoke_cache):
    models, curves = smoke_lesson
    pr = get_preset("smoke")
    assert len(models) == len(lesson.grid(pr))
    assert set(models.method) == set(lesson.METHODS)
    assert (models.loss > 0).all() and (models.loss_study >= 0).all()
    per_model = curves.groupby(["model", "size", "split"]).epoch.max()
    assert (per_model == pr.epochs).all()  # every epoch of every model, training and validation
    assert set(curves.split) == {"train", "validation"}
    trained = curves[curves.method != "pretraining"]
    assert trained.groupby(["model", "size"]).split.nunique().eq(2).all()
    for variant in lesson.VARIANTS:
        table = lesson.variant_table(pr, variant, smoke_cache)
        assert set(table.variant) == {"lesson", lesson.VARIANTS[variant]}
