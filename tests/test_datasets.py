import os
import subprocess
import sys

import numpy as np
import pytest

from hrtem_tl import datasets as ds
from hrtem_tl import structures as st
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
    # SIGINT as a terminal delivers it, whatever launched the tests: a shell without job control starts its
    # background commands with SIGINT ignored, and a Python started so never raises KeyboardInterrupt
    proc = subprocess.Popen([sys.executable, "-m", "hrtem_tl", "simulate", "--preset", "smoke", "--series", "dose"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
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


def test_scientific_parameters_in_the_studys_units_become_series_domains_and_conditions():
    """``with_parameters``: doses and defoci become the series' domains (labels in e-/Å² and Å, as the study's),
    fixed conditions enter the datasets' conditions; the study's own values change nothing (every key stays)."""
    cpu = ds.get_preset("cpu")
    dose = ds.with_parameters(cpu, doses="[80, 10, 20, 40]", dose_defocus=-5)
    assert ds.get_series("dose", dose).domains == ds.get_series("dose", dose).sources == ("10", "20", "40", "80")
    assert ds.get_series("dose", dose).conditions("10") == {"lattice": "CdSe", "size": "cdse", "defocus": -50.0,
                                                             "dose": 10.0}
    assert ds.changed_parameters(dose) == {"doses": [10.0, 20.0, 40.0, 80.0], "dose_defocus": -5.0}
    defocus = ds.with_parameters(cpu, {"defocus_values": [-20, -10, 0, 10, 20], "defocus_dose": 200})
    assert ds.get_series("defocus", defocus).domains == ("-200", "-100", "0", "100", "200")
    assert ds.get_series("defocus", defocus).sources == ("-100", "0", "100")  # the study's among them
    assert ds.get_series("defocus", defocus).fixed["dose"] == 200.0
    from hrtem_tl.study import Job

    # a row holds the losses on every domain of its series: other domains or conditions, other keys
    job = Job("dose", "pretrain", "30", 0, cpu.main_lr[0])
    others = (cpu, ds.with_parameters(cpu, doses=[30, 40]), ds.with_parameters(cpu, dose_defocus=-5))
    keys = {job.key(p) for p in others}
    assert len(keys) == 3 and Job("defocus", "pretrain", "0", 0, cpu.main_lr[0]).key(dose) == \
        Job("defocus", "pretrain", "0", 0, cpu.main_lr[0]).key(cpu)
    study = ds.study_parameters()
    same = ds.with_parameters(cpu, study)
    assert same.series_settings == cpu.series_settings and ds.changed_parameters(same) == {}
    assert ds.dataset_spec("dose", "30", "val", same) == ds.dataset_spec("dose", "30", "val", cpu)
    assert ds.parse_setting("doses=[10, 20]") == ("doses", [10, 20])
    assert ds.parse_setting("dose_defocus=-5") == ("dose_defocus", -5)


@pytest.mark.parametrize("params, message", [
    ({"doses": [0, 30]}, r"doses=\[0, 30\] must be a list of 2 or more distinct positive numbers \(e-/Å²\)"),
    ({"doses": "[30]"}, r"doses=\[30\] must be a list of 2 or more distinct positive numbers"),
    ({"doses": "thirty"}, r"doses='thirty' is not a number or a list of numbers"),
    ({"defocus_values": [5]}, r"defocus_values=\[5\] must be a list of 2 or more distinct numbers \(nm\)"),
    ({"defocus_values": [0, 5], "pretrain_defocus": [10]}, r"pretrain_defocus=\[10\] must be among defocus_values"),
    ({"defocus_dose": -1}, r"defocus_dose=-1 must be a positive number \(e-/Å²\)"),
    ({"transfer_size": 100}, r"transfer_size=100 must be a whole number of images from 1 to 32"),
    ({"epochs": 0}, r"epochs=0 must be a whole number, 1 or more"),
    ({"learning_rates": [1e-3]}, r"learning_rates=\[0.001\] must be two positive numbers below 1"),
    ({"wavelength": 0.02}, r"parameter 'wavelength' is unknown; allowed: doses, dose_defocus, "),
    ({"particle_diameters": [5, 3]}, r"particle_diameters=\[5, 3\] must be two numbers \[low, high\] in nm with "
                                     r"0 < low <= high <= 8 \(a particle must fit the 80 Å field\)"),
    ({"particle_diameters": [0, 3]}, r"particle_diameters=\[0, 3\] must be two numbers"),
    ({"small_radii": [1]}, r"small_radii=\[1\] must be two numbers \[low, high\] in nm"),
    ({"large_radii": [3, 4.5]}, r"large_radii=\[3, 4.5\] must be two numbers \[low, high\] in nm with 0 < low <= "
                                r"high <= 4 \(a particle must fit the 80 Å field\)"),
])
def test_a_bad_parameter_is_one_line_naming_it_and_what_is_allowed(params, message):
    with pytest.raises(ValueError, match=message):
        ds.with_parameters(ds.get_preset("cpu"), params)


def test_the_command_line_refuses_a_bad_parameter_before_writing_anything(tmp_path):
    cache = tmp_path / "cache"
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "simulate", "--series", "dose", "--preset", "smoke",
                             "--cache", str(cache), "--set", "doses=[0, 10]"], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: doses=[0, 10] must be a list of 2 or more distinct positive numbers (e-/Å²)"]
    assert not cache.exists()
    result = subprocess.run([sys.executable, "-m", "hrtem_tl", "claims", "--preset", "smoke", "--cache", str(cache),
                             "--set", "dose=[10]"], capture_output=True, text=True)
    assert result.returncode == 2 and "expected NAME=VALUE with NAME one of doses, dose_defocus" in result.stderr


def test_particle_sizes_are_parameters_that_key_only_their_own_scenes():
    """Other CdSe diameters make new dose and defocus scenes (their shared ones) and leave the structure series'
    alone; other small radii the structure series' small scenes only; the particles drawn lie in the range."""
    cpu = ds.get_preset("cpu")
    bigger = ds.with_parameters(cpu, particle_diameters=[4, 6])
    assert bigger.cdse_diameter == (40.0, 60.0) and ds.changed_parameters(bigger) == {"particle_diameters": [4, 6]}
    for series in ("dose", "defocus"):
        assert ds.dataset_spec(series, ds.get_series(series).domains[0], "val", bigger)["scenes"] != \
            ds.dataset_spec(series, ds.get_series(series).domains[0], "val", cpu)["scenes"]
    tiny = ds.with_parameters(cpu, small_radii="[0.5, 0.8]")
    assert tiny.size_radius == {"small": (5.0, 8.0), "large": (25.0, 35.0)}
    assert ds.dataset_spec("dose", "30", "val", tiny) == ds.dataset_spec("dose", "30", "val", cpu)
    spec = ds.dataset_spec("structure", "Cu_small", "val", tiny)["scene_specs"][0]
    scene, _ = ds.build_scene(spec, np.random.default_rng(0))
    assert 5.0 <= scene.radii.min() and scene.radii.max() <= 8.0
    assert ds.with_parameters(tiny, small_radii=[1, 2]) == cpu  # the study's values: the study's keys
    from hrtem_tl.study import Job

    dose_job, structure_job = Job("dose", "pretrain", "30", 0, 3e-3), Job("structure", "pretrain", "Cu_small", 0, 3e-3)
    assert dose_job.key(tiny) == dose_job.key(cpu) and structure_job.key(tiny) != structure_job.key(cpu)
    assert structure_job.key(bigger) == structure_job.key(cpu) and dose_job.key(bigger) != dose_job.key(cpu)
    assert "--set small_radii=0.5,0.8" in ds.command("simulate", "structure", tiny)
    smoke = ds.get_preset("smoke")  # its own scaled-down particles are its preset's, not a change
    assert ds.changed_parameters(smoke) == {} and ds.with_parameters(smoke, {}) == smoke


def test_the_dose_and_defocus_material_is_a_parameter_that_keys_only_their_scenes(tmp_path):
    """material: gold or a CIF crystal for the dose and defocus series' shared scenes; the structure series keeps its
    keys, the study's CdSe gives back the study's preset; the optical distance reads the material's fringes."""
    from ase.build import bulk
    from ase.io import write

    from hrtem_tl import optics
    from hrtem_tl.study import Job

    cpu = ds.get_preset("cpu")
    gold = ds.with_parameters(cpu, material="Au")
    assert gold.particle_material == {"name": "Au"} and ds.changed_parameters(gold) == {"material": "Au"}
    assert ds.get_series("dose", gold).conditions("30")["lattice"] == "Au"
    specs = ds.dataset_spec("defocus", "0", "val", gold)["scene_specs"]
    assert {s["lattice"] for s in specs} == {"Au"}
    assert set(ds.dataset_spec("defocus", "0", "val", gold)["scenes"]).isdisjoint(
        ds.dataset_spec("defocus", "0", "val", cpu)["scenes"])
    assert ds.dataset_spec("structure", "Cu_small", "val", gold) == ds.dataset_spec("structure", "Cu_small", "val", cpu)
    for series, domain, same in (("dose", "30", False), ("defocus", "0", False), ("structure", "C_small", True)):
        job = Job(series, "pretrain", domain, 0, cpu.main_lr[0])
        assert (job.key(gold) == job.key(cpu)) is same
    assert ds.with_parameters(gold, material="CdSe") == cpu
    assert "--set material=Au" in ds.command("simulate", "dose", gold)
    scene, _ = ds.build_scene(specs[0], np.random.default_rng(0))
    assert set(scene.particles.get_chemical_symbols()) == {"Au"}
    # the optical distance reads the material's fringes: gold's (111) at 2.355 Å, not CdSe's
    g = [q for q, _ in optics.reflections(ds.particle_lattice(gold), gold.pixel_size)]
    assert g[0] == pytest.approx(np.sqrt(3) / 4.0782, abs=1e-3)
    assert optics.domain_distance("defocus", "-100", "100", 0.5, (), ds.particle_lattice(gold)) != \
        pytest.approx(optics.domain_distance("defocus", "-100", "100", 0.5))
    cif = tmp_path / "NaCl.cif"
    write(cif, bulk("NaCl", "rocksalt", a=5.64, cubic=True), format="cif")
    salt = ds.with_parameters(cpu, material=str(cif))
    spec = ds.dataset_spec("dose", "30", "val", salt)["scene_specs"][0]
    assert spec["lattice"] == "NaCl" and ds.lattice_of(spec).name == "NaCl"  # the CIF's cell travels in its spec
    assert ds.command("simulate", "dose", salt).endswith("--set material=NaCl.cif")
    assert ds.with_parameters(salt, material="NaCl") == salt  # by its name, once it is the preset's


@pytest.mark.parametrize("material, message", [
    ("Unobtainium", r"material: 'Unobtainium' is neither a built-in lattice \(ZnS, CdSe, .*Au\) nor a CIF file"),
    ("missing.cif", r"material: the CIF file 'missing.cif' does not exist"),
    (3, r"material=3 must be one lattice name"),
])
def test_a_bad_material_is_one_line(material, message):
    with pytest.raises(ValueError, match=message):
        ds.with_parameters(ds.get_preset("cpu"), material=material)


def test_the_studys_values_undo_other_parameters():
    cpu = ds.get_preset("cpu")
    other = ds.with_parameters(cpu, doses=[10, 20], dose_defocus=-5, defocus_values=[0, 5])
    back = ds.with_parameters(other, ds.study_parameters())
    assert back.series_settings == cpu.series_settings and back == cpu
    assert ds.with_parameters(cpu, doses=[600, 30, 300, 75, 150]) == cpu


def test_lattices_name_the_structure_series_materials_built_in_or_from_a_cif(tmp_path):
    from ase.build import bulk
    from ase.io import write

    from hrtem_tl import study

    cif = tmp_path / "NaCl.cif"
    write(cif, bulk("NaCl", "rocksalt", a=5.64, cubic=True), format="cif")
    cpu = ds.get_preset("cpu")
    other = ds.with_parameters(cpu, lattices=["Au", str(cif)])
    series = ds.get_series("structure", other)
    assert series.domains == series.sources == ("Au_small", "Au_large", "NaCl_small", "NaCl_large")
    specs = ds.scene_specs(series, other, "val")
    assert {s["lattice"] for s in specs} == {"Au", "NaCl"}
    assert all(("crystal" in s) == (s["lattice"] == "NaCl") for s in specs)  # the CIF's cell travels in its spec
    assert ds.lattice_of(next(s for s in specs if s["lattice"] == "NaCl")).name == "NaCl"
    # keyed by what the crystal is: another label sigma is another scene
    blurred = ds.with_parameters(cpu, lattices=["Au", str(cif)], cif_label_blur=1.0)
    def key(pr):
        return {ds.key_of(s) for s in ds.scene_specs(ds.get_series("structure", pr), pr, "val")
                if s["lattice"] == "NaCl"}

    assert key(blurred).isdisjoint(key(other))
    assert ds.study_parameters(other)["lattices"] == ["Au", "NaCl"] and ds.changed_parameters(other)["lattices"]
    # the study's nine are the study's keys
    assert ds.with_parameters(cpu, lattices=list(st.LATTICES)) == cpu
    pretrain = next(j for j in study.grid("structure", cpu) if j.kind == "pretrain")
    assert pretrain.key(ds.with_parameters(cpu, lattices=list(st.LATTICES))) == pretrain.key(cpu)
    assert ds.parse_value("lattices", "Cu, Au") == ["Cu", "Au"]


@pytest.mark.parametrize("lattices, message", [
    (["Cu", "Unobtainium"], r"lattices: 'Unobtainium' is neither a built-in lattice \(ZnS, .*, Au\) nor a CIF file"),
    (["Cu", "Cu"], r"lattices=\['Cu', 'Cu'\] names a material twice"),
    ([], r"lattices=\[\] must be a list of one or more lattice names"),
    (["nowhere/oxide.cif"], r"lattices: the CIF file 'nowhere/oxide.cif' does not exist"),
])
def test_a_bad_lattice_is_one_line(lattices, message):
    with pytest.raises(ValueError, match=message):
        ds.with_parameters(ds.get_preset("cpu"), lattices=lattices)
