import json
import re

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from hrtem_tl import study
from hrtem_tl.model import UNet, count_trainable, freeze
from hrtem_tl.presets import get_preset
from hrtem_tl.train import (
    Data,
    TrainConfig,
    batches,
    constant_prediction_loss,
    dihedral,
    fit,
    load_model,
    new_model,
    particle_fraction_of,
    save_model,
    select_loss,
    study_scale_constant_loss,
    study_scale_loss,
)


def test_paper_width_has_about_14_million_parameters():
    model = UNet(64)
    total = count_trainable(model)
    assert 13.5e6 < total < 15e6
    enc = sum(p.numel() for p in model.encoder.parameters())
    assert 0.75 < enc / total < 0.85  # freezing the encoder removes ~80 % (STUDY.md Fig 6.2)
    assert freeze(model, "encoder") == total - enc
    assert freeze(model, "decoder") == enc
    assert freeze(model, "none") == total
    with pytest.raises(ValueError, match="freeze='all' is unknown; allowed: none, encoder, decoder"):
        freeze(model, "all")


def test_output_is_two_class_logits_at_input_size():
    out = UNet(4)(torch.zeros(2, 1, 64, 96))
    assert out.shape == (2, 2, 64, 96)


@pytest.mark.parametrize("frozen, moving", [("encoder", "decoder"), ("decoder", "encoder")])
def test_freezing_really_freezes(frozen, moving):
    torch.manual_seed(0)
    model = UNet(4)
    freeze(model, frozen)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    x, y = torch.randn(4, 1, 32, 32), torch.randint(0, 2, (4, 32, 32))
    F.cross_entropy(model(x), y).backward()
    opt.step()
    after = model.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        if name.startswith(frozen):
            assert same, f"{name} of the frozen {frozen} changed"  # weights and batch-norm statistics
    assert any(not torch.equal(before[n], after[n]) for n in before if n.startswith(moving) and "weight" in n)


def test_cross_entropy_of_a_perfect_prediction_is_zero():
    y = torch.randint(0, 2, (2, 16, 16))
    logits = F.one_hot(y, 2).permute(0, 3, 1, 2).float() * 30
    assert F.cross_entropy(logits, y).item() < 1e-6
    # and no softmax artefact: the published floor would be log(1 + 1/e) = 0.3133
    assert F.cross_entropy(torch.softmax(logits, 1), y).item() == pytest.approx(np.log(1 + 1 / np.e), abs=1e-4)


@pytest.mark.parametrize("members", [1, 3])
def test_margin_losses_equal_softmax_cross_entropy_and_the_study_scale(members):
    from hrtem_tl.train import _member_logits, class_margin, margin_cross_entropy, margin_study_loss

    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 2 * members, 8, 8, generator=gen) * 6  # margins up to ~+-30: both tails
    masks = torch.randint(0, 2, (4, members, 8, 8), generator=gen)
    z = class_margin(logits.to(torch.bfloat16), masks if members > 1 else masks[:, 0])
    assert z.shape == (4, members, 8, 8) and z.dtype == torch.float32
    pairs = _member_logits(logits.to(torch.bfloat16).float(), members)  # (N, 2, K, H, W)
    reference = F.cross_entropy(pairs, masks, reduction="none")
    torch.testing.assert_close(margin_cross_entropy(z), reference, rtol=1e-5, atol=1e-6)
    study = torch.stack([study_scale_loss(pairs[:, :, k], masks[:, k]) for k in range(members)], dim=1)
    torch.testing.assert_close(margin_study_loss(z), study, rtol=1e-5, atol=1e-6)
    # the gradient a training step takes: softmax minus the one-hot target, per member
    mine = logits.clone().requires_grad_(True)
    margin_cross_entropy(class_margin(mine, masks if members > 1 else masks[:, 0])).sum().backward()
    theirs = logits.clone().requires_grad_(True)
    F.cross_entropy(_member_logits(theirs, members), masks, reduction="sum").backward()
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fraction", [0.05, 0.134, 0.25, 0.3, 0.45, 0.5])
def test_constant_prediction_losses_are_the_best_constant_on_each_scale(fraction):
    masks = torch.zeros(1, 100, 100, dtype=torch.long)
    masks.view(-1)[: int(fraction * 10_000)] = 1
    entropy = constant_prediction_loss(masks)
    assert particle_fraction_of(entropy) == pytest.approx(fraction, abs=1e-6)
    # the best constant probability of the particle class, found by brute force over a fine grid of logits
    best_ce, best_study = np.inf, np.inf
    for q in np.linspace(1e-4, 1 - 1e-4, 2001):
        logits = torch.tensor([np.log(1 - q), np.log(q)], dtype=torch.float32).view(1, 2, 1, 1).expand(1, 2, 100, 100)
        best_ce = min(best_ce, F.cross_entropy(logits, masks).item())
        best_study = min(best_study, study_scale_loss(logits, masks).mean().item())
    assert entropy == pytest.approx(best_ce, abs=1e-4)
    assert study_scale_constant_loss(fraction) == pytest.approx(best_study, abs=1e-4)
    # on the study's scale a constant prediction costs about the error rate of calling every pixel background
    if fraction <= 1 / (1 + np.e):
        assert study_scale_constant_loss(fraction) == pytest.approx(fraction, abs=1e-6)


