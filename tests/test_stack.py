"""The stacked trainer (K models as one grouped network), the training path's whole-batch augmentation, the
memory layout that does not crash, and a model's identity (its precision)."""

import copy
import dataclasses
import json
import shutil

import pytest
import torch
from torch.nn import functional as F

from hrtem_tl import study
from hrtem_tl import train as tr
from hrtem_tl.bench import baseline_batches
from hrtem_tl.model import UNet, freeze, member_state, stack_states
from hrtem_tl.presets import PRESETS, get_preset


@pytest.mark.parametrize("crop, side", [(16, 32), (0, 32), (16, 24)])
def test_whole_batch_augmentation_gives_the_same_minibatches_as_sample_by_sample(crop, side):
    gen = torch.Generator().manual_seed(3)
    data = tr.Data(torch.randn(6, 1, side, side, generator=gen), torch.randint(0, 2, (6, side, side), generator=gen))
    cfg = tr.TrainConfig(augment="all8", crop=crop, crops_per_image=2, batch_size=5)
    ours = list(tr.batches(data, cfg, torch.Generator().manual_seed(9)))
    reference = list(baseline_batches(data, cfg, torch.Generator().manual_seed(9)))
    assert len(ours) == len(reference) == -(-6 * 8 * 2 // 5)
    for (x, y), (rx, ry) in zip(ours, reference):
        assert torch.equal(x, rx) and torch.equal(y, ry)


@pytest.mark.parametrize("members", [3, 4])
def test_a_stack_computes_each_members_network(members):
    """Member k of a stack built from single networks' weights gives their logits and hands their weights back
    (4 members: the narrow convolutions run members in pairs, :class:`model.StackConv`)."""
    torch.manual_seed(0)
    singles = [UNet(8).eval() for _ in range(members)]
    stack = UNet(8, members=members)
    assert any(getattr(m, "paired", False) for m in stack.modules()) == (members % 2 == 0)
    stack.load_state_dict(stack_states([m.state_dict() for m in singles]))
    stack.eval()
    x = torch.randn(2, members, 64, 64)
    out = stack(x).view(2, members, 2, 64, 64)
    for k, single in enumerate(singles):
        assert torch.allclose(out[:, k], single(x[:, k:k + 1]), atol=1e-5)
        back = member_state(stack.state_dict(), k, members)
        assert all(torch.equal(back[name], value) for name, value in single.state_dict().items())


@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_paired_members_see_neither_each_others_images_nor_weights(fmt):
    """In a stack whose narrow convolutions pair members, changing member 1's images and weights leaves member
    0's logits exactly as they were, and member 0's gradients get nothing from member 1's loss."""
    torch.manual_seed(0)
    stack = UNet(8, members=2).to(memory_format=fmt).eval()
    x = torch.randn(2, 2, 64, 64).contiguous(memory_format=fmt)
    before = stack(x)[:, :2].detach()
    other = x.clone()
    other[:, 1] = torch.randn(2, 64, 64) * 10
    with torch.no_grad():
        for m in stack.modules():
            if getattr(m, "paired", False):
                m.weight[m.weight.shape[0] // 2:] = torch.randn_like(m.weight[m.weight.shape[0] // 2:])
    assert torch.equal(stack(other)[:, :2], before)
    stack(x)[:, 2:].sum().backward()  # member 1's logits only
    paired = [m for m in stack.modules() if getattr(m, "paired", False)]
    assert paired and all(m.weight.grad[:m.weight.shape[0] // 2].abs().max() == 0 for m in paired)


def test_a_stacks_skip_join_keeps_channels_last_and_the_values():
    """Joining the skips of a channels_last stack gives the plain layout's values, channels_last, and so do its
    gradients (a join that fell back to the default layout cost the stack's step 0.72-0.83x, measured)."""
    from hrtem_tl.model import join_skip

    gen = torch.Generator().manual_seed(1)
    x, skip = torch.randn(2, 3 * 4, 8, 8, generator=gen), torch.randn(2, 3 * 2, 8, 8, generator=gen)
    plain = join_skip(x, skip, 3)
    xs, ss = (t.contiguous(memory_format=torch.channels_last).requires_grad_() for t in (x, skip))
    joined = join_skip(xs, ss, 3)
    assert joined.is_contiguous(memory_format=torch.channels_last) and torch.equal(joined, plain)
    assert torch.equal(plain.view(2, 3, 6, 8, 8)[:, 1, :4], x.view(2, 3, 4, 8, 8)[:, 1])  # member 1's own channels
    (joined * torch.randn(joined.shape, generator=gen)).sum().backward()
    assert all(t.grad.is_contiguous(memory_format=torch.channels_last) for t in (xs, ss))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("members", [3, 4])
@pytest.mark.parametrize("fmt", [torch.channels_last, torch.contiguous_format])
def test_a_stacks_first_step_gives_each_member_its_single_networks_gradients(fmt, members, dtype):
    """Before training amplifies rounding: one cross-entropy backward through a stack gives member k's parameters
    the gradients that network k gets alone, in either layout (4 members: the narrow convolutions paired). In
    float64 (torch's own kernels) exactly, to 1e-9. In float32 (oneDNN's) within 5 %: a member given another's
    images or weights is off by about 100 %, while rounding moves the gradients by up to 0.3 % at 3 members and, at 4,
    by 2.1 % on one member's stem weights and 3.8 % on its batch-norm parameters whose gradients nearly cancel,
    the member and the size moving with the thread count (a max-pool near-tie flipped by rounding sends a pixel's
    gradient elsewhere; measured 2026-12-04, grouped and paired alike)."""
    torch.manual_seed(0)
    singles = [UNet(8).to(dtype) for _ in range(members)]
    stack = UNet(8, members=members).to(dtype)
    stack.load_state_dict(stack_states([m.state_dict() for m in singles]))
    gen = torch.Generator().manual_seed(2)
    x, y = (torch.randn(4, members, 64, 64, generator=gen, dtype=dtype),
            torch.randint(0, 2, (4, members, 64, 64), generator=gen))
    stack.to(memory_format=fmt)
    logits = tr._member_logits(stack(x.contiguous(memory_format=fmt)), members)
    F.cross_entropy(logits, y, reduction="none").mean((0, 2, 3)).sum().backward()
    rel = 1e-9 if dtype == torch.float64 else 5e-2
    for k, single in enumerate(singles):
        single.to(memory_format=fmt)
        F.cross_entropy(single(x[:, k:k + 1].contiguous(memory_format=fmt)), y[:, k]).backward()
        for p, ps in zip(single.parameters(), stack.parameters()):
            assert (ps.grad.chunk(members)[k] - p.grad).norm() <= rel * p.grad.norm() + 1e-12


def _task(gen, n, side):
    """Images whose particles are where a smoothed copy exceeds 0.1: a task a U-Net learns steadily."""
    x = torch.randn(n, 1, side, side, generator=gen)
    return tr.Data(x, (F.avg_pool2d(x, 5, 1, 2)[:, 0] > 0.1).long())


@pytest.mark.parametrize("option", ["none", "encoder", "decoder"])
def test_stacked_models_equal_single_models_up_to_float_rounding(option, monkeypatch):
    """Four models trained as one stack (its narrow convolutions in pairs) give each the per-epoch validation losses
    and the selected epoch that it gets trained alone, up to rounding. Training amplifies rounding, by a
    machine-dependent amount: the same single model trained on 2 threads instead of 1 moved its losses by 0.1-2 % on
    an AVX512 CPU and up to 9 % (encoder frozen) on an AVX2 one, fp32 (measured), and a stack whose skips stay
    channels_last moved one member's last epoch by 3.3 % on the AVX512 one (its first step's gradients equal the
    single networks' within 0.3 %: the test above). So the tolerance is that spread, measured here (at least 5 %),
    and the selected epoch may differ only where two epochs tie within it."""
    monkeypatch.setattr(tr, "mixed_precision", lambda device: False)
    gen = torch.Generator().manual_seed(0)
    trains = [_task(gen, 16, 96) for _ in range(4)]
    vals = [{"own": _task(gen, 8, 96), "other": _task(gen, 4, 128)} for _ in range(4)]
    cfgs = [tr.TrainConfig(epochs=4, lr=1e-3, batch_size=8, crop=64, seed=s) for s in (1, 2, 3, 4)]
    models = [tr.new_model(8, s) for s in (11, 12, 13, 14)]
    for m in models:
        freeze(m, option)

    def alone(threads):
        torch.set_num_threads(threads)
        return [tr.fit(copy.deepcopy(m), t, v, c, "own", torch.device("cpu")) for m, t, v, c in
                zip(models, trains, vals, cfgs)]

    again, single = alone(2), alone(1)
    before = [copy.deepcopy(m.state_dict()) for m in models]
    stacked = tr.fit_stack(models, trains, vals, cfgs, ["own"] * 4, torch.device("cpu"))
    for m, state in zip(models, before):  # the members' own networks are left as they were
        assert all(torch.equal(state[k], v) for k, v in m.state_dict().items())
    for a, b, c in zip(single, stacked, again):
        spread = max(abs(x - y) / abs(x) for name in a.losses for x, y in zip(a.losses[name], c.losses[name]))
        rel = max(0.05, 1.5 * spread)
        own = a.losses["own"]
        assert a.best_epoch == b.best_epoch or own[b.best_epoch] == pytest.approx(own[a.best_epoch], rel=rel)
        for name in a.losses:
            assert b.losses[name] == pytest.approx(a.losses[name], rel=rel)
            assert b.study[name] == pytest.approx(a.study[name], rel=max(0.05, 2 * rel), abs=1e-3)
        assert b.train == pytest.approx(a.train, rel=rel)
        if option != "none":  # the frozen half is exactly the pretrained one in both
            frozen = [k for k in a.best_state if k.startswith(option)]
            assert all(torch.equal(a.best_state[k], b.best_state[k]) for k in frozen if "num_batches" not in k)


def test_stacks_follow_the_grid_whatever_else_is_asked_for():
    """A job's stack is its grid stack whether it is asked for alone, with its series or with every series, so a
    model's numbers never depend on what ran beside it; stacked jobs share their key."""
    cpu = get_preset("cpu")
    dose = study.grid("dose", cpu)
    alone = study.stacks([dose[7]], cpu)
    together = study.stacks(dose + study.grid("structure", cpu), cpu)
    assert alone[0] in together and dose[7] in alone[0]
    assert sum(len(s) for s in study.stacks(dose, cpu)) == len(dose)
    for stack in together:
        assert len({study.stack_key(j, cpu) for j in stack}) == 1
        assert 1 <= len(stack) <= study.stack_members(stack[0].kind)
    assert max(len(s) for s in together if s[0].kind == "transfer") == study.TRANSFER_STACK_MEMBERS


def _shapes(pr):
    """(train side, evaluation side) of a preset's models: crops (or whole images) and whole validation images."""
    return (pr.crop or pr.image_pixels), pr.image_pixels


@pytest.mark.parametrize("name", list(PRESETS))
def test_one_training_step_at_every_presets_shapes_runs_on_the_cpu(name):
    """One step of training and one evaluation at each preset's shapes in the layout the code picks, at a small
    width (the paper preset's whole 640-pixel images included: channels_last there corrupted oneDNN's heap), and
    a network narrower than every preset's trains in the default layout (channels_last corrupted the heap there
    on an AVX2 CPU)."""
    pr = get_preset(name)
    train_side, eval_side = _shapes(pr)
    dev = torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    data = tr.Data(torch.randn(2, 1, train_side, train_side, generator=gen),
                   torch.randint(0, 2, (2, train_side, train_side), generator=gen))
    val = {"own": tr.Data(torch.randn(2, 1, eval_side, eval_side, generator=gen),
                          torch.randint(0, 2, (2, eval_side, eval_side), generator=gen))}
    hist = tr.fit(tr.new_model(8, 0), data, val, tr.TrainConfig(epochs=1, lr=1e-3, batch_size=2), "own", dev)
    assert hist.best_epoch == 0 and all(torch.isfinite(v).all() for v in hist.best_state.values())
    fmt = tr.memory_format(dev, train_side)
    assert fmt is (torch.channels_last if train_side <= tr.CHANNELS_LAST_MAX_SIDE else torch.contiguous_format)
    assert tr.memory_format(dev, train_side, width=4) is torch.contiguous_format
    narrow = tr.fit(tr.new_model(4, 0), data, val, tr.TrainConfig(epochs=1, lr=1e-3, batch_size=2), "own", dev)
    assert all(torch.isfinite(v).all() for v in narrow.best_state.values())


def test_a_cache_of_another_precision_is_named_in_one_line(smoke_cache, monkeypatch):
    """Rows computed in bf16 and a machine that computes in fp32: one line instead of a table mixing them."""
    folder = smoke_cache / "results" / "rows" / "dose"
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "pretrain-precision-test.json"
    fake.write_text(json.dumps({"preset": "smoke", "precision": "bf16"}))
    study._cached_precisions.cache_clear()
    monkeypatch.setattr(tr, "mixed_precision", lambda device: False)
    try:
        with pytest.raises(study.MixedPrecision, match=r"holds smoke models computed in bf16 and this machine "
                                                       r"computes in fp32"):
            study._check_precision(get_preset("smoke"), smoke_cache, torch.device("cpu"))
    finally:
        fake.unlink()
        study._cached_precisions.cache_clear()


def _die(item):
    import os

    os._exit(11)  # as a segfault ends a worker: no exception, no cleanup


def test_a_worker_that_dies_is_one_line_naming_its_task_not_a_restart_loop():
    from hrtem_tl.parallel import WorkerDied, run_tasks

    with pytest.raises(WorkerDied) as err:
        run_tasks(_die, ["dose pretrain 30"], {}, desc="pretrainings", progress=False, n_workers=1,
                  name=lambda item: item)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("pretrainings: the worker process running dose pretrain 30 died")


def test_time_boxes_read_a_whole_book_built_from_an_empty_cache(tmp_path):
    """A chapter never run alone from an empty cache: its box gives the stages of the book that was (item 5)."""
    from hrtem_tl.book import BOOK_STAGES, EMPTY_CACHE, empty_cache_times, record_timing

    assert empty_cache_times("dose", tmp_path).startswith("not measured on this machine yet")
    for stage, seconds in zip(BOOK_STAGES, (150.0, 310.0, 420.0)):
        record_timing(f"book {stage} {EMPTY_CACHE}", "cpu", seconds, tmp_path)
    assert empty_cache_times("dose", tmp_path) == (
        "at preset cpu, as part of a whole book built from an empty cache: scenes and datasets 2.5 min, "
        "pretrainings 5.2 min, transfers 7.0 min for every series, then this page's own run")
    record_timing(f"chapter dose {EMPTY_CACHE}", "class", 138.0, tmp_path)
    assert empty_cache_times("dose", tmp_path).endswith("; 2.3 min at preset class")


def test_the_hands_on_models_of_every_size_stack_with_a_pretrainings_budget():
    """The hands-on chapter's equal-budget models (transfers of one freezing option, models from scratch) train as
    many minibatches an epoch whatever their target-set size, so the sizes stack together; the mixtures of one
    total size stack together and the study-budget transfers stack by size (their minibatches differ)."""
    from hrtem_tl import lesson

    cpu = get_preset("cpu")
    jobs = [j for j in lesson.grid(cpu) + lesson.variant_grid(cpu, "protocol") if j.kind != "pretrain"]
    stacks = study.stacks(jobs, cpu)
    scratch = [s for s in stacks if s[0].kind == "scratch"]
    assert len(scratch) == 1 and {j.transfer_size for j in scratch[0]} == set(cpu.lesson_sizes)
    budget = [s for s in stacks if s[0].budget == "pretraining"]
    assert len(budget) == 3 and all({j.transfer_size for j in s} == set(cpu.lesson_sizes) for s in budget)
    assert all(len({j.transfer_size for j in s}) == 1 for s in stacks if s[0].kind == "transfer" and not s[0].budget)
    per_epoch = {study.minibatches(j, cpu, j.transfer_size) for s in scratch + budget for j in s}
    assert len(per_epoch) == 1
    mixtures = [j for j in study.grid("defocus", cpu) if j.kind == "mixture"]
    assert [len(s) for s in study.stacks(mixtures, cpu)] == [len(cpu.mixtures) * len(cpu.seeds)]
    other = dataclasses.replace(mixtures[0], mixture=(8, 8))  # another total: other minibatches, its own stack
    assert [len(s) for s in study.stacks([other] + mixtures, cpu)] == [len(mixtures), 1]


def test_stacked_mixtures_train_each_on_its_own_images(smoke_cache, tmp_path, monkeypatch):
    """Two mixtures of one total size train as one stack (the stack's equality with single models is the test
    above): each member on its own source:target proportions, validated on every domain, selected on the target,
    and each written as its own row under its own key."""
    smoke = get_preset("smoke")
    base = next(j for j in study.grid("defocus", smoke) if j.kind == "mixture")
    jobs = [dataclasses.replace(base, mixture=m) for m in ((2, 6), (6, 2))]
    cache = tmp_path / "cache"
    shutil.copytree(smoke_cache, cache)
    seen, fit_stack = {}, tr.fit_stack

    def spy(models, trains, vals, cfgs, selects, device):
        seen.update(members=len(models), trains=trains, vals=vals, selects=selects)
        return fit_stack(models, trains, vals, cfgs, selects, device)

    monkeypatch.setattr(tr, "fit_stack", spy)
    rows = study.run_stack(jobs, smoke, cache)
    pr = smoke.for_series("defocus")
    assert seen["members"] == 2 and seen["selects"] == [base.target] * 2
    for job, train in zip(jobs, seen["trains"]):
        source = study._data("defocus", job.source, "train", pr, cache).take(job.mixture[0])
        target = study._data("defocus", job.target, "train", pr, cache).take(job.mixture[1])
        assert torch.equal(train.images, (source + target).images) and torch.equal(train.masks, (source + target).masks)
    assert all(set(v) == set(study._val_sets("defocus", pr, cache)) for v in seen["vals"])
    for job, row in zip(jobs, rows):
        assert row["key"] == job.key(pr) and row["mixture"] == list(job.mixture)
        assert study.read_row(study.row_path(job, pr, cache), cache)["T"] == row["T"]
        assert json.loads(row["losses"]).keys() == set(study._val_sets("defocus", pr, cache))
