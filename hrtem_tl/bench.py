"""Benchmarks that print figures (not tests): ``python -m hrtem_tl bench simulate|train``."""

from __future__ import annotations

import resource
import time
import tracemalloc

import numpy as np

from .presets import get_preset


def _timed(fn, repeat: int = 1):
    """(seconds per call of the fastest of ``repeat`` calls after one warm-up, peak traced MiB, result)."""
    out = fn()
    best = np.inf
    tracemalloc.start()
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return best, peak, out


def _max_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _fftw_plan(array: np.ndarray):
    """A one-thread FFTW_MEASURE 2D FFT of ``array``'s shape and dtype (what abTEM runs per slice)."""
    import pyfftw

    plan = pyfftw.builders.fft2(pyfftw.empty_aligned(array.shape, dtype=array.dtype), threads=1,
                                planner_effort="FFTW_MEASURE")
    return plan


def bench_simulate(presets=("cpu", "paper")) -> None:
    """Seconds per exit wave (scene, vacuum) and per derived image, peak memory, and the FFT floor."""
    from . import datasets as ds
    from . import simulate as sim
    from . import structures as st

    ds.configure_abtem()
    print("preset  grid   atoms  slices  scene_s  vacuum_s  fft_floor_s  derived_s  carbon_s  peak_MiB")
    for name in presets:
        pr = get_preset(name)
        rng = np.random.default_rng(0)
        thickness = 50.0  # Å, the middle of the study's 2-8 nm
        carbon_s, _, _ = _timed(lambda: st.amorphous_carbon(pr.extent, thickness, np.random.default_rng(0)))
        r = np.mean(pr.cdse_diameter) / 2
        scene = st.make_scene("CdSe", [r], pr.extent, thickness, rng)
        n = int(round(pr.extent / pr.sim_sampling))
        slices = int(np.ceil(scene.atoms.cell[2, 2] / pr.slice_thickness))
        scene_s, peak, waves = _timed(lambda: sim.exit_waves(scene.atoms, pr.sim_sampling, pr.slice_thickness, 1, 0))
        vac_s, _, vac = _timed(lambda: sim.exit_waves(scene.particles, pr.sim_sampling, pr.slice_thickness, 0, 0))
        fft_s, _, _ = _timed(_fftw_plan(waves[0]), repeat=5)
        small = sim.fourier_crop(waves, pr.downsample)
        derived_s, _, _ = _timed(lambda: sim.apply_dose(sim.intensity(small, pr.pixel_size, -100.0), 300,
                                                        pr.pixel_size, rng), repeat=5)
        print(f"{name:6s} {n:5d} {len(scene.atoms):7d} {slices:6d} {scene_s:8.2f} {vac_s:9.2f} "
              f"{2 * slices * fft_s:12.2f} {derived_s:10.4f} {carbon_s:9.2f} {peak:9.0f}")
    print(f"one frozen-phonon configuration per exit wave; multiply by n_phonons. fft_floor = 2 complex64 FFTs "
          f"per slice (FFTW, one thread, measured plan). process max RSS {_max_rss_gib():.2f} GiB")


def bench_train(presets=("cpu",), batches: int = 6) -> None:
    """Training images per second for each freezing option, at the cpu preset and at paper width."""
    import torch
    from torch.nn import functional as F

    from .model import FREEZE_OPTIONS, freeze
    from .train import _autocast, _to, mixed_precision, new_model, pick_device, precision_name

    dev = pick_device("auto")
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