def test_dihedral_group_has_eight_distinct_members():
    x = torch.arange(9.0).reshape(3, 3)
    forms = {tuple(dihedral(x, k).flatten().tolist()) for k in range(8)}
    assert len(forms) == 8


@pytest.mark.parametrize("augment, crop", [("all8", 0), ("random", 16)])
def test_augmentation_keeps_image_and_mask_aligned(augment, crop):
    rng = np.random.default_rng(0)
    masks = (rng.random((5, 32, 32)) > 0.7).astype(np.uint8)
    data = Data.from_arrays(masks.astype(np.float32) * 3 + 1, masks)
    cfg = TrainConfig(augment=augment, crop=crop, batch_size=4)
    seen = 0
    for x, y in batches(data, cfg, torch.Generator().manual_seed(0)):
        assert torch.equal((x[:, 0] > 0).long(), y)
        seen += len(x)
    assert seen == 5 * (8 if augment == "all8" else 1)


def test_p_and_t_selection_on_a_hand_made_history():
    losses = {"src": [0.9, 0.5, 0.6, 0.7], "tgt": [0.8, 0.4, 0.3, 0.35]}
    assert select_loss(losses, "src", "tgt") == (0.4, 1)  # P: epoch of best source loss
    assert select_loss(losses, "tgt", "tgt") == (0.3, 2)  # T: epoch of best target loss


def test_fit_is_repeatable_on_cpu_and_saves_safely(tmp_path):
    rng = np.random.default_rng(0)
    masks = (rng.random((6, 32, 32)) > 0.5).astype(np.uint8)
    data = Data.from_arrays(masks + rng.normal(0, 0.3, masks.shape).astype(np.float32), masks)
    runs = []
    for _ in range(2):
        model = new_model(4, seed=3)
        hist = fit(model, data, {"a": data}, TrainConfig(epochs=2, lr=1e-2, seed=3, augment="random"), "a",
                   torch.device("cpu"))
        runs.append(hist.losses["a"])
    assert runs[0] == runs[1]
    save_model(tmp_path / "m.pt", hist.best_state, {"width": 4})
    loaded, meta = load_model(tmp_path / "m.pt")
    assert meta["width"] == 4
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in hist.best_state.items())


def _trivial_loss(masks: np.ndarray) -> float:
    """Cross-entropy of the best constant prediction (the particle fraction): nothing learnt."""
    p = masks.mean()
    return float(-(p * np.log(p) + (1 - p) * np.log(1 - p)))


@pytest.fixture(scope="module")
def dose_study(smoke_cache):
    study.run_study("dose", "smoke", smoke_cache, device="cpu", scheduler="synchronous", progress=False)
    return smoke_cache


