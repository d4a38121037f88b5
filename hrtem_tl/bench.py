"""Benchmarks that print figures (not tests): ``python -m hrtem_tl bench simulate|train``."""

from __future__ import annotations

import resource
import time
import tracemalloc

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


def bench_train(presets=("cpu",), batches: int = 6, device: str = "auto") -> None:
    """Training images per second for each freezing option, at the cpu preset and at paper width."""
    import torch
    from torch.nn import functional as F

    from .model import FREEZE_OPTIONS, freeze
    from .train import _autocast, _to, mixed_precision, new_model, pick_device, precision_name

    dev = pick_device(device)
    cases = []
    for name in presets:
        pr = get_preset(name)
        cases.append((f"{name} preset", pr.width, pr.crop or pr.image_pixels))
    cases.append(("paper width", 64, 640 if dev.type == "cuda" else 128))
    print(f"device {dev} (threads {torch.get_num_threads()}); batch 16; {precision_name(dev)}")
    print("case            width  size  params_M  " + "  ".join(f"{f:>8s}_img/s" for f in FREEZE_OPTIONS) + "  peak")
    for label, width, size in cases:
        rates = []
        for option in FREEZE_OPTIONS:
            model = new_model(width, 0).to(dev)
            if mixed_precision(dev):
                model.to(memory_format=torch.channels_last)
            if dev.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            freeze(model, option)
            model.train()
            opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
            x = _to(torch.randn(16, 1, size, size), dev)
            y = torch.randint(0, 2, (16, size, size), device=dev)

            def step():
                with _autocast(dev):
                    loss = F.cross_entropy(model(x).float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(batches):
                step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
            rates.append(16 * batches / (time.perf_counter() - start))
        params = sum(p.numel() for p in model.parameters()) / 1e6
        peak = (f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB GPU" if dev.type == "cuda"
                else f"{_max_rss_gib():.2f} GiB RSS")
        print(f"{label:15s} {width:5d} {size:5d} {params:9.2f}  " + "  ".join(f"{r:14.1f}" for r in rates)
              + f"  {peak}")
    bench_pretraining(device=device)


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
