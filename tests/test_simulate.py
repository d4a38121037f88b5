"""Physics of the imaging stage, tested with physics."""

import numpy as np
import pytest
from ase import Atoms

from hrtem_tl import datasets as ds
from hrtem_tl import simulate as sim
from hrtem_tl import structures as st
from hrtem_tl.cache import load_npz


def test_wavelength_at_300_kv():
    assert sim.wavelength(300e3) == pytest.approx(0.019687, rel=1e-4)  # Å


def test_ctf_matches_abtem():
    import abtem

    rng = np.random.default_rng(0)
    wave = np.exp(1j * rng.normal(0, 0.3, (64, 64))).astype(np.complex64)
    ctf = abtem.CTF(defocus=80.0, focal_spread=sim.FOCAL_SPREAD, Cs=3e4)
    ref = abtem.Waves(wave, energy=sim.ENERGY, sampling=0.5).apply_ctf(ctf).intensity().compute().array
    ours = sim.intensity(wave[None], 0.5, 80.0, cs=3e4)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_fourier_crop_keeps_a_plane_wave_and_its_fringes():
    n, factor, pixel = 128, 2, 0.25
    x = np.arange(n) * pixel
    k = 1 / 2.0  # 2 Å fringes
    wave = np.exp(1j * 0.2 * np.cos(2 * np.pi * k * x))[None, :].repeat(n, 0)[None].astype(np.complex64)
    small = sim.fourier_crop(wave, factor)
    assert small.shape == (1, 64, 64)
    assert np.abs(small).mean() == pytest.approx(1.0, abs=1e-3)
    spec = np.abs(np.fft.fft(np.angle(small[0, 0])))
    assert np.argmax(spec[1:32]) + 1 == round(k * n * pixel)


def _zone_axis_particle(extent=64.0, radius=26.0):
    lat = st.get_lattice("CdSe")
    rng = np.random.default_rng(0)
    p = st.nanoparticle(lat, radius, rng, rotation=np.eye(3))  # c axis along the beam: [0001] zone
    p.positions += [extent / 2, extent / 2, radius + 1]
    return Atoms(p.numbers, positions=p.positions, cell=[extent, extent, 2 * radius + 2])


def _radial_peak(image, pixel, expected, pad=4):
    """Centroid of the radially averaged power spectrum within +-12 % of an expected frequency (1/Å)."""
    n = image.shape[0] * pad
    power = np.abs(np.fft.fft2(image - image.mean(), s=(n, n))) ** 2
    k = np.sqrt(sim.spatial_frequencies(n, pixel))
    window = (k > 0.88 * expected) & (k < 1.12 * expected)
    bins = np.linspace(0.88 * expected, 1.12 * expected, 25)
    idx = np.digitize(k[window], bins)
    profile = np.bincount(idx, power[window], minlength=len(bins) + 1)[1:len(bins)]
    centres = (bins[:-1] + bins[1:]) / 2
    top = np.argmax(profile)
    sl = slice(max(top - 2, 0), top + 3)
    return float(np.sum(centres[sl] * profile[sl]) / np.sum(profile[sl]))


def test_fft_peaks_sit_at_the_cdse_lattice_spacings():
    atoms = _zone_axis_particle()
    waves = sim.fourier_crop(sim.exit_waves(atoms, 0.25, 2.0, 0, 0), 2)
    image = sim.intensity(waves, 0.5, 50.0)
    a = st.get_lattice("CdSe").a
    for d in (a * np.sqrt(3) / 2, a / 2):  # {10-10} 3.72 Å, {11-20} 2.15 Å
        assert 1 / _radial_peak(image, 0.5, 1 / d) == pytest.approx(d, rel=0.03)


def test_dose_is_poisson_with_mean_dose_times_pixel_area():
    rng = np.random.default_rng(0)
    image = np.ones((200, 200), np.float32)
    for dose in (30, 600):
        counts = sim.apply_dose(image, dose, 0.5, rng)
        expected = dose * 0.25
        assert counts.mean() == pytest.approx(expected, rel=0.02)
        assert counts.var() == pytest.approx(expected, rel=0.05)
        assert np.all(counts == np.round(counts))
    with pytest.raises(ValueError, match="dose=0 must be > 0"):
        sim.apply_dose(image, 0, 0.5, rng)


def test_stored_datasets_carry_the_dose(smoke_cache):
    for dose in ("30", "600"):
        d = ds.load_dataset("dose", dose, "train", "smoke", smoke_cache)
        per_pixel = float(dose) * d.meta["pixel_size"] ** 2
        # unit incident intensity; the focal-spread envelope removes a little of it
        assert d.images.mean() / per_pixel == pytest.approx(1.0, abs=0.05)
        assert d.images.dtype == np.float32 and d.masks.dtype == np.uint8