def test_smoke_study_fills_the_grid_and_learns(dose_study):
    from hrtem_tl.datasets import load_dataset

    df = study.load_results("dose", "smoke", dose_study)
    jobs = study.grid("dose", "smoke")
    assert len(df) == len(jobs) and df["key"].is_unique
    pre = df[df.kind == "pretrain"]
    assert (pre.groupby("source").replicate.nunique() == get_preset("smoke").n_replicates("dose")).all()
    assert (dose_study / "results" / "dose.parquet").exists()
    tr = df[df.kind == "transfer"]
    assert set(tr.freeze) == {"none", "encoder", "decoder"}
    assert tr[["P", "T", "seconds_per_epoch", "trainable_params"]].notna().all().all()
    assert tr[tr.freeze == "encoder"].trainable_params.max() < tr[tr.freeze == "none"].trainable_params.min()
    ratios = {}
    for target, group in tr.groupby("target"):
        ratios[target] = group["T"].median() / _trivial_loss(load_dataset("dose", target, "val", "smoke",
                                                                          dose_study).masks)
    # every target learned something; at this test scale 30 e-/Å² (8 scenes, 4 transfer images) is the hardest
    assert max(ratios.values()) < 0.9 and np.median(list(ratios.values())) < 0.8, ratios
    losses = json.loads(tr.iloc[0]["losses"])
    assert len(losses[tr.iloc[0]["target"]]) == get_preset("smoke").epochs  # one validation loss per epoch


def test_resume_after_a_kill_writes_no_duplicates(dose_study):
    rows = sorted((dose_study / "results" / "rows" / "dose").glob("transfer-*.json"))
    for p in rows[:3]:  # "killed" before these finished
        p.unlink()
    (rows[0].parent / f".{rows[0].name}.crash.tmp").write_text("{half a row")
    study.run_study("dose", "smoke", dose_study, device="cpu", scheduler="synchronous", progress=False)
    df = study.load_results("dose", "smoke", dose_study)
    assert len(df) == len(study.grid("dose", "smoke")) and df["key"].is_unique


def test_transfer_without_datasets_names_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"run `python -m hrtem_tl simulate --series dose --preset smoke "
                                                f"--cache {tmp_path}`"):
        study.run_study("dose", "smoke", tmp_path, device="cpu", scheduler="synchronous", progress=False)


def test_model_keys_are_pinned():
    """Cache keys of models change only when a field that determines a model changes (presets.MODEL_KEY_FIELDS):
    adding replicates or another grid field must leave every existing key as it is. The cpu dose keys changed
    twice, when the dose series moved to 0.25 Å pixels and when it moved to 96-pixel crops, 512 an epoch
    (``series_settings``: its data or training changed); the defocus and structure keys stayed (before: dose
    16a0ccd5d4cb17b2 and 6a8ec82db7a93296, then 6c6744ca4845801e and ce3934d100fab4b7)."""
    cpu, smoke = get_preset("cpu"), get_preset("smoke")
    assert study.Job("dose", "pretrain", "30", 0, cpu.main_lr[0]).key(cpu) == "4db3cf323d45c777"
    assert study.Job("dose", "transfer", "30", 0, cpu.main_lr[0], "600", "encoder", cpu.main_lr[1],
                     cpu.transfer_size, replicate=1).key(cpu) == "0f37408cc5ee7892"
    assert study.Job("defocus", "pretrain", "-100", 0, cpu.main_lr[0]).key(cpu) == "8fa109186f12e8ca"
    assert study.Job("defocus", "transfer", "-100", 0, cpu.main_lr[0], "0", "encoder", cpu.main_lr[1],
                     cpu.transfer_size, replicate=1).key(cpu) == "f03fe21c62fda6a4"
    assert study.Job("structure", "pretrain", "C_small", 0, cpu.main_lr[0]).key(cpu) == "feb2a2e6af3e1b4e"
    assert study.Job("dose", "pretrain", "30", 0, smoke.main_lr[0]).key(smoke) == "83866149bcd570a0"
    from dataclasses import replace

    more = replace(cpu, replicates={"dose": 9}, transfer_replicates={"dose": 2}, validate_every_epoch=True)
    assert study.Job("dose", "pretrain", "30", 0, cpu.main_lr[0]).key(more) == "4db3cf323d45c777"


