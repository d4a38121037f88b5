"""Atomic models: the study's nine lattices, spherical nanoparticles, amorphous carbon, scenes.

All lengths in Å. Numbers come from STUDY.md section 1 (lattice parameters, spinel and wurtzite internal
parameters, substrate density and minimum C-C distance, particle spacing).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
from ase import Atoms
from ase.spacegroup import crystal
from scipy.spatial.transform import Rotation

AVOGADRO = 6.02214076e23
CARBON_MOLAR_MASS = 12.011  # g/mol
CARBON_DENSITY = 2.0  # g/cm3, STUDY.md 1
CARBON_MIN_DISTANCE = 1.3  # Å, STUDY.md 1
PARTICLE_GAP = 10.0  # Å: particles at least 1 nm apart (edge to edge), STUDY.md 1
WURTZITE_U = 0.375  # STUDY.md 1


@dataclass(frozen=True)
class Lattice:
    """A bulk crystal of STUDY.md's table: sites in the conventional cell of a space group."""

    name: str
    structure: str
    spacegroup: int
    a: float
    c: float | None
    symbols: tuple[str, ...]
    basis: tuple[tuple[float, float, float], ...]
    setting: int = 1
    label_blur: float = 1.6  # Å, Gaussian sigma of the label (STUDY.md 2)

    @property
    def key(self) -> str:
        """Name used in the study's result files, e.g. ``w_CdSe`` or ``spinel_Fe3O4``."""
        prefix = {"wurtzite": "w", "fcc": "fcc", "bcc": "bcc", "diamond": "dc", "spinel": "spinel"}
        return f"{prefix[self.structure]}_{self.name}"

    def cellpar(self) -> list[float]:
        if self.structure == "wurtzite":
            return [self.a, self.a, self.c, 90, 90, 120]
        return [self.a, self.a, self.a, 90, 90, 90]

    def unit_cell(self) -> Atoms:
        """The conventional unit cell (ASE, space-group expansion of the basis)."""
        return crystal(list(self.symbols), list(self.basis), spacegroup=self.spacegroup,
                       setting=self.setting, cellpar=self.cellpar())


def _wurtzite(name, a, c, cation, anion):
    return Lattice(name, "wurtzite", 186, a, c, (cation, anion),
                   ((1 / 3, 2 / 3, 0.0), (1 / 3, 2 / 3, WURTZITE_U)))


def _spinel(name, a, metal, x):
    # Fd-3m origin choice 2: A at 8a, B at 16d, O at 32e (x, x, x).
    return Lattice(name, "spinel", 227, a, None, (metal, metal, "O"),
                   ((1 / 8, 1 / 8, 1 / 8), (0.5, 0.5, 0.5), (x, x, x)), setting=2)


LATTICES: dict[str, Lattice] = {
    lat.name: lat for lat in (
        _wurtzite("ZnS", 3.8227, 6.2607, "Zn", "S"),
        _wurtzite("CdSe", 4.2985, 7.0152, "Cd", "Se"),
        Lattice("Cu", "fcc", 225, 3.6157, None, ("Cu",), ((0, 0, 0),)),
        Lattice("Ag", "fcc", 225, 4.0782, None, ("Ag",), ((0, 0, 0),)),
        Lattice("C", "diamond", 227, 3.5673, None, ("C",), ((0, 0, 0),), label_blur=1.0),
        Lattice("Si", "diamond", 227, 5.430, None, ("Si",), ((0, 0, 0),)),
        _spinel("Fe3O4", 8.394, "Fe", 0.255),
        Lattice("Co3O4", "spinel", 227, 8.065, None, ("Co", "Co", "O"),
                ((1 / 8, 1 / 8, 1 / 8), (0.5, 0.5, 0.5), (0.263, 0.263, 0.263)), setting=2, label_blur=1.0),
        Lattice("Fe", "bcc", 229, 2.866, None, ("Fe",), ((0, 0, 0),), label_blur=1.0),
    )
}

