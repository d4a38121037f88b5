"""The optical distance between domains, tested with physics: CTF zeros, symmetry, growth with the defocus
difference on a domain's side of focus, the contrast reversal across focus, the lattice's allowed fringes."""

from __future__ import annotations

import numpy as np
import pytest

from hrtem_tl import optics
from hrtem_tl.simulate import ctf_kernel, wavelength

DOMAINS = [-250.0, -200.0, -150.0, -100.0, -50.0, 0.0, 50.0, 100.0, 150.0, 200.0, 250.0]


def test_wavelength_at_300_kv():
    assert wavelength(300e3) == pytest.approx(0.019687, rel=1e-4)  # Å, relativistic


@pytest.mark.parametrize("defocus", [-250.0, -100.0, 50.0, 200.0])
def test_ctf_zeros_sit_where_chi_is_a_multiple_of_pi(defocus):
    zeros = optics.ctf_zeros(defocus, n=3)
    assert np.allclose(np.abs(optics.chi(zeros, defocus)), np.pi * np.arange(1, 4), rtol=1e-9)
    assert np.allclose(optics.phase_ctf(zeros, defocus), 0, atol=1e-9)
    between = (zeros[:-1] + zeros[1:]) / 2
    assert (np.abs(optics.phase_ctf(between, defocus)) > 0.5).all()  # real oscillations, not a flat curve


def test_chi_and_envelope_match_the_simulation_kernel():
    """The simulation applies exp(-i chi) E on the FFT grid: its phase and modulus are this module's chi and E."""
    n, px, df = 64, 0.5, -100.0
    kernel = ctf_kernel(n, px, df)
    k = np.fft.fftfreq(n, d=px)
    q = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    assert np.allclose(np.abs(kernel), optics.envelope(q), atol=1e-6)
    assert np.allclose(np.angle(kernel), np.angle(np.exp(-1j * optics.chi(q, df))), atol=1e-4)


def test_cdse_fringes_are_its_allowed_reflections():
    refl = dict(optics.reflections("CdSe", 0.2))
    a, c = 4.2985, 7.0152
    d100, d002, d101 = a * np.sqrt(3) / 2, c / 2, 1 / np.sqrt(4 / (3 * a**2) + 1 / c**2)
    for d in (d100, d002, d101):
        assert any(abs(g - 1 / d) < 1e-3 for g in refl), d
    assert not any(abs(g - 1 / c) < 1e-3 for g in refl)  # (001) is extinct in P6_3mc
    # the weights fade with |g|: the mean amplitude of the fringes beyond 1/Å is below that of those within it
    low = [f for g, f in refl.items() if g < 1]
    high = [f for g, f in refl.items() if g > 1]
    assert np.mean(high) < np.mean(low)


@pytest.mark.parametrize("a", [-100.0, 0.0, 100.0])
def test_distance_is_zero_for_a_domain_and_itself_and_symmetric(a):
    assert optics.defocus_distance(a, a) == pytest.approx(0, abs=1e-9)
    for b in (-250.0, -50.0, 150.0):
        assert optics.defocus_distance(a, b) == pytest.approx(optics.defocus_distance(b, a), rel=1e-9)
        assert optics.defocus_distance(a, b) > 0


@pytest.mark.parametrize("source", [-100.0, -50.0, 50.0, 100.0])
def test_distance_grows_with_the_defocus_difference_on_the_sources_side_of_focus(source):
    side = [d for d in DOMAINS if np.sign(d) == np.sign(source)]
    away = sorted(side, key=lambda d: abs(d - source))  # from the source outwards, both directions
    for direction in (1, -1):
        steps = [d for d in away if np.sign(d - source) == direction]
        dist = [optics.defocus_distance(source, d) for d in steps]
        assert all(b > a for a, b in zip(dist, dist[1:])), (source, steps, dist)


def test_the_mirror_defocus_is_the_farthest_domain():
    """Without Cs, +f images every fringe with the contrast of -f reversed: the largest distance from -10 nm."""
    dist = {b: optics.defocus_distance(-100.0, b) for b in DOMAINS}
    assert max(dist, key=dist.get) == 100.0
    assert dist[100.0] > 1.0  # anti-correlated curves: beyond unrelated ones


def test_dose_distance_is_the_log_ratio_of_counts():
    assert optics.dose_distance(30, 600) == pytest.approx(np.log(20))
    assert optics.dose_distance(600, 30) == optics.dose_distance(30, 600)
    assert optics.domain_distance("dose", "150", "150") == 0
    with pytest.raises(ValueError, match="series='structure' has no optical distance; allowed: defocus, dose"):
        optics.domain_distance("structure", "Cu_small", "Ag_small")


def test_fringe_contrast_is_weakest_in_focus_and_mirror_symmetric_without_cs():
    """A weak phase object in focus shows little contrast (sin chi ~ 0); without Cs, +f and -f transfer alike."""
    contrast = {f: optics.fringe_contrast(f, "CdSe", 0.5) for f in (-250.0, -100.0, 0.0, 100.0, 250.0)}
    assert all(0 < c <= 1 for c in contrast.values())
    assert contrast[0.0] < 0.6 * min(c for f, c in contrast.items() if f != 0)
    assert contrast[100.0] == pytest.approx(contrast[-100.0], rel=1e-9)