def test_replicates_are_independent_pretrainings_of_each_source():
    pr = get_preset("cpu")
    jobs = [j for j in study.grid("dose", pr) if j.kind == "pretrain"]
    assert len(jobs) == 5 * pr.n_replicates("dose")
    seeds = {j.train_seed() for j in jobs}
    assert len(seeds) == len(jobs)  # every (source, replicate) its own initialisation and batch order
    transfers = [j for j in study.grid("dose", pr) if j.kind == "transfer"]
    assert {j.replicate for j in transfers} == set(range(pr.n_transfer_replicates("dose")))
    # a transfer's batches do not depend on the source or the freezing option: the options of a cell are paired
    assert len({j.train_seed() for j in transfers}) == pr.n_transfer_replicates("dose")


def test_the_sweep_and_the_baseline_pair_transfer_more_pretrainings_than_the_heatmaps():
    from dataclasses import replace

    pr = replace(get_preset("cpu"), sweep_replicates=2)
    assert pr.n_transfer_replicates("defocus") == 1 and pr.n_sweep_replicates() == 2
    transfers = [j for j in study.grid("defocus", pr) if j.kind == "transfer"]
    swept = {(j.source, j.target) for j in transfers if j.replicate == 1}
    assert swept == {(a, b) for a in pr.sweep_sources for b in pr.sweep_targets} | {study.MIXTURE_PAIR}
    lr_pairs = {(j.lr_pretrain, j.lr_transfer) for j in transfers if j.replicate == 1}
    assert lr_pairs == set(pr.lr_pairs)
    base = {j for j in study.grid("defocus", get_preset("cpu")) if j.kind == "transfer"}
    assert base <= set(transfers)  # the heatmaps' transfers are the same jobs
    assert replace(pr, sweep_replicates=5).n_sweep_replicates() == pr.n_replicates("defocus")


def test_the_cosine_schedule_anneals_a_pretraining_and_keys_its_models():
    from dataclasses import replace

    from hrtem_tl import train as train_module

    net = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sched = train_module.scheduler(opt, TrainConfig(epochs=4, lr=1.0, schedule="cosine"))
    rates = []
    for _ in range(4):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert np.allclose(rates, [1.0, (1 + np.cos(np.pi / 4)) / 2, 0.5, (1 + np.cos(3 * np.pi / 4)) / 2])
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    sched = train_module.scheduler(opt, TrainConfig(epochs=4, lr=1.0))
    sched.step()
    assert np.isclose(opt.param_groups[0]["lr"], train_module.LR_DECAY)  # the study's
    with pytest.raises(ValueError, match="schedule='linear' is unknown; allowed: exponential, cosine"):
        TrainConfig(schedule="linear")
    cpu = get_preset("cpu")
    cosine = replace(cpu, scratch_schedule="cosine")
    pre = study.Job("structure", "pretrain", "C_small", 0, cpu.main_lr[0])
    assert pre.key(cosine) != pre.key(cpu)
    assert study._config(pre, cosine, 1e-3, 6, 32).schedule == "cosine"
    transfer = study.Job("structure", "transfer", "C_small", 0, cpu.main_lr[0], "Si_small", "none", cpu.main_lr[1],
                         cpu.transfer_size)
    assert study._config(transfer, cosine, 1e-3, 6, 16).schedule == "exponential"


def test_deferred_validation_gives_the_same_p(dose_study):
    """A pretraining that validates every domain at every epoch and one that scores them once at the selected
    epoch (``validate_every_epoch``) record the same P on every domain."""
    from dataclasses import replace

    smoke = get_preset("smoke")
    rows = {}
    for every in (True, False):
        pr = replace(smoke, validate_every_epoch=every)
        job = study.Job("dose", "pretrain", "150", 5, pr.main_lr[0])
        rows[every] = study._pretrain([job], pr, dose_study, torch.device("cpu"))[0]
    for column in ("P_all", "P_all_study"):
        a, b = json.loads(rows[True][column]), json.loads(rows[False][column])
        assert a.keys() == b.keys() and np.allclose(list(a.values()), list(b.values()), rtol=1e-5)
    assert rows[True]["best_epoch_pretrain"] == rows[False]["best_epoch_pretrain"]


