"""Imaging physics: exit waves by multislice (abTEM's physics, ``multislice``), labels, zero-defocus calibration,
optics and dose.

Units: lengths in Å, energies in eV, doses in electrons per Å2, angles in rad. STUDY.md section 2 gives every
number. Conventions:

- ``defocus`` follows abTEM: positive is underfocus, ``defocus = -C10``. The study's "-10 nm" is ``defocus=-100``
  measured from the calibrated zero (the minimum-contrast plane of the particles in vacuum).
- ``FOCAL_SPREAD`` = 10 Å is passed as abTEM's focal spread, the 1/e half-width of the defocus distribution
  (standard deviation 10/sqrt(2) = 7.1 Å); the study simulated with abTEM, whose parameter this is.
- ``CS`` = 0: the study gives no spherical aberration (an aberration-corrected microscope); we assume none.
- Frozen phonons: optics are applied to each configuration's wave and the intensities are averaged.
- Order as in the study: exit wave -> downsample (Fourier crop) to the output pixel -> optics -> intensity -> dose.
  The multislice runs on the GPU when asked (``device="cuda"``, through CuPy); the optics run in numpy on the small
  output grid (2 ms per cpu-preset image, 44 ms at the paper's 640 x 640), so they need no GPU.
"""

from __future__ import annotations

import functools
import os

import numpy as np
from scipy.ndimage import gaussian_filter

ENERGY = 300e3  # eV, STUDY.md 2
FOCAL_SPREAD = 10.0  # Å, abTEM's 1/e width (see module docstring)
CS = 0.0  # Å, assumed (see module docstring)
PHONON_SIGMA = 0.1  # Å, RMS thermal displacement per direction (room temperature, typical of these solids)
LABEL_PHASE = np.pi / 16  # rad, STUDY.md 2
CALIBRATION_RANGE = 150.0  # Å, the coarse grid search spans +-this around 0
CALIBRATION_BATCH = 32  # defoci per batched inverse FFT of the calibration
# the microscope a scene is imaged with: the study's (above) unless a preset's ``microscope`` says otherwise
MICROSCOPE = {"energy": ENERGY, "cs": CS, "focal_spread": FOCAL_SPREAD}


def microscope(sim_params: dict | None = None) -> dict:
    """energy (eV), cs (Å) and focal_spread (Å) of a scene's simulation parameters (the study's by default)."""
    return {**MICROSCOPE, **((sim_params or {}).get("microscope") or {})}


def wavelength(energy: float = ENERGY) -> float:
    """Relativistic electron wavelength in Å for a kinetic ``energy`` in eV."""
    m0c2 = 510998.95  # eV
    hc = 12398.419843  # eV Å
    return hc / np.sqrt(energy * (2 * m0c2 + energy))


DEVICES = ("cpu", "cuda")


