"""Plane-wave multislice with abTEM's physics and fewer Fourier transforms.

The physics is abTEM 1.0.11's ``Potential(projection="infinite")`` followed by ``PlaneWave(...).multislice``, and
the pieces come from abTEM itself: the atoms of each frozen-phonon configuration and their slices
(``FrozenPhonons``, ``Potential.get_sliced_atoms``), the Lobato projected scattering factors divided by the sinc of
the bilinear delta placement, the interaction constant, the Fresnel propagator and the 2/3 antialias aperture with
its taper. What differs is how it is computed (lengths in Å, energies in eV):

- a slice's projected potential is summed over its elements in Fourier space, from real-to-complex transforms
  (one r2c per element, one c2r per slice) where abTEM runs a complex FFT pair per element;
- FFTW plans are made once per grid and process on fixed in-place buffers; the bilinear deltas are summed with
  ``bincount``; the transmission function and the products are fused numba loops; no Dask graph per call;
- ``exact=True`` band-limits the transmission function exp(i sigma V) with an FFT pair per slice, as abTEM does:
  the exit waves then equal abTEM's to float32 rounding (tested). ``exact=False`` (the default) applies the same
  aperture to the potential in Fourier space instead, for free, and saves that pair: one approximation, the
  harmonics that exp() makes above 2/3 of Nyquist within one slice are not removed before the product with the
  wave (they land beyond the output images' band, or below their noise: ``tests/test_simulate.py`` measures the
  change of the images against the Poisson noise of the study's highest dose).

``backend`` is ``"fftw"`` (numpy arrays, the default on the CPU) or an array module with an ``fft`` submodule
(``numpy`` or ``cupy``): the same steps written with that module's functions, for the GPU.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numba
import numpy as np

FFTW_EFFORTS = ("FFTW_ESTIMATE", "FFTW_MEASURE", "FFTW_PATIENT")


# ---------------------------------------------------------------- abTEM's constants and kernels

@functools.lru_cache(maxsize=64)
def element_kernel(symbol: str, gpts: tuple[int, int], sampling: tuple[float, float]) -> np.ndarray:
    """Lobato projected scattering factor / sinc of the bilinear deltas on the r2c half grid, float32 (abTEM's)."""
    from abtem.integrals import ScatteringFactorProjectionIntegrals, sinc

    integrator = ScatteringFactorProjectionIntegrals("lobato")
    kernel = integrator.get_scattering_factor(symbol, gpts, sampling, "cpu") / sinc(gpts, sampling, "cpu")
    return np.ascontiguousarray(kernel.astype(np.float32)[:, : gpts[1] // 2 + 1])


@functools.lru_cache(maxsize=8)
def antialias(gpts: tuple[int, int], sampling: tuple[float, float]) -> np.ndarray:
    """abTEM's antialias aperture (2/3 of Nyquist with its taper), float32 on the full grid."""
    from abtem.antialias import antialias_aperture

    return np.asarray(antialias_aperture(gpts, sampling, np), dtype=np.float32)


@functools.lru_cache(maxsize=8)
def propagator(gpts: tuple[int, int], sampling: tuple[float, float], thickness: float, energy: float) -> np.ndarray:
    """abTEM's Fresnel propagator for ``thickness`` Å times its antialias aperture, complex64."""
    from abtem.multislice import _fresnel_propagator_array

    kernel = _fresnel_propagator_array(thickness, gpts, sampling, energy, "cpu")
    return (kernel * antialias(gpts, sampling)).astype(np.complex64)


def interaction_constant(energy: float) -> float:
    """sigma (rad / (eV Å)): the phase shift per projected potential, abTEM's ``energy2sigma``."""
    from abtem.core.energy import energy2sigma

    return energy2sigma(energy)


def sliced_configurations(atoms, gpts, slice_thickness: float, n_phonons: int, seed: int, phonon_sigma: float):
    """abTEM's sliced atoms for each frozen-phonon configuration (the static lattice when ``n_phonons=0``)."""
    import abtem

    model = (abtem.FrozenPhonons(atoms, num_configs=n_phonons, sigmas=phonon_sigma, seed=seed,
                                 ensemble_mean=False) if n_phonons > 0 else atoms)
    potential = abtem.Potential(model, gpts=gpts, slice_thickness=slice_thickness, projection="infinite",
                                device="cpu")
    for _, _, config in potential.generate_blocks():
        yield config.item().get_sliced_atoms()


def bilinear_deltas(positions: np.ndarray, sampling, gpts, out: np.ndarray | None = None) -> np.ndarray:
    """Unit deltas at ``positions`` (Å, (n, 2)) spread bilinearly on the grid (abTEM's ``superpose_deltas``),
    written into ``out`` (float32, zeroed first) or a new array."""
    out = np.zeros(gpts, np.float32) if out is None else out
    out[:] = 0
    _splat(out, (positions[:, :2] / np.asarray(sampling)).astype(np.float32))
    return out


@numba.njit(cache=True, nogil=True)
def _splat(out, pixels):
    """Add each position's bilinear weights (abTEM's formulas, in float64 then rounded) to ``out``, periodic."""
    n0, n1 = out.shape
    for k in range(pixels.shape[0]):
        row, col = math.floor(pixels[k, 0]), math.floor(pixels[k, 1])
        x, y = np.float64(pixels[k, 0]) - row, np.float64(pixels[k, 1]) - col
        xy = x * y
        i0, i1, j0, j1 = row % n0, (row + 1) % n0, col % n1, (col + 1) % n1
        out[i0, j0] += np.float32(1 + xy - y - x)
        out[i1, j0] += np.float32(x - xy)
        out[i0, j1] += np.float32(y - xy)
        out[i1, j1] += np.float32(xy)


# ---------------------------------------------------------------- fused loops (CPU)

@numba.njit(cache=True, nogil=True)
def _accumulate(acc, spectrum, kernel, first):
    """acc (+)= spectrum * kernel (complex x real), in place."""
    n0, n1 = acc.shape
    for i in range(n0):
        for j in range(n1):
            v = spectrum[i, j] * kernel[i, j]
            acc[i, j] = v if first else acc[i, j] + v


@numba.njit(cache=True, nogil=True)
def _transmit(wave, potential, sigma):
    """wave *= exp(i sigma V), in place (float32 phase as abTEM)."""
    n0, n1 = wave.shape
    for i in range(n0):
        for j in range(n1):
            phase = sigma * potential[i, j]
            wave[i, j] *= complex(math.cos(phase), math.sin(phase))


@numba.njit(cache=True, nogil=True)
def _exp_phase(out, potential, sigma):
    """out = exp(i sigma V)."""
    n0, n1 = out.shape
    for i in range(n0):
        for j in range(n1):
            phase = sigma * potential[i, j]
            out[i, j] = complex(math.cos(phase), math.sin(phase))


@numba.njit(cache=True, nogil=True)
def _multiply(a, b):
    """a *= b, in place."""
    n0, n1 = a.shape
    for i in range(n0):
        for j in range(n1):
            a[i, j] *= b[i, j]


# ---------------------------------------------------------------- engines

class FFTWEngine:
    """In-place FFTW plans and buffers for one grid, made once per process (``engine()`` caches them)."""

    def __init__(self, gpts: tuple[int, int], effort: str = "FFTW_ESTIMATE"):
        import pyfftw

        if effort not in FFTW_EFFORTS:
            raise ValueError(f"FFTW planning effort={effort!r} is unknown; allowed: {', '.join(FFTW_EFFORTS)}")
        n0, n1 = gpts
        self.gpts, self.size = gpts, n0 * n1
        self.real = pyfftw.empty_aligned(gpts, np.float32)
        self.half = pyfftw.empty_aligned((n0, n1 // 2 + 1), np.complex64)
        self.acc = np.empty((n0, n1 // 2 + 1), np.complex64)
        self.wave = pyfftw.empty_aligned(gpts, np.complex64)
        self.trans = pyfftw.empty_aligned(gpts, np.complex64)
        flags = (effort, "FFTW_DESTROY_INPUT")
        plan = functools.partial(pyfftw.FFTW, axes=(0, 1), threads=1, flags=flags)
        self.r2c = plan(self.real, self.half, direction="FFTW_FORWARD")
        self.c2r = plan(self.half, self.real, direction="FFTW_BACKWARD")
        self.fft_wave = plan(self.wave, self.wave, direction="FFTW_FORWARD")
        self.ifft_wave = plan(self.wave, self.wave, direction="FFTW_BACKWARD")
        self.fft_trans = plan(self.trans, self.trans, direction="FFTW_FORWARD")
        self.ifft_trans = plan(self.trans, self.trans, direction="FFTW_BACKWARD")

    def potential(self, atoms, sampling, exact: bool) -> np.ndarray:
        """The slice's projected potential (V Å) of ``atoms`` into ``self.real``; band-limited unless ``exact``."""
        numbers = atoms.numbers
        if not len(numbers):
            self.real[:] = 0
            return self.real
        first = True
        for number in np.unique(numbers):
            bilinear_deltas(atoms.positions[numbers == number], sampling, self.gpts, out=self.real)
            self.r2c.execute()
            _accumulate(self.acc, self.half, self._kernel(int(number), sampling, exact), first)
            first = False
        self.half[:] = self.acc
        self.c2r.execute()
        return self.real

    def _kernel(self, number: int, sampling, exact: bool) -> np.ndarray:
        return _half_kernel(number, self.gpts, tuple(sampling), exact)

    def run(self, configurations, count: int, sampling, slice_thickness, energy, exact: bool) -> np.ndarray:
        """Exit waves (count, nx, ny) complex64 of a unit plane wave through each of ``count`` configurations."""
        sigma = np.float32(interaction_constant(energy))
        aperture = _scaled_aperture(self.gpts, tuple(sampling))
        out = np.empty((count, *self.gpts), np.complex64)  # filled in place: no list of copies to stack
        for k, sliced in enumerate(configurations):
            self.wave[:] = 1
            for index, thickness in enumerate(sliced.slice_thickness):
                potential = self.potential(sliced.get_atoms_in_slices(index), sampling, exact)
                if exact:
                    _exp_phase(self.trans, potential, sigma)
                    self.fft_trans.execute()
                    _multiply(self.trans, aperture)
                    self.ifft_trans.execute()
                    _multiply(self.wave, self.trans)
                else:
                    _transmit(self.wave, potential, sigma)
                self.fft_wave.execute()
                _multiply(self.wave, _scaled_propagator(self.gpts, tuple(sampling), float(thickness), energy))
                self.ifft_wave.execute()
            out[k] = self.wave
        return out


@functools.lru_cache(maxsize=64)
def _half_kernel(number: int, gpts, sampling, exact: bool) -> np.ndarray:
    """An element's kernel with the c2r normalisation folded in (and the aperture, unless ``exact``)."""
    from ase.data import chemical_symbols

    kernel = element_kernel(chemical_symbols[number], gpts, sampling) / np.float32(gpts[0] * gpts[1])
    if not exact:
        kernel = kernel * antialias(gpts, sampling)[:, : gpts[1] // 2 + 1]
    return np.ascontiguousarray(kernel, dtype=np.float32)


@functools.lru_cache(maxsize=4)
def _scaled_aperture(gpts, sampling) -> np.ndarray:
    """The antialias aperture with the inverse FFT's normalisation folded in, complex64."""
    return (antialias(gpts, sampling) / np.float32(gpts[0] * gpts[1])).astype(np.complex64)


@functools.lru_cache(maxsize=8)
def _scaled_propagator(gpts, sampling, thickness: float, energy: float) -> np.ndarray:
    return (propagator(gpts, sampling, thickness, energy) / np.float32(gpts[0] * gpts[1])).astype(np.complex64)


@functools.lru_cache(maxsize=4)
def engine(gpts: tuple[int, int], effort: str = "FFTW_ESTIMATE") -> FFTWEngine:
    """The FFTW engine of a grid, planned once per process (from the wisdom loaded by ``use_wisdom``, if any)."""
    return FFTWEngine(gpts, effort)


# ---------------------------------------------------------------- FFTW wisdom, shared through the cache

def wisdom_file(folder) -> Path:
    """This machine's FFTW wisdom file in ``folder``: plans are measured once per machine, then reused."""
    import hashlib
    import platform

    import pyfftw

    cpu = ""
    if Path("/proc/cpuinfo").exists():
        cpu = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line), "")
    machine = hashlib.sha256(f"{platform.node()}|{platform.machine()}|{cpu}|{pyfftw.__version__}".encode())
    return Path(folder) / f"wisdom-{machine.hexdigest()[:12]}.pkl"


@functools.lru_cache(maxsize=8)
def use_wisdom(path) -> bool:
    """Import the FFTW wisdom saved at ``path`` into this process (once); False if there is none yet."""
    import pickle

    import pyfftw

    path = Path(path)
    if not path.exists():
        return False
    try:
        wisdom = pickle.loads(path.read_bytes())
        if not (isinstance(wisdom, tuple) and all(isinstance(w, bytes) for w in wisdom)):
            raise ValueError("not FFTW wisdom")
        pyfftw.import_wisdom(wisdom)
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        from .cache import move_aside

        move_aside(path, path.parent.parent, f"{type(err).__name__}: {err}")  # planned again by plan_once
        return False
    return True


def plan_once(path, plans) -> None:
    """Make ``plans`` (callables that create FFTW plans) in this process and save the wisdom to ``path``.

    Called before the workers start, so that every worker imports the same wisdom and runs the same plans: the
    results of a seed are then bit-identical whichever worker computes them.
    """
    import pickle

    import pyfftw

    from .cache import atomic_write

    use_wisdom(path)
    before = pyfftw.export_wisdom()
    for make in plans:
        make()
    after = pyfftw.export_wisdom()
    if after != before or not Path(path).exists():
        atomic_write(Path(path), lambda tmp: Path(tmp).write_bytes(pickle.dumps(after)))
    use_wisdom.cache_clear()


def run_array_module(xp, configurations, gpts, sampling, slice_thickness, energy, exact: bool):
    """The same multislice written with an array module's functions (numpy or cupy); returns a numpy array."""
    sigma = np.float32(interaction_constant(energy))
    half = gpts[1] // 2 + 1
    aperture = xp.asarray(antialias(gpts, tuple(sampling)))
    out = []
    for sliced in configurations:
        wave = xp.ones(gpts, dtype=xp.complex64)
        for index, thickness in enumerate(sliced.slice_thickness):
            atoms = sliced.get_atoms_in_slices(index)
            spectrum = xp.zeros((gpts[0], half), dtype=xp.complex64)
            for number in np.unique(atoms.numbers):
                deltas = xp.asarray(bilinear_deltas(atoms.positions[atoms.numbers == number], sampling, gpts))
                kernel = xp.asarray(element_kernel(_symbol(number), gpts, tuple(sampling)))
                spectrum += xp.fft.rfft2(deltas).astype(xp.complex64) * kernel
            if not exact:
                spectrum *= aperture[:, :half]
            potential = xp.fft.irfft2(spectrum, s=gpts).astype(xp.float32)
            transmission = xp.exp(1j * (sigma * potential)).astype(xp.complex64)
            if exact:
                transmission = xp.fft.ifft2(xp.fft.fft2(transmission) * aperture).astype(xp.complex64)
            kernel = xp.asarray(propagator(gpts, tuple(sampling), float(thickness), energy))
            wave = xp.fft.ifft2(xp.fft.fft2(wave * transmission) * kernel).astype(xp.complex64)
        out.append(wave)
    stacked = xp.stack(out)
    return stacked.get() if hasattr(stacked, "get") else np.asarray(stacked)


def _symbol(number: int) -> str:
    from ase.data import chemical_symbols

    return chemical_symbols[int(number)]


def exit_waves(atoms, sampling: float, slice_thickness: float, n_phonons: int, seed: int, energy: float,
               phonon_sigma: float, backend="fftw", exact: bool = False, effort: str = "FFTW_ESTIMATE"):
    """Exit waves of ``atoms``, complex64 (max(n_phonons, 1), nx, ny): see the module docstring."""
    extent = atoms.cell.lengths()[:2]
    gpts = tuple(int(round(e / sampling)) for e in extent)
    grid_sampling = tuple(float(e / g) for e, g in zip(extent, gpts))
    configurations = sliced_configurations(atoms, gpts, slice_thickness, n_phonons, seed, phonon_sigma)
    if backend == "fftw":
        return engine(gpts, effort).run(configurations, max(n_phonons, 1), grid_sampling, slice_thickness, energy,
                                        exact)
    return run_array_module(backend, configurations, gpts, grid_sampling, slice_thickness, energy, exact)