TIMING = ("seconds_per_epoch", "images_per_second")


def _same_row(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in TIMING} == {k: v for k, v in b.items() if k not in TIMING}


@pytest.mark.parametrize("damage", ["truncate", "zero", "other"])
def test_a_damaged_results_row_is_named_moved_aside_and_rebuilt_equal(dose_study, damage):
    import subprocess
    import sys

    rows = sorted((dose_study / "results" / "rows" / "dose").glob("pretrain-*.json"))
    path, other = rows[0], rows[1]
    clean = json.loads(path.read_text())
    data = path.read_bytes()
    damaged = {"truncate": data[: len(data) // 2], "zero": bytes(len(data)), "other": other.read_bytes()}
    path.write_bytes(damaged[damage])
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "claims", "--preset", "smoke", "--series", "dose",
                             "--cache", str(dose_study)], capture_output=True, text=True)
    assert result.returncode == 2
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith(f"error: results row {path} was damaged (")
    assert f"rebuild it with `python -m hrtem_tl train --series dose --preset smoke --cache {dose_study}`" in line
    assert not path.exists() and (dose_study / "damaged" / "results" / "rows" / "dose" / path.name).exists()
    study.run_study("dose", "smoke", dose_study, device="cpu", scheduler="synchronous", progress=False)
    assert _same_row(json.loads(path.read_text()), clean)


@pytest.mark.parametrize("how", ["truncate", "zero", "other", "meta"])
def test_damaged_model_weights_are_rebuilt_before_a_transfer_needs_them(dose_study, how):
    pr = get_preset("smoke")
    transfers = [j for j in study.grid("dose", pr) if j.kind == "transfer"]
    transfer = transfers[0]
    pre = transfer.pretrain_job()
    other = study.model_path(next(j for j in transfers if j.source != transfer.source).pretrain_job(), pr, dose_study)
    weights, row = study.model_path(pre, pr, dose_study), study.row_path(pre, pr, dose_study)
    clean_row, clean_weights = json.loads(row.read_text()), torch.load(weights, weights_only=True)
    data = weights.read_bytes()
    if how == "meta":
        weights.with_suffix(".json").write_text("{\"width\": ")
    else:
        weights.write_bytes({"truncate": data[:100], "zero": bytes(len(data)), "other": other.read_bytes()}[how])
    study.row_path(transfer, pr, dose_study).unlink()
    study.run_job(transfer, pr, dose_study, device="cpu")
    rebuilt = torch.load(weights, weights_only=True)
    assert all(torch.equal(rebuilt[k], clean_weights[k]) for k in clean_weights)
    assert _same_row(json.loads(row.read_text()), clean_row)
    assert (dose_study / "damaged" / "models" / "smoke" / "dose" / weights.name).exists()


def test_cache_command_counts_checks_and_prunes(dose_study):
    import subprocess
    import sys

    def run(*extra):
        return subprocess.run([sys.executable, "-m", "hrtem_tl", "cache", "--preset", "smoke", "--cache",
                               str(dose_study), *extra], capture_output=True, text=True)

    result = run("--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "results/rows" in result.stdout and " 0 damaged" in result.stdout
    assert re.search(r"book at preset smoke, seeds 0: missing \d+/\d+ datasets, \d+/\d+ models", result.stdout)
    rows = sorted((dose_study / "results" / "rows" / "dose").glob("transfer-*.json"))
    rows[0].write_bytes(rows[0].read_bytes()[:10])
    result = run("--check")
    assert result.returncode == 2 and "1 damaged" in result.stdout and str(rows[0]) in result.stdout
    assert not rows[0].exists()
    stale = dose_study / "results" / "rows" / "dose" / "transfer-0000000000000000.json"
    stale.write_text(json.dumps({**json.loads(rows[1].read_text()), "key": "0000000000000000"}))  # an old key
    result = run("--prune")
    assert "would remove" in result.stdout and str(stale) in result.stdout and stale.exists()
    assert run("--prune", "--yes").returncode == 0 and not stale.exists()
    study.run_study("dose", "smoke", dose_study, device="cpu", scheduler="synchronous", progress=False)
