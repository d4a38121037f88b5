import os
import subprocess
import sys

import numpy as np
import pytest

from hrtem_tl import datasets as ds
from hrtem_tl.cache import load_or_none


def test_series_are_data():
    assert ds.SERIES["defocus"].domains == tuple(str(d) for d in range(-250, 251, 50))
    assert ds.SERIES["defocus"].sources == ("-100", "-50", "0", "50", "100")
    assert ds.SERIES["dose"].domains == ("30", "75", "150", "300", "600")
    assert len(ds.SERIES["structure"].domains) == 18
    assert ds.SERIES["structure"].conditions("Fe3O4_large") == {
        "defocus": -100.0, "dose": 300.0, "lattice": "Fe3O4", "size": "large"}
    assert ds.SERIES["defocus"].conditions("-250")["dose"] == 400.0
    assert ds.SERIES["dose"].conditions("75")["defocus"] == -100.0


def test_one_exit_wave_feeds_every_defocus_and_dose_dataset(smoke_cache):
    keys = {ds.load_dataset(s, d, "train", "smoke", smoke_cache).meta["scenes"].__repr__()
            for s in ("defocus", "dose") for d in ds.SERIES[s].domains}
    assert len(keys) == 1
    masks = [ds.load_dataset(s, d, "val", "smoke", smoke_cache).masks for s, d in (("dose", "30"), ("defocus", "250"))]
    np.testing.assert_array_equal(*masks)  # labels do not depend on defocus or dose
    n_scenes = len(list((smoke_cache / "scenes" / "CdSe").glob("cdse-*.npz")))
    pr = ds.get_preset("smoke")
    assert n_scenes == pr.n_train + pr.n_val


def test_dataset_metadata_and_defocus_draws(smoke_cache):
    d = ds.load_dataset("defocus", "-250", "train", "smoke", smoke_cache)
    assert d.meta["pixel_size"] == 0.5 and d.meta["lattice"] == "CdSe" and d.meta["dose"] == 400.0
    assert d.images.shape == (8, 96, 96) and d.masks.shape == (8, 96, 96)
    defocus = np.array(d.meta["defocus"])
    assert abs(defocus.mean() + 250) < 4 * ds.DEFOCUS_SD / np.sqrt(len(defocus))
    assert 0 < defocus.std() < 3 * ds.DEFOCUS_SD


def test_corrupt_artefact_is_reported_and_recomputed(smoke_cache, caplog):
    path = ds.dataset_path("dose", "150", "val", "smoke", smoke_cache)
    good = ds.load(path).images.copy()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated, as by a kill without atomic writes
    assert load_or_none(path) is None
    assert f"damaged artefact {path}" in caplog.text and not path.exists()
    assert any((smoke_cache / "damaged" / "datasets").rglob(path.name))  # moved aside, not deleted
    ds.derive_dataset("dose", "150", "val", "smoke", smoke_cache)
    np.testing.assert_array_equal(ds.load(path).images, good)
    flipped = bytearray(path.read_bytes())
    flipped[len(flipped) // 2] ^= 0xFF  # bit rot inside the compressed payload
    path.write_bytes(bytes(flipped))
    assert load_or_none(path) is None


def test_rerun_redoes_only_the_missing_work(smoke_cache):
    scenes = sorted((smoke_cache / "scenes" / "CdSe").glob("cdse-*.npz"))
    removed = scenes[0]
    removed.unlink()
    stamps = {p: p.stat().st_mtime_ns for p in scenes[1:]}
    ds.simulate_series("dose", "smoke", smoke_cache, scheduler="synchronous", progress=False)
    assert removed.exists()
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_no_temporary_files_are_left(smoke_cache):
    assert not [p for p in smoke_cache.rglob("*.tmp")]


def _cli(*args, cwd):
    env = dict(os.environ, HRTEM_TL_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "hrtem_tl", *args], capture_output=True, text=True, cwd=cwd,
                          env=env)


@pytest.mark.parametrize("args, message", [
    (["simulate", "--preset", "huge"], "preset='huge' is unknown; allowed: paper, cpu, cpu-fine, class, smoke"),
    (["simulate", "--series", "tilt"], "series='tilt' is unknown; allowed: defocus, dose, structure, all"),
    (["simulate", "--device", "tpu"], "device='tpu' is unknown; allowed: auto, cpu, cuda"),
    (["simulate", "--device", "gpu"], "device='gpu' is unknown; allowed: auto, cpu, cuda"),
    (["train", "--seeds", "0,x"], "seeds='0,x' is not a list of distinct non-negative integers"),
    (["train", "--series", "dose", "--preset", "smoke"], "run `python -m hrtem_tl simulate --series dose"),
])
def test_bad_input_is_one_line_nonzero_and_writes_nothing(tmp_path, args, message):
    out = _cli(*args, cwd=tmp_path)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0]
    assert not (tmp_path / "cache").exists()


def test_bad_domain_and_split_are_clear():
    with pytest.raises(ValueError, match="domain='45' is not in the dose series; allowed: 30, 75"):
        ds.dataset_spec("dose", "45", "train", "smoke")
    with pytest.raises(ValueError, match="split='test' is unknown; allowed: train, val"):
        ds.dataset_spec("dose", "30", "test", "smoke")