def test_noise_grows_as_the_dose_falls(smoke_cache):
    snr = {}
    for dose in ("30", "600"):
        d = ds.load_dataset("dose", dose, "train", "smoke", smoke_cache)
        rel = d.images / d.images.mean(axis=(1, 2), keepdims=True)
        snr[dose] = rel.std()
    assert snr["30"] > 2 * snr["600"]


@pytest.mark.parametrize("name", ["CdSe", "Cu", "Fe", "Si"])
def test_label_area_matches_the_projected_particles(name):
    rng = np.random.default_rng(7)
    scene = st.make_scene(name, [14.0], 64, 10, rng)
    vac = sim.fourier_crop(sim.exit_waves(scene.particles, 0.25, 2.0, 0, 0), 2)[0]
    mask = sim.soft_label(vac, 0.5, st.get_lattice(name).label_blur) > ds.LABEL_LEVEL
    area = mask.sum() * 0.25
    assert area == pytest.approx(scene.projected_area, rel=0.25)
    # and it sits where the particle is (abTEM arrays are indexed [x, y])
    xx, yy = np.nonzero(mask)
    centre = np.array([xx.mean(), yy.mean()]) * 0.5
    assert np.linalg.norm(centre - scene.centres[0]) < 3.0


def test_zero_defocus_is_the_minimum_contrast_defocus():
    atoms = _zone_axis_particle(48, 15)
    vac = sim.fourier_crop(sim.exit_waves(atoms, 0.25, 2.0, 0, 0), 2)[0]
    z0 = sim.calibrate_zero_defocus(vac, 0.5)
    var = lambda df: sim.intensity(vac[None], 0.5, df).var()  # noqa: E731
    assert all(var(z0) <= var(z0 + d) for d in (-20, -5, -0.5, 0.5, 5, 20))
    assert abs(z0) < 2 * 15 + 10  # within the particle's thickness of its exit plane


def test_same_seed_same_arrays(tmp_path):
    spec = ds.scene_specs(ds.SERIES["dose"], ds.get_preset("smoke"), "val")[0]
    a = load_npz(ds.simulate_scene(spec, tmp_path / "a"))
    b = load_npz(ds.simulate_scene(spec, tmp_path / "b"))
    for key in ("waves", "vacuum", "mask"):
        np.testing.assert_array_equal(a[1][key], b[1][key])
    assert a[0]["zero_defocus"] == b[0]["zero_defocus"]


@pytest.fixture(scope="module")
def small_scene():
    return st.make_scene("CdSe", [10.0], 48, 20, np.random.default_rng(1), max_faults=1)


@pytest.mark.parametrize("n_phonons", [0, 2])
def test_exact_multislice_equals_plain_abtem(small_scene, n_phonons):
    from hrtem_tl import multislice

    ds.configure_abtem()
    ref = sim.abtem_exit_waves(small_scene.atoms, 0.25, 2.0, n_phonons, 5)
    for backend in ("fftw", np):  # FFTW plans and numba loops; the array-module code that CuPy runs
        ours = multislice.exit_waves(small_scene.atoms, 0.25, 2.0, n_phonons, 5, sim.ENERGY, sim.PHONON_SIGMA,
                                     backend=backend, exact=True)
        assert ours.shape == ref.shape and ours.dtype == np.complex64
        assert np.abs(ours - ref).max() < 2e-5  # float32 rounding of unit-amplitude waves


def test_fast_multislice_changes_images_far_below_the_studys_noise(small_scene):
    """The default (band-limited potential) against plain abTEM, as images at -10 nm: the difference is a small
    fraction of the Poisson noise at the study's highest dose (600 e-/Å2 on 0.2 Å pixels = 24 e- per pixel)."""
    ds.configure_abtem()
    fast = sim.fourier_crop(sim.exit_waves(small_scene.atoms, 0.25, 2.0, 2, 5), 2)
    ref = sim.fourier_crop(sim.abtem_exit_waves(small_scene.atoms, 0.25, 2.0, 2, 5), 2)
    a, b = (sim.intensity(w, 0.5, -100.0) for w in (fast, ref))
    noise = np.sqrt(b.mean() / (600 * 0.2 ** 2))
    assert np.sqrt(np.mean((a - b) ** 2)) < 0.05 * noise
    assert np.abs(a - b).max() < 0.5 * noise


