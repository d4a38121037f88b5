"""Benchmarks that print figures (not tests): ``python -m hrtem_tl bench simulate|train``."""

from __future__ import annotations

import resource
import time
import tracemalloc
from contextlib import contextmanager

import numpy as np

from .presets import get_preset


def _max_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class _Clock:
    """Wraps an exit-wave function and adds up the seconds spent in it."""

    def __init__(self, func):
        self.func, self.seconds = func, 0.0

    def __call__(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return self.func(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def _scene_for(preset):
    """The first training scene of the CdSe series at ``preset`` (its atoms, as the simulation stage builds them)."""
    from . import datasets as ds

    spec = ds.scene_specs(ds.SERIES["dose"], preset, "train")[0]
    return spec, ds.build_scene(spec, np.random.default_rng(ds._seed(spec)))[0]


def _image_time(scene, spec, exit_waves) -> tuple[float, float, float, dict]:
    """(seconds for the whole imaging of a scene, seconds in exit waves, peak traced MiB, arrays)."""
    from . import datasets as ds

    clock = _Clock(exit_waves)
    tracemalloc.start()
    start = time.perf_counter()
    arrays = ds.image_scene(scene, spec["sim"], spec["lattice"], ds._seed(spec), clock)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, clock.seconds, peak, arrays


def bench_simulate(presets=("cpu", "paper"), device: str = "auto") -> None:
    """Seconds and peak memory per scene, hrtem_tl against plain abTEM calls on the same atoms, one core each.

    A scene is all of its physics (STUDY.md 2): every frozen-phonon exit wave, the particles-in-vacuum wave, the
    label and the two-stage zero-defocus calibration. Both paths share everything but the multislice; FFTW plans
    are made before timing (ours from this machine's wisdom, abTEM's by its own per-process cache).
    """
    from . import datasets as ds
    from . import simulate as sim
    from .study import simulation_device

    ds.configure_abtem()
    dev = simulation_device(device)
    print(f"one core (1 FFTW thread); ours on {dev}, FFTW planning {sim.fftw_planning()}; plain abTEM on the cpu")
    print("preset  grid  atoms  phonons  slices  path         scene_s  multislice_s  peak_MiB  ratio")
    for name in presets:
        pr = get_preset(name)
        spec, scene = _scene_for(pr)
        if dev == "cpu":
            ds.plan_fftw(pr)
        n = int(round(pr.extent / pr.sim_sampling))
        slices = int(np.ceil(scene.atoms.cell[2, 2] / pr.slice_thickness))

        def ours(*args, **kwargs):
            return sim.exit_waves(*args, device=dev, **kwargs)

        for func in (ours, sim.abtem_exit_waves):  # warm-up on the same atoms: plans, numba, kernels, caches
            for atoms in (scene.atoms, scene.particles):
                func(atoms, pr.sim_sampling, pr.slice_thickness, 0, 0)
        plain_s, plain_ms, plain_peak, plain = _image_time(scene, spec, sim.abtem_exit_waves)
        our_s, our_ms, our_peak, arrays = _image_time(scene, spec, ours)
        head = f"{name:6s} {n:5d} {len(scene.atoms):6d} {max(pr.n_phonons, 1):8d} {slices:7d}"
        print(f"{head}  plain abTEM {plain_s:8.2f} {plain_ms:13.2f} {plain_peak:9.0f}")
        print(f"{head}  hrtem_tl    {our_s:8.2f} {our_ms:13.2f} {our_peak:9.0f}  {our_s / plain_s:5.2f}")
        _print_agreement(arrays, plain, pr)
    print(f"process max RSS {_max_rss_gib():.2f} GiB")


def _print_agreement(ours: dict, plain: dict, preset) -> None:
    """How far our images are from plain abTEM's: against the Poisson noise of the study's highest dose."""
    from . import simulate as sim

    a = sim.intensity(ours["waves"], preset.pixel_size, -100.0 + ours["zero_defocus"])
    b = sim.intensity(plain["waves"], preset.pixel_size, -100.0 + plain["zero_defocus"])
    counts = 600 * 0.2 ** 2  # e- per pixel at the study's 600 e-/Å2 and 0.2 Å pixels
    noise = np.sqrt(b.mean() / counts)
    rms = float(np.sqrt(np.mean((a - b) ** 2)))
    print(f"        images at -10 nm: rms difference {rms:.2e} = {rms / noise:.3f} x the Poisson sd at "
          f"600 e-/Å2 (0.2 Å pixels); zero defocus {ours['zero_defocus']:.1f} vs {plain['zero_defocus']:.1f} Å; "
          f"labels differ on {np.mean(ours['mask'] != plain['mask']) * 100:.2f} % of pixels")


def baseline_batches(data, cfg, gen):
    """The training path's minibatches before the whole-batch form: one sample at a time (kept for the bench and
    as the reference of the test that they are the same minibatches)."""
    import torch

    from .train import dihedral

    n = len(data)
    idx = torch.arange(n).repeat(8 * cfg.crops_per_image)
    ks = torch.arange(8).repeat_interleave(n).repeat(cfg.crops_per_image)
    order = torch.randperm(len(idx), generator=gen)
    idx, ks = idx[order], ks[order]
    h, w = data.images.shape[-2:]
    for start in range(0, len(idx), cfg.batch_size):
        xs, ys = [], []
        for i, k in zip(idx[start:start + cfg.batch_size].tolist(), ks[start:start + cfg.batch_size].tolist()):
            x, y = data.images[i], data.masks[i]
            if cfg.crop and cfg.crop < min(h, w):
                r, c = (int(torch.randint(0, s - cfg.crop + 1, (1,), generator=gen)) for s in (h, w))
                x, y = x[..., r:r + cfg.crop, c:c + cfg.crop], y[r:r + cfg.crop, c:c + cfg.crop]
            xs.append(dihedral(x, k))
            ys.append(dihedral(y, k))
        yield torch.stack(xs), torch.stack(ys)


def _train_steps(members: int, width: int, crop: int, bf16: bool, steps: int, baseline: bool = False,
                 profile: bool = False):
    """Seconds per training step of ``members`` stacked models (16 crops each, from 64 whole images through the
    training path's minibatches), on this process's threads; the baseline: one model, per-sample minibatches,
    the per-tensor Adam, channels_last only with bf16. With ``profile``: also the profiler's operator table."""
    import torch
    from torch.nn import functional as F

    from . import train as tr
    from .model import UNet

    side = 2 * crop
    gen = torch.Generator().manual_seed(0)
    data = tr.Data(torch.randn(64, 1, side, side, generator=gen), torch.randint(0, 2, (64, side, side), generator=gen))
    cfg = tr.TrainConfig(epochs=1, batch_size=16, crop=crop, crops_per_image=4, seed=0)
    net = UNet(width, members=members)
    if baseline:  # the step before: channels_last only together with bf16
        fmt = torch.channels_last if bf16 and crop <= tr.CHANNELS_LAST_MAX_SIDE else torch.contiguous_format
    else:
        fmt = tr.memory_format(torch.device("cpu"), crop, width=width)
    net.to(memory_format=fmt)
    opt = (torch.optim.Adam(net.parameters(), lr=1e-3, foreach=False) if baseline
           else tr.adam(list(net.parameters()), 1e-3))
    make = baseline_batches if baseline else tr.batches
    streams = [make(data, cfg, torch.Generator().manual_seed(k)) for k in range(members)]

    def step():
        parts = [next(s) for s in streams]
        x = torch.cat([p[0] for p in parts], dim=1).contiguous(memory_format=fmt)
        y = torch.stack([p[1] for p in parts], dim=1)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
        if baseline:  # a log-softmax and a gather per member-pixel
            loss = F.cross_entropy(tr._member_logits(out.float(), members), y, reduction="none").mean((0, 2, 3)).sum()
        else:  # the two-class margin (``train.class_margin``)
            loss = tr.margin_cross_entropy(tr.class_margin(out, y)).mean((0, 2, 3)).sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    seconds = (time.perf_counter() - start) / steps
    table = None
    if profile:
        from torch.profiler import ProfilerActivity
        from torch.profiler import profile as torch_profile

        with _quiet_stderr(), torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(3):
                step()
        table = prof.key_averages()
    return seconds, table, net


def _interleaved_pairs(first, second, pairs: int) -> tuple[list, list]:
    """Seconds from ``first()`` and ``second()`` run alternately ``pairs`` times: a machine whose pace drifts
    (another tenant, its clock) moves both of a pair alike, so their ratio is read per pair."""
    a, b = [], []
    for _ in range(pairs):
        a.append(first())
        b.append(second())
    return a, b


@contextmanager
def _quiet_stderr():
    """File descriptor 2 to /dev/null: the profiler's C++ side prints its start and stop there."""
    import os
    import sys

    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _step_shares(table) -> dict:
    """Share of a step's operator time (self CPU) in convolutions, batch norm, the optimizer, copies and casts,
    and the rest."""
    groups = {"conv": ("convolution",), "batch norm": ("batch_norm",), "optimizer": ("_foreach", "adam", "lerp",
              "addcmul", "addcdiv", "sqrt"), "copies/casts": ("copy_", "to_copy", "contiguous", "clone")}
    shares = dict.fromkeys([*groups, "other"], 0.0)
    for event in table:
        name = event.key.lower()
        group = next((g for g, words in groups.items() if any(w in name for w in words)), "other")
        shares[group] += event.self_cpu_time_total
    total = sum(shares.values()) or 1.0
    return {g: v / total for g, v in shares.items()}


def _gflop_per_step(net, crop: int) -> float:
    """Multiply-adds of the convolutions of one training step (16 crops per member) x 2 FLOP x 3 (the forward
    pass and the two products of its backward), in GFLOP: counted with hooks on a forward pass."""
    import torch

    macs = []

    def hook(module, inputs, output):
        cin = module.in_channels // module.groups
        macs.append(output.numel() * cin * module.kernel_size[0] * module.kernel_size[1])

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    with torch.no_grad():
        net.eval()(torch.zeros(16, net.members, crop, crop))
    for h in handles:
        h.remove()
    return 6 * sum(macs) / 1e9


def _nominal_peak_gflops(bf16: bool) -> float | None:
    """A core's nominal peak from its clock (/proc/cpuinfo): 2 FMA units x 16 fp32 lanes x 2 FLOP a cycle
    (AVX-512), twice that in bf16 dot products. A nominal figure, not a measurement."""
    try:
        mhz = max(float(line.split(":")[1]) for line in open("/proc/cpuinfo") if line.startswith("cpu MHz"))
    except (OSError, ValueError):
        return None
    return mhz / 1e3 * 64 * (2 if bf16 else 1)


def bench_train(presets=("cpu", "cpu-fine"), device: str = "auto", members=(1, 2, 4, 8, 16), steps: int = 8,
                pairs: int = 5) -> None:
    """Models per hour on one core at each preset's training shape: single and stacked models (K members), bf16
    and fp32, the share of each part of a step, GFLOP/s; and the book's path (what ``study`` uses: stacks of
    ``STACK_MEMBERS`` pretrainings, as many transfers, narrow convolutions paired: ``model.StackConv``) against the
    step as it was before stacking: the median models per hour of ``pairs`` interleaved pairs of ``2 * steps``
    steps each, and ``N.NNx baseline`` as the median of the pairs' own ratios with their range (one pair of 8
    steps moved by 1.5x on a noisy machine; a pair's two runs share its pace)."""
    import torch

    from .study import STACK_MEMBERS, Job, minibatches, train_images
    from .train import mixed_precision, pick_device

    dev = pick_device(device)
    if dev.type != "cpu":
        print(f"device {dev}: this bench measures CPU cores; a GPU run measures nothing here yet")
        return
    torch.set_num_threads(1)  # as a training worker runs (one thread per model or stack)
    native_bf16 = mixed_precision(dev)
    precisions = (True, False) if native_bf16 else (False,)
    print(f"one core; {'bf16 is native here (AVX512-BF16)' if native_bf16 else 'no native bf16: fp32 only'}; "
          f"models per hour = pretrainings' training steps (the preset's epochs x minibatches), one core")
    print("preset    crop width  precision  K   step_ms  model-steps/s  models/h  GFLOP/s  nominal_peak  "
          "conv  bn  optim  copies  other")
    for name in presets:
        pr = get_preset(name)
        job = Job("dose", "pretrain", "30", 0, pr.main_lr[0])
        per_model = minibatches(job, pr, train_images(job, pr))
        crop = pr.crop or pr.image_pixels
        for bf16 in precisions:
            rates = {}
            for k in members:
                seconds, table, net = _train_steps(k, pr.width, crop, bf16, steps, profile=True)
                rates[k] = k / seconds
                shares = _step_shares(table)
                gflops = _gflop_per_step(net, crop) / seconds
                peak = _nominal_peak_gflops(bf16)
                print(f"{name:9s} {crop:4d} {pr.width:5d}  {'bf16' if bf16 else 'fp32':9s} {k:2d} {seconds * 1e3:9.1f} "
                      f"{rates[k]:14.1f} {rates[k] * 3600 / per_model:9.0f} {gflops:8.1f} "
                      f"{(f'{peak:.0f}' if peak else '-'):>13s}  " + "  ".join(f"{v:4.0%}" for v in shares.values()),
                      flush=True)
        bf16 = native_bf16
        base_s, ours_s = _interleaved_pairs(
            lambda: _train_steps(1, pr.width, crop, bf16, 2 * steps, baseline=True)[0],
            lambda: _train_steps(STACK_MEMBERS, pr.width, crop, bf16, 2 * steps)[0] / STACK_MEMBERS, pairs)
        ratios = sorted(b / o for b, o in zip(base_s, ours_s))
        base, ours = 3600 / np.median(base_s) / per_model, 3600 / np.median(ours_s) / per_model
        print(f"{name:9s} book path (stacks of {STACK_MEMBERS}, narrow convolutions paired, "
              f"{'bf16' if bf16 else 'fp32'}): {ours:.0f} models/h per core against {base:.0f} for the step before "
              f"stacking (medians of {pairs} interleaved pairs, {ours / base:.2f}x); per pair "
              f"{np.median(ratios):.2f}x baseline ({ratios[0]:.2f}-{ratios[-1]:.2f}x)", flush=True)
    bench_pretraining(device=device)
    bench_evaluation(device=device)


def bench_evaluation(presets=("cpu", "cpu-fine"), device: str = "auto", members=(1, 8), repeats: int = 3) -> None:
    """Whole-image evaluation (what every epoch of a transfer and every scoring runs) on one core: member-images
    per second at each preset's validation side, in the layout and batch the code picks (``train.memory_format``
    without gradients, ``train.eval_batch``) against the ones it used before (the default layout above 256 px,
    2^21 pixels an image set whatever the members)."""
    import torch

    from .model import UNet
    from .train import _autocast, eval_batch, memory_format, pick_device

    dev = pick_device(device)
    if dev.type != "cpu":
        print(f"device {dev}: this bench measures CPU cores")
        return
    torch.set_num_threads(1)
    print("evaluation on one core (whole validation images, K stacked models): member-images/s before -> now")
    sides = dict.fromkeys([get_preset(n).for_series(s).image_pixels for n in presets for s in ("dose", "structure")])
    for side in sides:
        for k in members:
            net = UNet(get_preset(presets[0]).width, members=k).eval()
            timings = {}
            for label, fmt, batch in (("before", memory_format(dev, side), max(1, 2 ** 21 // side ** 2)),
                                      ("now", memory_format(dev, side, training=False), eval_batch(side, k))):
                net = net.to(memory_format=fmt)
                x = torch.randn(batch, k, side, side).contiguous(memory_format=fmt)
                with torch.no_grad(), _autocast(dev):
                    net(x)
                    start = time.perf_counter()
                    for _ in range(repeats):
                        net(x)
                timings[label] = batch * k * repeats / (time.perf_counter() - start)
            print(f"evaluation {side:4d} px  K={k:2d}  {timings['before']:8.1f}  {timings['now']:8.1f}  "
                  f"{timings['now'] / timings['before']:.2f}x", flush=True)


def bench_pretraining(preset: str = "cpu", device: str = "auto") -> None:
    """One pretraining epoch of each series at ``preset``'s shapes (synthetic images: the time does not depend on
    their content), validating every domain of the series after the epoch (the study's record) or only its own
    (``validate_every_epoch`` off, the cpu presets): crops per second and the share of the epoch spent on
    validation. Over E epochs the deferred form validates every domain once instead of E times."""
    import torch

    from .datasets import SERIES
    from .train import Data, TrainConfig, dihedral_forms, fit, new_model, pick_device

    pr, dev = get_preset(preset), pick_device(device)
    if dev.type == "cpu":
        torch.set_num_threads(1)  # as a training worker runs (one thread per model)
    side = pr.image_pixels
    n_train = pr.epoch_crops // 8 if pr.crop and pr.epoch_crops else pr.n_train
    print(f"\npretraining epoch at the {pr.name} preset ({pr.epoch_crops or n_train * 8} crops of "
          f"{pr.crop or side} px, width {pr.width}), device {dev}, threads {torch.get_num_threads()}")
    print("series     domains  val_images  every_domain_s  own_domain_s  crops/s_every  crops/s_own  saving_per_"
          f"{pr.epochs}_epochs")
    gen = torch.Generator().manual_seed(0)
    for name, series in SERIES.items():
        n_val = pr.structure_val if name == "structure" else pr.n_val
        val = {d: Data(torch.randn(n_val, 1, side, side, generator=gen),
                       torch.randint(0, 2, (n_val, side, side), generator=gen)) for d in series.domains}
        train = Data(torch.randn(n_train, 1, side, side, generator=gen),
                     torch.randint(0, 2, (n_train, side, side), generator=gen))
        cfg = TrainConfig(epochs=1, lr=1e-3, batch_size=pr.batch_size, augment=pr.augment, crop=pr.crop, seed=0)
        own = series.domains[0]
        times = {}
        for label, watched in (("every", val), ("own", {own: val[own]})) * 2:  # best of two: less noise
            start = time.perf_counter()
            fit(new_model(pr.width, 0), train, watched, cfg, own, dev)
            times[label] = min(times.get(label, float("inf")), time.perf_counter() - start)
        crops = n_train * dihedral_forms(pr.augment)
        validation = times["every"] - times["own"]  # one epoch's validation of the other domains
        total_every = pr.epochs * times["every"]
        total_own = pr.epochs * times["own"] + validation
        print(f"{name:10s} {len(series.domains):7d} {n_val * len(series.domains):11d} {times['every']:15.2f} "
              f"{times['own']:13.2f} {crops / times['every']:14.0f} {crops / times['own']:12.0f} "
              f"{1 - total_own / total_every:17.0%}")


CLASS_CHAPTERS = ("handson", "dose", "defocus", "structure")


def bench_class(device: str = "auto", chapters=CLASS_CHAPTERS, cache=None, keep=None) -> dict:
    """Seconds for each chapter at the ``class`` preset from an empty cache, as a student runs it: papermill on
    the chapter, in a fresh cache folder of its own (simulation, training and the page), removed afterwards unless
    ``keep`` names a folder to keep them in (``<keep>/<chapter>``: `claims --cache` then reads their scorecards).
    Each time is recorded in ``cache``'s timings (the chapters' "time to run" boxes read them). Targets: the
    hands-on chapter within 5 minutes and each study chapter within 10, on a 2-core laptop."""
    import shutil
    import tempfile
    from pathlib import Path

    from .book import EMPTY_CACHE, execute_chapter, record_timing
    from .parallel import n_cores
    from .train import pick_device

    dev = pick_device(device).type
    targets = {"handson": 300.0}
    print(f"class preset, from an empty cache, {n_cores()} cores, device {dev}: papermill per chapter")
    out = {}
    for name in chapters:
        folder = Path(keep) / name if keep else Path(tempfile.mkdtemp(prefix=f"hrtem-class-{name}-"))
        if keep and folder.exists():
            raise ValueError(f"keep={str(keep)!r} already holds {folder}: the bench needs empty caches")
        try:
            params = {"preset": "class", "cache": str(folder / "cache"), "device": dev}
            start = time.perf_counter()
            execute_chapter(name, folder / "out", params, folder / "kernel.log")
            out[name] = time.perf_counter() - start
        finally:
            if not keep:
                shutil.rmtree(folder, ignore_errors=True)
        record_timing(f"chapter {name} {EMPTY_CACHE}", "class", out[name], cache)
        target = targets.get(name, 600.0)
        print(f"  {name:10s} {out[name] / 60:5.1f} min  (target {target / 60:.0f} min: "
              f"{'met' if out[name] <= target else 'MISSED'})", flush=True)
    return out
