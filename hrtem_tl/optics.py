"""How far apart two imaging domains are: a contrast-transfer distance (defocus) and a counts distance (dose).

Ours, inspired by L. Rangel DaCosta and M. C. Scott, "Contrast transfer functions help quantify neural network
out-of-distribution generalization in HRTEM" (arXiv 2512.09067, 2025), which relates the loss on a test condition
to how the contrast transfer functions of training and test conditions differ; its formula is not in the material
at hand, so this is not it. Definitions (units: Å, 1/Å, electrons per Å²):

- Phase contrast transfer of a domain with defocus ``f`` (abTEM's sign: positive is underfocus), the optics that
  ``simulate`` applies (300 kV, 10 Å focal spread, Cs = 0): for a weak phase object the image spectrum is
  ``2 sin(chi(q)) E(q)`` times the phase spectrum, with ``chi(q) = -pi lambda f q^2 + pi Cs lambda^3 q^4 / 2`` and
  the temporal envelope ``E(q) = exp(-(pi lambda focal_spread q^2 / 2)^2)``: ``T_f(q) = sin(chi(q)) E(q)``.
- The frequencies that matter: the lattice fringes of the particles. ``fringe_weights`` puts a Gaussian of width
  ``FRINGE_WIDTH`` (1/Å: the broadening of a 4 nm particle) at every reflection |g| = 1/d of the lattice, weighted
  by its kinematic structure factor |F(g)| = |sum_j f_j(g) exp(2 pi i g . r_j)| over the cell's forward
  scattering sum_j f_j(0), with abTEM's Lobato electron scattering factors f_j (the potentials the simulation
  uses): extinct reflections get nothing, and fringes fade with |g| as the atoms scatter less. Fringes the pixel
  resolves (d >= 2 pixels) up to ``MAX_SPACING``.
- A domain is a distribution of transfer curves: each of its images has its own defocus, drawn with sd
  ``DEFOCUS_SD`` = 15 Å around the domain's (STUDY.md 3; Gauss-Hermite nodes here). The in-focus domain thus
  holds weak curves of both signs, not a zero curve.
- Distance between two defocus domains A and B: the energy distance between their distributions of signed curves
  in the fringe-weighted norm ``|u|_w^2 = integral of w(q) u(q)^2 dq``, over their mean squared norm:
  ``D(A, B) = (2 E|T_a - T_b|^2 - E|T_a - T_a'|^2 - E|T_b - T_b'|^2) / (2 E|T_a|^2 + 2 E|T_b|^2)`` (a, a' from A
  and b, b' from B independently): 0 for a domain and itself, symmetric, 1 for unrelated (orthogonal) curves, 2
  for opposite contrast at every fringe. Without Cs the domain farthest from -10 nm is +10 nm (every fringe
  reversed), not +-25 nm: the distance grows with the defocus difference only on the domain's side of focus.
  The sign is kept because a fringe whose contrast reverses draws the atoms dark instead of bright (and without
  Cs, |sin chi| cannot tell over- from underfocus): another image for the network.
- Distance between two dose domains: ``|ln(dose_a / dose_b)|``, the log ratio of their electrons per pixel (the
  pixel is shared, so the Poisson signal-to-noise ratio of a pixel differs by the square root of that ratio).
"""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .datasets import DEFOCUS_SD
from .simulate import CS, ENERGY, FOCAL_SPREAD, wavelength
from .structures import get_lattice

FRINGE_WIDTH = 0.025  # 1/Å, Gaussian sigma of a reflection in the weight: ~1 / (a 40 Å particle's diameter)
MAX_SPACING = 5.0  # Å, the coarsest fringe counted (the study's lattices have none above ~4.9 Å but spinel (111))
MAX_INDEX = 6  # Miller indices searched, |h|, |k|, |l| <= this


def chi(q, defocus: float, cs: float = CS, energy: float = ENERGY):
    """The aberration phase (rad) at spatial frequency ``q`` (1/Å) for ``defocus`` (Å, positive underfocus)."""
    lam = wavelength(energy)
    q = np.asarray(q, dtype=float)
    return -np.pi * lam * defocus * q**2 + np.pi * cs * lam**3 * q**4 / 2


def envelope(q, focal_spread: float = FOCAL_SPREAD, energy: float = ENERGY):
    """The temporal (focal-spread) envelope at ``q`` (1/Å): exp(-(pi lambda focal_spread q^2 / 2)^2)."""
    lam = wavelength(energy)
    return np.exp(-((np.pi * lam * focal_spread * np.asarray(q, dtype=float) ** 2) / 2) ** 2)


def phase_ctf(q, defocus: float, **optics):
    """The signed phase contrast transfer sin(chi(q)) E(q) of a weak phase object at ``defocus`` (Å)."""
    return np.sin(chi(q, defocus, **{k: v for k, v in optics.items() if k in ("cs", "energy")})) * envelope(
        q, **{k: v for k, v in optics.items() if k in ("focal_spread", "energy")})


def ctf_zeros(defocus: float, n: int = 3, energy: float = ENERGY) -> np.ndarray:
    """The first ``n`` spatial frequencies (1/Å) where sin(chi) = 0 for Cs = 0: q_m = sqrt(m / (lambda |f|))."""
    lam = wavelength(energy)
    return np.sqrt(np.arange(1, n + 1) / (lam * abs(defocus)))