def test_ctrl_c_stops_everything_cleanly(tmp_path):
    """Ctrl-C during the simulation stage (a local Dask cluster at work): a one-line message, exit status 130,
    no worker left running, no half-written file; a rerun resumes."""
    import signal
    import time

    env = dict(os.environ, HRTEM_TL_CACHE=str(tmp_path / "cache"))
    proc = subprocess.Popen([sys.executable, "-m", "hrtem_tl", "simulate", "--preset", "smoke", "--series", "dose"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "cache").glob("scenes/*/*.npz")):
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    children = _descendants(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert err.strip().splitlines()[-1] == "interrupted: finished artefacts are kept; rerun to resume"
    time.sleep(1)
    assert not [pid for pid in children if _alive(pid)], "workers left running"
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    done = len(list((tmp_path / "cache").glob("scenes/*/*.npz")))
    rerun = _cli("simulate", "--preset", "smoke", "--series", "dose", cwd=tmp_path)
    assert rerun.returncode == 0 and len(list((tmp_path / "cache").glob("scenes/*/*.npz"))) >= done


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc)."""
    from pathlib import Path

    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    out, frontier = [], [pid]
    while frontier:
        kids = [p for p, parent in parents.items() if parent in frontier]
        out += kids
        frontier = kids
    return out


def _alive(pid: int) -> bool:
    from pathlib import Path

    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


DAMAGES = ("truncate", "zero", "other")


def _damage(path, how: str, other) -> None:
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "zero": bytes(len(data)),
                      "other": other.read_bytes()}[how])


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("kind", ["scene", "dataset"])
def test_a_damaged_simulation_artefact_is_moved_aside_and_rebuilt_equal(smoke_cache, caplog, kind, how):
    """A scene or dataset cut short, zeroed or holding another artefact's bytes is named, moved to
    <cache>/damaged/ and rebuilt equal to the clean one by the next run."""
    if kind == "scene":
        path, other = sorted((smoke_cache / "scenes" / "CdSe").glob("cdse-*.npz"))[:2]
    else:
        path = ds.dataset_path("dose", "300", "val", "smoke", smoke_cache)
        other = ds.dataset_path("dose", "600", "val", "smoke", smoke_cache)
    clean = load_or_none(path)
    _damage(path, how, other)  # "other": a sound npz whose recorded name is another artefact's
    assert load_or_none(path) is None
    assert f"damaged artefact {path}" in caplog.text
    assert any((smoke_cache / "damaged").rglob(path.name))
    ds.simulate_series("dose", "smoke", smoke_cache, scheduler="synchronous", progress=False)
    rebuilt = load_or_none(path)
    assert rebuilt[0] == clean[0] and rebuilt[1].keys() == clean[1].keys()
    for key in clean[1]:
        np.testing.assert_array_equal(rebuilt[1][key], clean[1][key])


@pytest.mark.parametrize("how", DAMAGES)
def test_damaged_fftw_wisdom_is_moved_aside_and_planned_again(smoke_cache, tmp_path, caplog, how):
    import shutil

    from hrtem_tl import multislice

    wisdom = ds.wisdom_path(smoke_cache)
    cache = tmp_path / "cache"
    target = cache / "fftw" / wisdom.name
    target.parent.mkdir(parents=True)
    shutil.copy(wisdom, target)
    _damage(target, how, ds.dataset_path("dose", "300", "val", "smoke", smoke_cache))
    multislice.use_wisdom.cache_clear()
    assert multislice.use_wisdom(target) is False
    assert f"damaged artefact {target}" in caplog.text and not target.exists()
    assert (cache / "damaged" / "fftw" / wisdom.name).exists()
    ds.plan_fftw(ds.get_preset("smoke"), cache)  # what the next simulation does first
    multislice.use_wisdom.cache_clear()
    assert multislice.use_wisdom(target) is True


def test_a_series_runs_with_its_own_pixels_and_other_series_keep_theirs():
    """``series_settings``: the cpu preset's dose series on 0.25 Å pixels, the others on 0.5 Å; a preset resolved
    for one series refuses another; an unknown field is a one-line error."""
    from dataclasses import replace

    cpu = ds.get_preset("cpu")
    assert cpu.for_series("dose").pixel_size == 0.25 and cpu.for_series("dose").image_pixels == 320
    assert cpu.for_series("defocus").pixel_size == cpu.for_series("structure").pixel_size == cpu.pixel_size == 0.5
    assert ds.dataset_spec("dose", "30", "val", cpu)["pixel_size"] == 0.25
    assert ds.dataset_spec("defocus", "0", "val", cpu)["pixel_size"] == 0.5
    assert {s["sim"]["pixel_size"] for s in ds.scene_specs(ds.SERIES["dose"], cpu, "val")} == {0.25}
    dose = cpu.for_series("dose")
    assert dose.for_series("dose") is dose
    with pytest.raises(ValueError, match="resolved for the dose series, not defocus"):
        dose.for_series("defocus")
    with pytest.raises(ValueError, match=r"series_settings\['dose'\] sets extent; allowed: pixel_size, "):
        replace(cpu, series_settings={"dose": {"extent": 100.0}})
