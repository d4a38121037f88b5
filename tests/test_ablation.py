"""The ablation (what a small study keeps): arms keyed like every model, its statistics on hand-made cells."""

import numpy as np
import pandas as pd
import pytest

from hrtem_tl import ablation, study
from hrtem_tl.claims.evidence import Evidence
from hrtem_tl.presets import get_preset


def test_an_arm_equal_to_a_preset_reuses_its_models_and_a_new_arm_trains_only_itself():
    cpu = get_preset("cpu")
    same = ablation.Arm("cpu", "cpu", {})
    book_keys = {j.key(cpu) for j in study.grid("structure", cpu) if j.kind == "pretrain"}
    same_keys = {j.key(same.preset("structure")) for j in ablation.arm_jobs(same, "structure", "figure")}
    assert same_keys <= book_keys and len(same_keys) == 2 * 13  # 9 small + 4 large sources, 2 replicates
    crops = ablation.get_arm("cpu 96-pixel crops")
    crop_keys = {j.key(crops.preset("structure")) for j in ablation.arm_jobs(crops, "structure", "figure")}
    assert len(crop_keys) == len(same_keys) and not crop_keys & book_keys
    assert len({j.key(cpu) for j in study.grid("dose", cpu)}) == len(study.grid("dose", cpu))


def test_an_arm_changes_only_pixels_and_training_and_unknown_arms_are_one_line():
    with pytest.raises(ValueError, match="may change only pixel_size, count_pixel_size, crop, epoch_crops, width, "
                                         "epochs, replicates"):
        ablation.Arm("bad", "cpu", {"extent": 100.0}).preset("structure")
    with pytest.raises(ValueError, match=r"arm='nope' is unknown; allowed: cpu, cpu 0.5 Å pixels, "):
        ablation.get_arm("nope")
    assert ablation.arm_sources("structure", "all") == study.ds.SERIES["structure"].sources
    with pytest.raises(ValueError, match="sources='some' is unknown; allowed: figure, all"):
        ablation.arm_sources("structure", "some")


def _evidence(matrix: dict) -> Evidence:
    cells = pd.DataFrame([{"source": s, "target": t, "P": v, "T": v, "freeze": "all"}
                          for s, row in matrix.items() for t, v in row.items()])
    return Evidence("structure", cells)


def test_specialisation_is_the_median_and_minimum_of_p_over_the_targets_own():
    """Hand-made P cells: a source's loss on t over t's own model's, off the diagonal, small particles only."""
    m = {"A_small": {"A_small": 0.1, "B_small": 0.4, "A_large": 9.0},
         "B_small": {"A_small": 0.3, "B_small": 0.2, "A_large": 9.0},
         "A_large": {"A_small": 0.05, "B_small": 9.0, "A_large": 0.1}}
    median, minimum = ablation.specialisation(_evidence(m))
    # off-diagonal small cells: B->A 0.3/0.1 = 3, A->B 0.4/0.2 = 2
    assert median == pytest.approx(2.5) and minimum == pytest.approx(2.0)


def test_fit_and_specialisation_pairs_each_targets_own_fit_with_what_the_others_lose_there():
    """Hand-made P cells and fits: per small target, the median of P(s -> t) / P(t -> t) over the other sources
    beside its own models' fit; the rank correlation is -1 when the better-fitted target always specialises more."""
    m = {"A_small": {"A_small": 0.1, "B_small": 0.4, "C_small": 0.3},
         "B_small": {"A_small": 0.5, "B_small": 0.2, "C_small": 0.3},
         "C_small": {"A_small": 0.3, "B_small": 0.6, "C_small": 0.25}}
    fit = pd.Series({"A_small": 0.1, "B_small": 0.3, "C_small": 0.6})
    points = ablation.fit_and_specialisation(_evidence(m), fit).set_index("target")
    # A: median(0.5/0.1, 0.3/0.1) = 4; B: median(0.4/0.2, 0.6/0.2) = 2.5; C: median(0.3/0.25, 0.3/0.25) = 1.2
    assert points.specialisation.to_dict() == pytest.approx({"A_small": 4.0, "B_small": 2.5, "C_small": 1.2})
    assert points.own_fit.to_dict() == fit.to_dict()
    rho, low, high = ablation.fit_rank_correlation(points.reset_index())
    assert rho == pytest.approx(-1.0) and low <= rho <= high
    assert np.isnan(ablation.fit_rank_correlation(points.reset_index().head(2))[0])  # too few targets


def test_the_studys_own_lattices_specialise_more_where_they_fit_better():
    """On the study's published cells (its diagonal over the constant prediction of its expected particle
    fraction as the fit): the rank correlation over the nine small targets is clearly negative."""
    from hrtem_tl.claims import published

    points = ablation.fit_and_specialisation(published("structure"))
    assert len(points) == 9
    rho, low, high = ablation.fit_rank_correlation(points)
    assert rho == pytest.approx(-0.72, abs=0.01) and high < 0


def test_the_ablation_chart_has_a_tile_per_claim_and_arm():
    rows = []
    for arm in ("cpu", "40 Å crops"):
        for key, verdict in (("structure_symmetry", "holds"), ("size_small_loses", "undecided"),
                             ("size_irons_out", "needs transfers")):
            rows.append({"arm": arm, "series": "structure", "what": arm, "models": 26, "core_seconds": 600.0,
                         "learned": "13/13", "worst_ratio": 0.5, "in_domain": 0.04, "specialisation": 1.2,
                         "specialisation_min": 0.8, "claim": key.replace("_", " "), "key": key, "figure": "Fig 9.2",
                         "study": 0.5, "statistic": 0.3, "low": 0.1, "high": 0.4, "verdict": verdict})
    spec = ablation_chart_spec(pd.DataFrame(rows))
    values = spec["layer"][0]["data"]["values"] if "data" in spec["layer"][0] else spec["data"]["values"]
    assert len(values) == 4 and {v["verdict"] for v in values} == {"holds", "undecided"}
    assert all(np.isfinite(v["study"]) for v in values)


def ablation_chart_spec(table):
    from hrtem_tl.figures import ablation_chart

    return ablation_chart(table).to_dict()


def test_an_arm_on_other_pixels_trains_on_its_own_datasets(tmp_path):
    """A preset travels as a value: an arm that changes a series' pixels makes and loads datasets of its own
    pixels under the base preset's name, and its models have their own keys."""
    arm = ablation.Arm("smoke fine", "smoke", {"pixel_size": 0.25})
    base, fine = get_preset("smoke").for_series("dose"), arm.preset("dose")
    study.ds.simulate_series("dose", fine, tmp_path, progress=False, scheduler="synchronous")
    data = study._data("dose", "30", "val", fine, tmp_path)
    assert data.images.shape[-1] == round(fine.extent / 0.25) == 2 * base.image_pixels
    assert not study.ds.dataset_path("dose", "30", "val", base, tmp_path).exists()
    jobs = ablation.arm_jobs(arm, "dose")
    assert {j.key(fine) for j in jobs}.isdisjoint({j.key(base) for j in jobs})