def test_contrast_by_defocus_is_the_image_variance():
    atoms = _zone_axis_particle(48, 15)
    vac = sim.fourier_crop(sim.exit_waves(atoms, 0.25, 2.0, 0, 0, exact=True), 2)[0]
    grid = np.arange(-40.0, 41.0, 1.0)
    direct = np.array([sim.intensity(vac[None], 0.5, d).var() for d in grid])
    np.testing.assert_allclose(sim.contrast_by_defocus(vac, 0.5, grid), direct, rtol=1e-3)


def test_counts_per_pixel_can_follow_another_pixel_size(smoke_cache):
    """``count_pixel_size`` (an ablation knob): electrons per pixel = dose x count_pixel_size², the images otherwise
    the same scenes and optics."""
    from dataclasses import replace

    preset = replace(ds.get_preset("smoke"), count_pixel_size=0.2)
    path = ds.derive_dataset("dose", "600", "train", preset, smoke_cache)
    d = ds.load(path)
    physical = ds.load_dataset("dose", "600", "train", "smoke", smoke_cache)
    assert d.meta["scenes"] == physical.meta["scenes"]
    assert d.images.mean() / (600 * 0.2 ** 2) == pytest.approx(1.0, abs=0.05)
    assert physical.images.mean() / d.images.mean() == pytest.approx((0.5 / 0.2) ** 2, rel=0.05)


# ---------------------------------------------------------------- another microscope (voltage, Cs, focal spread)

def test_wavelength_and_phase_at_200_kv_follow_the_interaction_constant():
    """At 200 kV the wavelength is 0.02508 Å, and a thin object's exit-wave phase grows by the ratio of the
    interaction constants sigma = 2 pi / (lambda E) (m0c2 + E) / (2 m0c2 + E): 1.117 from 300 to 200 kV."""
    assert sim.wavelength(200e3) == pytest.approx(0.025079, rel=1e-4)

    def sigma(energy):
        m0c2 = 510998.95
        return 2 * np.pi / (sim.wavelength(energy) * energy) * (m0c2 + energy) / (2 * m0c2 + energy)

    carbon = st.amorphous_carbon(16.0, 10.0, np.random.default_rng(0))
    phase = {e: np.angle(sim.exit_waves(carbon, 0.25, 2.0, 0, 0, exact=True, energy=e)[0]) for e in (200e3, 300e3)}
    ratio = np.std(phase[200e3]) / np.std(phase[300e3])
    assert ratio == pytest.approx(sigma(200e3) / sigma(300e3), rel=0.02)


def test_contrast_by_defocus_is_the_image_variance_with_another_microscope():
    atoms = _zone_axis_particle(48, 15)
    optics = {"energy": 200e3, "cs": 1.2e7, "focal_spread": 30.0}
    vac = sim.fourier_crop(sim.exit_waves(atoms, 0.25, 2.0, 0, 0, exact=True, energy=200e3), 2)[0]
    grid = np.arange(-40.0, 41.0, 1.0)
    direct = np.array([sim.intensity(vac[None], 0.5, d, **optics).var() for d in grid])
    np.testing.assert_allclose(sim.contrast_by_defocus(vac, 0.5, grid, **optics), direct, rtol=1e-3)
    default = sim.contrast_by_defocus(vac, 0.5, grid)
    assert not np.allclose(default, direct, rtol=1e-2)  # the optics change the contrast


def test_a_microscope_keys_the_scenes_it_images_and_the_studys_keeps_theirs():
    cpu = ds.get_preset("cpu")
    series = ds.get_series("dose", cpu)
    keys = lambda pr: {ds.key_of(s) for s in ds.scene_specs(series, pr, "val")}  # noqa: E731
    at_200 = ds.with_parameters(cpu, voltage=200)
    assert at_200.microscope == {"energy": 200e3} and keys(at_200).isdisjoint(keys(cpu))
    assert ds.with_parameters(cpu, voltage=300, cs=0, focal_spread=10) == cpu  # the study's: the study's keys
    assert sim.microscope(ds.scene_specs(series, at_200, "val")[0]["sim"])["energy"] == 200e3
    assert ds.changed_parameters(ds.with_parameters(cpu, cs=1.2)) == {"cs": 1.2}


@pytest.mark.parametrize("params, message", [
    ({"voltage": 400}, r"voltage=400 must be a number from 60 to 300 kV"),
    ({"voltage": "high"}, r"voltage='high' is not a number"),
    ({"cs": 20}, r"cs=20 must be a number from -10 to 10 mm"),
    ({"focal_spread": -1}, r"focal_spread=-1 must be a number from 0 to 200 Å"),
])
def test_a_bad_microscope_is_one_line(params, message):
    with pytest.raises(ValueError, match=message):
        ds.with_parameters(ds.get_preset("cpu"), params)