def cuda_available() -> bool:
    """True when CuPy imports and sees a CUDA device (the multislice can then run on the GPU)."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def check_device(device: str) -> str:
    """``device`` if it is one of cpu, cuda (and usable here); otherwise a one-line error."""
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is unknown; allowed: {', '.join(DEVICES)}")
    if device == "cuda" and not cuda_available():
        raise ValueError("device='cuda' needs CuPy and a CUDA device, and none is usable here; allowed here: cpu")
    return device


def fftw_planning() -> str:
    """FFTW planning effort of the multislice: ``$HRTEM_TL_FFTW_PLANNING``, default FFTW_MEASURE (see datasets)."""
    from .multislice import FFTW_EFFORTS

    planning = os.environ.get("HRTEM_TL_FFTW_PLANNING", "FFTW_MEASURE")
    if planning not in FFTW_EFFORTS:
        raise ValueError(f"HRTEM_TL_FFTW_PLANNING={planning!r} is unknown; allowed: {', '.join(FFTW_EFFORTS)}")
    return planning


def exit_waves(atoms, sampling: float, slice_thickness: float, n_phonons: int, seed: int,
               device: str = "cpu", phonon_sigma: float = PHONON_SIGMA, exact: bool = False, energy: float = ENERGY):
    """Exit waves of ``atoms`` at ``energy`` (eV; the study's 300 kV), one per frozen-phonon configuration:
    complex64 (n_phonons, ny, nx).

    ``n_phonons=0`` means the static lattice (used for labels and calibration). Plane-wave illumination of unit
    intensity; the grid is the cell's extent divided by ``sampling`` (Å). Computed by ``multislice`` (abTEM's
    physics; ``exact=True`` reproduces abTEM's waves to float32 rounding), on the GPU with ``device="cuda"``.
    """
    from . import multislice

    if check_device(device) == "cuda":
        import cupy

        backend = cupy
    else:
        backend = "fftw"
    return multislice.exit_waves(atoms, sampling, slice_thickness, n_phonons, seed, energy, phonon_sigma,
                                 backend=backend, exact=exact, effort=fftw_planning())


def abtem_exit_waves(atoms, sampling: float, slice_thickness: float, n_phonons: int, seed: int,
                     phonon_sigma: float = PHONON_SIGMA, exact: bool = True, energy: float = ENERGY):
    """The same exit waves through plain abTEM calls (``Potential`` + ``PlaneWave.multislice``), on the CPU: the
    reference that ``multislice`` is tested and benchmarked against (always abTEM's exact band limit)."""
    import warnings

    import abtem

    warnings.filterwarnings("ignore", message="ensemble_mean=False", category=UserWarning)
    extent = atoms.cell.lengths()[:2]
    gpts = tuple(int(round(e / sampling)) for e in extent)
    if n_phonons > 0:
        model = abtem.FrozenPhonons(atoms, num_configs=n_phonons, sigmas=phonon_sigma, seed=seed,
                                    ensemble_mean=False)
    else:
        model = atoms
    potential = abtem.Potential(model, gpts=gpts, slice_thickness=slice_thickness, projection="infinite",
                                device="cpu")
    wave = abtem.PlaneWave(energy=energy, device="cpu").multislice(potential)
    array = wave.compute(scheduler="synchronous", progress_bar=False).array
    return np.asarray(array, dtype=np.complex64).reshape((-1,) + gpts)


def fourier_crop(waves: np.ndarray, factor: int) -> np.ndarray:
    """Downsample complex waves (..., n, n) by an integer ``factor`` keeping the central 1/factor of their spectrum.

    The amplitude is preserved (a unit plane wave stays unit).
    """
    if factor == 1:
        return waves
    n = waves.shape[-1]
    if n % factor:
        raise ValueError(f"grid of {n} pixels is not divisible by the downsampling factor={factor}")
    m = n // factor
    # the central m x m of the centred spectrum, taken as indices of the uncentred one (no shifted copies)
    keep = np.fft.ifftshift((np.arange((n - m) // 2, (n - m) // 2 + m) - n // 2) % n)
    flat = waves.reshape(-1, n, n)
    out = np.empty((len(flat), m, m), np.complex64)
    for i, wave in enumerate(flat):  # one wave at a time: peak memory of one spectrum, not of the stack
        out[i] = np.fft.ifft2(np.fft.fft2(wave)[np.ix_(keep, keep)]) / factor ** 2
    return out.reshape(*waves.shape[:-2], m, m)


def spatial_frequencies(n: int, pixel_size: float):
    """|k|^2 (1/Å2) on the FFT grid of an n x n image with ``pixel_size`` Å."""
    k = np.fft.fftfreq(n, d=pixel_size).astype(np.float32)
    return k[:, None] ** 2 + k[None, :] ** 2


def ctf_kernel(n: int, pixel_size: float, defocus, focal_spread: float = FOCAL_SPREAD, cs: float = CS,
               energy: float = ENERGY):
    """Coherent transfer function times the temporal (focal-spread) envelope, abTEM's conventions.

    ``defocus`` (Å, scalar or 1D array) gives a kernel of shape (n, n) or (len(defocus), n, n).
    chi(alpha) = 2 pi / lambda (C10 alpha^2 / 2 + C30 alpha^4 / 4), C10 = -defocus, applied as exp(-i chi);
    envelope exp(-(pi / (2 lambda) * focal_spread * alpha^2)^2).
    """
    lam = wavelength(energy)
    alpha2 = spatial_frequencies(n, pixel_size) * lam ** 2
    df = np.asarray(defocus, dtype=np.float32)[..., None, None]
    chi = 2 * np.pi / lam * (-df * alpha2 / 2 + cs * alpha2 ** 2 / 4)
    envelope = np.exp(-((np.pi / (2 * lam)) * focal_spread * alpha2) ** 2)
    return (np.exp(-1j * chi) * envelope).astype(np.complex64)


def intensity(waves: np.ndarray, pixel_size: float, defocus, **optics) -> np.ndarray:
    """Noise-free image (mean over phonon configurations of |ctf * psi|^2) of waves (n_configs, n, n).

    With a 1D ``defocus`` array the result has shape (len(defocus), n, n).
    """
    kernel = ctf_kernel(waves.shape[-1], pixel_size, defocus, **optics)
    spec = np.fft.fft2(waves)
    if kernel.ndim == 3:
        spec = spec[:, None]
    img = np.abs(np.fft.ifft2(spec * kernel)) ** 2
    return img.mean(axis=0).astype(np.float32)


def apply_dose(image: np.ndarray, dose: float, pixel_size: float, rng: np.random.Generator) -> np.ndarray:
    """Electron counts per pixel: Poisson with mean image x dose (e-/Å2) x pixel area (Å2)."""
    if not dose > 0:
        raise ValueError(f"dose={dose} must be > 0 e-/Å2")
    expected = np.clip(np.asarray(image, dtype=np.float64), 0, None) * dose * pixel_size ** 2
    return rng.poisson(expected).astype(np.float32)


def standardize(images: np.ndarray) -> np.ndarray:
    """Per-image mean 0 and variance 1 over the last two axes (STUDY.md 2)."""
    images = np.asarray(images, dtype=np.float32)
    mean = images.mean(axis=(-2, -1), keepdims=True)
    std = images.std(axis=(-2, -1), keepdims=True)
    return (images - mean) / np.maximum(std, 1e-6)


def soft_label(vacuum_wave: np.ndarray, pixel_size: float, blur: float) -> np.ndarray:
    """Soft particle label in [0, 1]: exit-wave phase > pi/16, Gaussian blur of ``blur`` Å (sigma).

    The wave is the static particles-in-vacuum exit wave (n, n) on the output grid. The phase is taken relative
    to the vacuum (the median phase of the field, which is mostly vacuum).
    """
    phase = np.angle(vacuum_wave * np.exp(-1j * np.median(np.angle(vacuum_wave))))
    binary = (phase > LABEL_PHASE).astype(np.float32)
    return np.clip(gaussian_filter(binary, blur / pixel_size, mode="wrap"), 0, 1).astype(np.float32)


def contrast_by_defocus(vacuum_wave: np.ndarray, pixel_size: float, defoci,
                        batch: int = CALIBRATION_BATCH, energy: float = ENERGY, cs: float = CS,
                        focal_spread: float = FOCAL_SPREAD) -> np.ndarray:
    """Variance of the noise-free image of ``vacuum_wave`` (n, n) at each defocus of a regular grid (Å).

    The same numbers as ``intensity(...).var()`` for each defocus, computed with less work: the temporal envelope
    and the spherical aberration's phase do not depend on defocus, the image mean does not either (Parseval), and
    the defocus phase of grid point j is that of point 0 times the step's phase to the power j (a complex product
    per step instead of an exponential; re-anchored with an exact exponential every ``batch`` points).
    """
    defoci = np.asarray(defoci, dtype=np.float64)
    n = vacuum_wave.shape[-1]
    lam = wavelength(energy)
    k2 = spatial_frequencies(n, pixel_size).astype(np.float64)
    alpha2 = k2 * lam ** 2
    envelope = np.exp(-((np.pi / (2 * lam)) * focal_spread * alpha2) ** 2)
    aberration = np.exp(-1j * 2 * np.pi / lam * cs * alpha2 ** 2 / 4)  # 1 for the study's Cs = 0
    spectrum = (np.fft.fft2(vacuum_wave) * envelope * aberration).astype(np.complex64)
    mean = float(np.sum(np.abs(spectrum.astype(np.complex128)) ** 2) / n ** 4)  # mean intensity, Parseval
    step = defoci[1] - defoci[0] if len(defoci) > 1 else 0.0
    # the defocus part of exp(-i chi), chi = 2 pi / lambda (-defocus alpha^2 / 2): exp(i pi defocus alpha^2 / lambda)
    step_phase = np.exp(1j * np.pi * step * alpha2 / lam).astype(np.complex64)
    buffer, inverse = batched_inverse_fft((batch, n, n))
    out = np.empty(len(defoci))
    for start in range(0, len(defoci), batch):
        count = min(batch, len(defoci) - start)
        buffer[0] = np.exp(1j * np.pi * defoci[start] * alpha2 / lam)
        for j in range(1, count):
            np.multiply(buffer[j - 1], step_phase, out=buffer[j])
        buffer[:count] *= spectrum
        inverse.execute()  # unnormalised: the image is |buffer|^2 / n^4
        images = np.abs(buffer[:count]).astype(np.float64) ** 2 / n ** 4
        out[start:start + count] = (images ** 2).mean(axis=(-2, -1)) - mean ** 2
    return out


@functools.lru_cache(maxsize=4)
def batched_inverse_fft(shape: tuple[int, int, int]):
    """An in-place inverse FFTW plan over the last two axes of a (batch, n, n) complex64 buffer."""
    import pyfftw

    buffer = pyfftw.empty_aligned(shape, np.complex64)
    plan = pyfftw.FFTW(buffer, buffer, axes=(1, 2), direction="FFTW_BACKWARD", flags=(fftw_planning(),), threads=1)
    return buffer, plan


def calibrate_zero_defocus(vacuum_wave: np.ndarray, pixel_size: float, span: float = CALIBRATION_RANGE,
                           **optics) -> float:
    """Defocus (Å) of minimum contrast (intensity variance) of the particles-in-vacuum image, imaged with
    ``optics`` (energy, cs, focal_spread; the study's by default).

    Two-stage grid search (STUDY.md 2): 1 Å steps over [-span, span], then 0.1 Å steps within +-1 Å of the best.
    """
    wave = vacuum_wave[0] if vacuum_wave.ndim == 3 else vacuum_wave

    def best(grid):
        return float(grid[int(np.argmin(contrast_by_defocus(wave, pixel_size, grid, **optics)))])

    coarse = best(np.arange(-span, span + 0.5, 1.0))
    return best(coarse + np.arange(-10, 11) * 0.1)