@functools.lru_cache(maxsize=32)
def reflections(lattice, pixel_size: float) -> tuple[tuple[float, float], ...]:
    """(|g| in 1/Å, |F(g)| / sum_j f_j(0)) of the reflections of ``lattice`` (a built-in lattice's name, or any
    lattice or CIF crystal) with MAX_SPACING >= d >= 2 pixels
    and a nonzero structure factor, one entry per distinct |g| (kinematic, Lobato electron scattering factors)."""
    from abtem.parametrizations import LobatoParametrization

    cell = get_lattice(lattice).unit_cell()
    recip = cell.cell.reciprocal()  # rows: b_i with a_i . b_j = delta_ij (no 2 pi)
    frac, symbols = cell.get_scaled_positions(), cell.get_chemical_symbols()
    factor = {s: LobatoParametrization().scattering_factor(s) for s in set(symbols)}
    forward = sum(float(factor[s](0.0)) for s in symbols)
    hkl = np.array([m for m in itertools.product(range(-MAX_INDEX, MAX_INDEX + 1), repeat=3) if any(m)])
    g = np.linalg.norm(hkl @ recip, axis=1)
    keep = (g >= 1 / MAX_SPACING) & (g <= 1 / (2 * pixel_size))
    hkl, g = hkl[keep], g[keep]
    f = np.stack([factor[s](g**2) for s in symbols], axis=1)  # (reflections, atoms)
    amplitude = np.abs(np.sum(f * np.exp(2j * np.pi * hkl @ frac.T), axis=1)) / forward
    found: dict[float, float] = {}
    for gi, ai in zip(np.round(g, 4), amplitude):
        if ai > 1e-6:
            found[float(gi)] = max(found.get(float(gi), 0.0), float(ai))
    return tuple(sorted(found.items()))


def fringe_weights(q, lattice, pixel_size: float):
    """The weight w(q) of the module docstring: Gaussians at the lattice's allowed reflections."""
    q = np.asarray(q, dtype=float)
    w = np.zeros_like(q)
    for g, f in reflections(lattice, pixel_size):
        w += f * np.exp(-0.5 * ((q - g) / FRINGE_WIDTH) ** 2)
    return w


GAUSS_HERMITE_NODES = 15  # defoci per domain in the expectations (the distance moves < 1e-3 from 15 to 31)


def transfer_draws(defocus: float, q, spread: float = DEFOCUS_SD, **optics) -> tuple[np.ndarray, np.ndarray]:
    """The domain's transfer curves at Gauss-Hermite defoci around ``defocus`` (Å) with sd ``spread`` (Å), and
    their probability weights: (curves (nodes, len(q)), weights (nodes,)); ``optics``: energy, cs, focal_spread
    (the study's microscope by default)."""
    x, w = np.polynomial.hermite.hermgauss(GAUSS_HERMITE_NODES)
    curves = np.stack([phase_ctf(q, defocus + np.sqrt(2) * spread * xi, **optics) for xi in x])
    return curves, w / np.sqrt(np.pi)


def defocus_distance(a: float, b: float, lattice="CdSe", pixel_size: float = 0.2, n: int = 2048,
                     **optics) -> float:
    """D(A, B) of the module docstring for domains at defoci ``a`` and ``b`` (Å) on the fringes of ``lattice``
    imaged with ``pixel_size`` Å (the band up to its Nyquist frequency)."""
    q = np.linspace(0, 1 / (2 * pixel_size), n)
    w = fringe_weights(q, lattice, pixel_size)
    (ta, pa), (tb, pb) = transfer_draws(a, q, **optics), transfer_draws(b, q, **optics)

    def mean_sq_diff(u, pu, v, pv):  # E |u - v|_w^2 over independent draws
        d2 = np.trapezoid(w * (u[:, None, :] - v[None, :, :]) ** 2, q, axis=-1)
        return float(pu @ d2 @ pv)

    def mean_sq(u, pu):
        return float(pu @ np.trapezoid(w * u**2, q, axis=-1))

    scale = 2 * (mean_sq(ta, pa) + mean_sq(tb, pb))
    energy = 2 * mean_sq_diff(ta, pa, tb, pb) - mean_sq_diff(ta, pa, ta, pa) - mean_sq_diff(tb, pb, tb, pb)
    return float(max(energy, 0.0) / scale) if scale > 0 else float("nan")


def fringe_contrast(defocus: float, lattice="CdSe", pixel_size: float = 0.2, n: int = 2048,
                    **optics) -> float:
    """How strongly a domain at ``defocus`` (Å) transfers the fringes of ``lattice``: the root mean square of its
    phase contrast transfer over the fringe weights and the domain's defocus draws, sqrt(E |T|_w^2 / |1|_w^2), in
    [0, 1] (1: every fringe at full contrast)."""
    q = np.linspace(0, 1 / (2 * pixel_size), n)
    w = fringe_weights(q, lattice, pixel_size)
    curves, p = transfer_draws(defocus, q, **optics)
    return float(np.sqrt(p @ np.trapezoid(w * curves**2, q, axis=-1) / np.trapezoid(w, q)))


def dose_distance(a: float, b: float) -> float:
    """|ln(a / b)| for doses ``a`` and ``b`` (e-/Å²) on a shared pixel."""
    return float(abs(np.log(a / b)))


@functools.lru_cache(maxsize=4096)
def domain_distance(series: str, a: str, b: str, pixel_size: float = 0.2, optics: tuple = (),
                    lattice="CdSe") -> float:
    """The distance between two domains of a series, from their labels (defocus in Å, dose in e-/Å²); ``optics``:
    (name, value) pairs of the microscope where it is not the study's; ``lattice``: the particles' material (a
    name or a lattice: the fringes of the defocus distance)."""
    if series == "defocus":
        return defocus_distance(float(a), float(b), lattice, pixel_size, **dict(optics))
    if series == "dose":
        return dose_distance(float(a), float(b))
    raise ValueError(f"series={series!r} has no optical distance; allowed: defocus, dose")