# built in beside the study's nine (not in its series: a chapter or --set lattices=... names them): gold, the
# material of much published HRTEM segmentation work (fcc, a = 4.0782 Å)
EXTRA_LATTICES: dict[str, Lattice] = {"Au": Lattice("Au", "fcc", 225, 4.0782, None, ("Au",), ((0, 0, 0),))}
# the label's Gaussian sigma for a crystal read from a CIF: the study's 1.6 Å, which it gives six of its nine
# materials (1 Å for C, Fe and Co3O4, STUDY.md 2); the parameter ``cif_label_blur`` sets another
CIF_LABEL_BLUR = 1.6


@dataclass(frozen=True)
class Crystal:
    """A crystal read from a CIF file: its unit cell as numbers (so that a scene spec holds it whole, keys it by
    what it is and carries it to any worker), cut into particles like the built-in lattices."""

    name: str
    cell: tuple  # 3 x 3, Å
    numbers: tuple  # atomic numbers
    scaled_positions: tuple  # n x 3, fractions of the cell
    label_blur: float = CIF_LABEL_BLUR  # Å

    @property
    def structure(self) -> str:
        """Its own symmetry class: a CIF crystal shares none with the study's lattices (none is read)."""
        return f"cif {self.name}"

    @property
    def key(self) -> str:
        return self.name

    def unit_cell(self) -> Atoms:
        return Atoms(numbers=list(self.numbers), scaled_positions=[list(p) for p in self.scaled_positions],
                     cell=[list(r) for r in self.cell], pbc=True)

    def as_spec(self) -> dict:
        """The crystal as plain JSON data (a scene spec's ``crystal``)."""
        return {"name": self.name, "cell": [list(r) for r in self.cell], "numbers": list(self.numbers),
                "scaled_positions": [list(p) for p in self.scaled_positions], "label_blur": self.label_blur}

    @classmethod
    def from_spec(cls, spec: dict) -> "Crystal":
        return cls(spec["name"], tuple(tuple(r) for r in spec["cell"]), tuple(spec["numbers"]),
                   tuple(tuple(p) for p in spec["scaled_positions"]), float(spec["label_blur"]))


def read_cif(path, label_blur: float = CIF_LABEL_BLUR, parameter: str = "lattices") -> Crystal:
    """The crystal of a CIF file (ASE's reader, its first structure), named by the file's stem; one-line errors,
    naming ``parameter``, for a missing file, one that does not parse, one that holds no atoms or no 3-D cell."""
    from ase.io import read

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{parameter}: the CIF file {str(path)!r} does not exist")
    try:
        atoms = read(path, format="cif")
    except Exception as err:  # ASE raises many kinds for a malformed file
        raise ValueError(f"{parameter}: {str(path)!r} does not parse as a CIF ({type(err).__name__}: "
                         f"{str(err).splitlines()[0][:100] if str(err) else 'no detail'})") from None
    if isinstance(atoms, list):
        atoms = atoms[0] if atoms else Atoms()
    volume = abs(np.linalg.det(atoms.cell[:])) if atoms.cell.rank == 3 else 0.0
    if len(atoms) == 0 or volume <= 0:
        raise ValueError(f"{parameter}: the CIF {str(path)!r} holds no atoms or no three-dimensional cell")
    name = "".join(c if c.isalnum() else "-" for c in path.stem)
    if name in LATTICES or name in EXTRA_LATTICES:
        raise ValueError(f"{parameter}: the CIF {str(path)!r} is named like the built-in lattice {name!r}; rename "
                         "the file")
    if not np.isfinite(label_blur) or label_blur <= 0:
        raise ValueError(f"cif_label_blur={label_blur!r} must be a positive number (Å)")
    return Crystal(name, tuple(tuple(float(v) for v in r) for r in atoms.cell[:]), tuple(int(z) for z in atoms.numbers),
                   tuple(tuple(float(v) for v in p) for p in atoms.get_scaled_positions(wrap=True)), float(label_blur))


SIZE_CLASSES: dict[str, tuple[float, float]] = {"small": (10.0, 20.0), "large": (25.0, 35.0)}  # radius, Å, STUDY.md 1
CDSE_DIAMETER = (30.0, 50.0)  # Å, defocus and dose series (STUDY.md 1)
SUBSTRATE_THICKNESS = (20.0, 80.0)  # Å, uniform (STUDY.md 1)


def get_lattice(name) -> Lattice | Crystal:
    """The lattice called ``name`` (the study's nine and gold; a :class:`Crystal` passes through); a one-line
    error lists the allowed names."""
    if isinstance(name, (Lattice, Crystal)):
        return name
    found = LATTICES.get(name) or EXTRA_LATTICES.get(name)
    if found is None:
        raise ValueError(f"lattice={name!r} is unknown; allowed: {', '.join([*LATTICES, *EXTRA_LATTICES])} "
                         "or a CIF file")
    return found


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A rotation matrix drawn uniformly from SO(3)."""
    return Rotation.random(random_state=rng).as_matrix()


def _sphere_from_cell(cell_atoms: Atoms, radius: float, rng: np.random.Generator, rotation=None) -> Atoms:
    """Cut a sphere of ``radius`` (Å) around a random point of a periodic crystal, in a random orientation."""
    lengths = cell_atoms.cell.lengths()
    # The perpendicular widths of the cell bound how many repeats cover the sphere.
    volume = abs(np.linalg.det(cell_atoms.cell[:]))
    widths = [volume / np.linalg.norm(np.cross(cell_atoms.cell[(i + 1) % 3], cell_atoms.cell[(i + 2) % 3]))
              for i in range(3)]
    reps = [int(np.ceil(2 * (radius + max(lengths)) / w)) + 1 for w in widths]
    bulk = cell_atoms.repeat(reps)
    centre = bulk.cell.sum(axis=0) / 2 + rng.uniform(-0.5, 0.5, 3) @ cell_atoms.cell[:]
    pos = (bulk.positions - centre) @ (_random_rotation(rng) if rotation is None else rotation).T
    keep = np.linalg.norm(pos, axis=1) <= radius
    return Atoms(bulk.numbers[keep], positions=pos[keep])


def wurtzite_stacking(n_layers: int, n_faults: int, rng: np.random.Generator) -> list[int]:
    """Close-packed layer positions (0=A, 1=B, 2=C) of a wurtzite column with ``n_faults`` stacking faults.

    Wurtzite stacks ...BCBC...; an intrinsic fault continues the sequence with the third position, so the
    stacking locally reads like zinc blende (e.g. BCBC|ACAC...).
    """
    if n_faults < 0 or n_faults > 2:
        raise ValueError(f"n_faults={n_faults} is out of range; allowed: 0, 1, 2")
    fault_at = set(rng.choice(np.arange(2, max(n_layers - 1, 3)), size=n_faults, replace=False).tolist())
    seq = [1, 2]
    for i in range(2, n_layers):
        seq.append(3 - seq[-1] - seq[-2] if i in fault_at else seq[-2])
    return seq


def wurtzite_with_faults(lattice: Lattice, radius: float, n_faults: int, rng: np.random.Generator,
                         rotation=None) -> Atoms:
    """A spherical wurtzite particle built layer by layer, so that stacking faults can be inserted.

    Without faults this is the same crystal as ``lattice.unit_cell()`` (tested).
    """
    a, c = lattice.a, lattice.c
    a1, a2 = np.array([a, 0, 0]), np.array([-a / 2, a * np.sqrt(3) / 2, 0])
    shifts = [np.zeros(3), (a1 + 2 * a2) / 3, (2 * a1 + a2) / 3]  # A, B, C in-plane positions
    half = radius + 2 * a
    n_layers = int(np.ceil(2 * half / (c / 2))) + 1
    seq = wurtzite_stacking(n_layers, n_faults, rng)
    n = int(np.ceil(2 * half / a)) + 2
    i, j = np.meshgrid(np.arange(-n, n + 1), np.arange(-n, n + 1), indexing="ij")
    plane = i.reshape(-1, 1) * a1 + j.reshape(-1, 1) * a2
    numbers, positions = [], []
    cation, anion = (Atoms(s).numbers[0] for s in lattice.symbols)
    for layer, kind in enumerate(seq):
        z = layer * c / 2 - half
        for number, dz in ((cation, 0.0), (anion, WURTZITE_U * c)):
            p = plane + shifts[kind] + np.array([0, 0, z + dz])
            positions.append(p)
            numbers.append(np.full(len(p), number))
    pos = np.concatenate(positions)
    pos = pos - rng.uniform(-0.5, 0.5, 3) * np.array([a, a, c])
    pos = pos @ (_random_rotation(rng) if rotation is None else rotation).T
    keep = np.linalg.norm(pos, axis=1) <= radius
    return Atoms(np.concatenate(numbers)[keep], positions=pos[keep])


def nanoparticle(lattice: str | Lattice | Crystal, radius: float, rng: np.random.Generator, n_faults: int = 0,
                 rotation=None) -> Atoms:
    """A spherical particle of ``radius`` (Å) cut from ``lattice``, centred at 0.

    Its orientation is uniformly random, or ``rotation`` (3x3 matrix applied to crystal coordinates).
    """
    lat = get_lattice(lattice)
    if radius <= 0:
        raise ValueError(f"radius={radius} must be > 0 Å")
    if n_faults:
        if lat.structure != "wurtzite":
            raise ValueError(f"n_faults={n_faults} needs a wurtzite lattice; {lat.name} is {lat.structure}")
        return wurtzite_with_faults(lat, radius, n_faults, rng, rotation)
    return _sphere_from_cell(lat.unit_cell(), radius, rng, rotation)


def amorphous_carbon(extent: float, thickness: float, rng: np.random.Generator,
                     density: float = CARBON_DENSITY, min_distance: float = CARBON_MIN_DISTANCE) -> Atoms:
    """Amorphous carbon slab, ``extent`` x ``extent`` x ``thickness`` Å, periodic in x and y.

    Random sequential addition: uniform candidates, each accepted unless it lies within ``min_distance`` of an
    accepted atom (periodic in x and y), until the slab holds the atoms of its density (g/cm3). A cell list makes
    each test local (numba), so a 128 x 128 x 80 Å slab takes milliseconds.
    """
    if extent <= 0 or thickness <= 0:
        raise ValueError(f"extent={extent} and thickness={thickness} must be > 0 Å")
    number_density = density / CARBON_MOLAR_MASS * AVOGADRO * 1e-24  # atoms / Å3
    n = int(round(number_density * extent * extent * thickness))
    box = np.array([extent, extent, thickness])
    cells = np.maximum((box // min_distance).astype(np.int64), 1)
    head = np.full(int(np.prod(cells)), -1, np.int64)
    pos = np.empty((n, 3))
    following = np.empty(n, np.int64)
    count = 0
    for _ in range(200):
        candidates = rng.uniform(0, 1, (2 * (n - count) + 64, 3)) * box
        count = _random_sequential_addition(candidates, pos, following, head, count, box, cells, min_distance ** 2)
        if count == n:
            break
    else:
        raise RuntimeError(f"amorphous carbon did not converge at density={density} g/cm3")
    return Atoms(np.full(n, 6), positions=pos, cell=[extent, extent, thickness], pbc=[True, True, False])


@numba.njit(cache=True)
def _random_sequential_addition(candidates, pos, following, head, count, box, cells, min_d2):
    """Accept candidates in order while none is within sqrt(min_d2) of an accepted one; returns the new count.

    ``head``/``following``: a cell list (per cell, the last atom in it; per atom, the previous one in its cell).
    """
    n = pos.shape[0]
    for c in range(candidates.shape[0]):
        if count == n:
            break
        p = candidates[c]
        ix, iy, iz = (int(p[0] / box[0] * cells[0]) % cells[0], int(p[1] / box[1] * cells[1]) % cells[1],
                      min(int(p[2] / box[2] * cells[2]), cells[2] - 1))
        ok = True
        for dx in range(-1, 2):
            for dy in range(-1, 2):
                for dz in range(-1, 2):
                    jz = iz + dz
                    if jz < 0 or jz >= cells[2]:
                        continue
                    cell = (((ix + dx) % cells[0]) * cells[1] + (iy + dy) % cells[1]) * cells[2] + jz
                    j = head[cell]
                    while j >= 0:
                        d2 = 0.0
                        for a in range(3):
                            d = p[a] - pos[j, a]
                            if a < 2:  # periodic in x and y
                                d -= box[a] * np.round(d / box[a])
                            d2 += d * d
                        if d2 < min_d2:
                            ok = False
                            break
                        j = following[j]
                    if not ok:
                        break
                if not ok:
                    break
            if not ok:
                break
        if ok:
            pos[count] = p
            cell = (ix * cells[1] + iy) * cells[2] + iz
            following[count] = head[cell]
            head[cell] = count
            count += 1
    return count


def place_discs(radii: np.ndarray, extent: float, rng: np.random.Generator, gap: float = PARTICLE_GAP,
                tries: int = 50, candidates: int = 256) -> np.ndarray:
    """Centres (x, y) in Å of discs of ``radii`` wholly inside the field, at least ``gap`` Å apart edge to edge.

    Largest disc first, each drawn from ``candidates`` uniform positions that keep clear of those placed;
    the whole placement is retried ``tries`` times before it is declared impossible.
    """
    radii = np.asarray(radii, dtype=float)
    if np.any(2 * radii > extent):
        raise ValueError(f"particle diameter {2 * radii.max():.1f} Å is larger than the field extent={extent} Å")
    order = np.argsort(-radii)
    for _ in range(tries):
        centres = np.zeros((len(radii), 2))
        for k, i in enumerate(order):
            xy = rng.uniform(radii[i], extent - radii[i], (candidates, 2))
            placed = order[:k]
            dist = np.linalg.norm(xy[:, None] - centres[placed][None], axis=-1)
            ok = np.all(dist >= radii[placed] + radii[i] + gap, axis=1)
            if not ok.any():
                break
            centres[i] = xy[np.argmax(ok)]
        else:
            return centres
    raise ValueError(f"n_particles={len(radii)} of radii up to {radii.max():.1f} Å cannot fit at >= {gap} Å apart "
                     f"in a field of extent={extent} Å; use fewer or smaller particles or a larger field")


@dataclass
class Scene:
    """A scene: particles on amorphous carbon, and the same particles alone (for the label)."""

    atoms: Atoms
    particles: Atoms
    radii: np.ndarray
    centres: np.ndarray
    substrate_thickness: float

    @property
    def projected_area(self) -> float:
        """Total projected particle area, Å2 (discs of the particles' radii)."""
        return float(np.pi * np.sum(self.radii ** 2))


def make_scene(lattice: str | Lattice | Crystal, radii, extent: float, substrate_thickness: float,
               rng: np.random.Generator, max_faults: int = 0) -> Scene:
    """Particles of ``radii`` (Å) on a carbon slab, beam along +z.

    The beam crosses the carbon first and the particles last, so the exit plane of the scene and of the
    particles-alone cell is the particles' exit surface: label phase and calibrated zero defocus refer to the
    same plane as the scene's exit wave.
    """
    lat = get_lattice(lattice)
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    centres = place_discs(radii, extent, rng)
    top = substrate_thickness
    depth = 2 * radii.max()
    parts = []
    for r, (x, y) in zip(radii, centres):
        faults = int(rng.integers(0, max_faults + 1)) if max_faults else 0
        p = nanoparticle(lat, r, rng, n_faults=faults)
        p.positions += [x, y, top + r]  # resting on the carbon surface z = top
        parts.append(p)
    particles = Atoms(np.concatenate([p.numbers for p in parts]),
                      positions=np.concatenate([p.positions for p in parts]),
                      cell=[extent, extent, top + depth], pbc=[True, True, False])
    carbon = amorphous_carbon(extent, substrate_thickness, rng)
    atoms = carbon + particles
    atoms.set_cell([extent, extent, top + depth])
    atoms.pbc = [True, True, False]
    only = particles.copy()
    only.positions[:, 2] -= top
    only.set_cell([extent, extent, depth])
    return Scene(atoms=atoms, particles=only, radii=radii, centres=centres, substrate_thickness=substrate_thickness)
