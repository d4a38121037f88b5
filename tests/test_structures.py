import numpy as np
import pytest
from scipy.spatial import cKDTree

from hrtem_tl import structures as st

ATOMS_PER_CELL = {"wurtzite": 4, "fcc": 4, "bcc": 2, "diamond": 8, "spinel": 56}


def nearest_neighbour(atoms) -> float:
    return float(cKDTree(atoms.positions).query(atoms.positions, k=2)[0][:, 1].min())


@pytest.mark.parametrize("name", list(st.LATTICES))
def test_unit_cells_match_their_structure(name):
    lat = st.get_lattice(name)
    cell = lat.unit_cell()
    assert len(cell) == ATOMS_PER_CELL[lat.structure]
    bulk = cell.repeat(3)
    d = nearest_neighbour(bulk)
    expected = {
        "fcc": lat.a / np.sqrt(2),
        "bcc": lat.a * np.sqrt(3) / 2,
        "diamond": lat.a * np.sqrt(3) / 4,
        # wurtzite bond along c: u * c
        "wurtzite": st.WURTZITE_U * (lat.c or 0),
    }.get(lat.structure)
    if expected is not None:
        assert d == pytest.approx(expected, rel=0.02)
    if lat.structure == "spinel":
        symbols = cell.get_chemical_symbols()
        assert symbols.count("O") == 32 and len(symbols) - 32 == 24  # AB2O4 x 8
        assert 1.8 < d < 2.2  # metal-oxygen bond, Å


def test_unknown_lattice_is_one_clear_error():
    with pytest.raises(ValueError, match="lattice='NaCl' is unknown; allowed: ZnS, CdSe"):
        st.get_lattice("NaCl")


def test_particle_is_a_sphere_of_the_crystal_density():
    rng = np.random.default_rng(0)
    radius = 15.0
    for name in ("Cu", "CdSe", "Fe3O4"):
        lat = st.get_lattice(name)
        p = st.nanoparticle(name, radius, rng)
        assert np.linalg.norm(p.positions, axis=1).max() <= radius
        density = len(lat.unit_cell()) / lat.unit_cell().get_volume()
        assert len(p) == pytest.approx(density * 4 / 3 * np.pi * radius ** 3, rel=0.1)


def test_faultless_layered_wurtzite_is_the_space_group_crystal():
    rng = np.random.default_rng(1)
    lat = st.get_lattice("CdSe")
    layered = st.nanoparticle(lat, 14, rng, n_faults=0, rotation=np.eye(3))
    grown = st.wurtzite_with_faults(lat, 14, 0, rng, rotation=np.eye(3))
    reference = np.sort(cKDTree(lat.unit_cell().repeat(4).positions).query(
        lat.unit_cell().repeat(4).positions[:40], k=13)[0][:, 1:].ravel())
    for p in (layered, grown):
        inner = p.positions[np.linalg.norm(p.positions, axis=1) < 7]
        d = np.sort(cKDTree(p.positions).query(inner, k=13)[0][:, 1:].ravel())
        assert np.percentile(d, 50) == pytest.approx(np.percentile(reference, 50), rel=0.01)
    assert len(grown) == pytest.approx(len(layered), rel=0.1)


@pytest.mark.parametrize("n_faults", [0, 1, 2])
def test_stacking_faults_break_the_wurtzite_sequence(n_faults):
    seq = st.wurtzite_stacking(20, n_faults, np.random.default_rng(n_faults))
    assert sum(seq[i] != seq[i - 2] for i in range(2, len(seq))) == n_faults
    assert all(seq[i] != seq[i - 1] for i in range(1, len(seq)))  # close packing: no two equal neighbours


def test_amorphous_carbon_density_and_minimum_distance():
    rng = np.random.default_rng(0)
    c = st.amorphous_carbon(60, 30, rng)
    mass = len(c) * st.CARBON_MOLAR_MASS / st.AVOGADRO  # g
    assert mass / (60 * 60 * 30 * 1e-24) == pytest.approx(2.0, rel=0.01)
    tree = cKDTree(c.positions, boxsize=[60, 60, 1000])
    assert tree.query(c.positions, k=2)[0][:, 1].min() >= st.CARBON_MIN_DISTANCE
    assert c.positions[:, 2].min() >= 0 and c.positions[:, 2].max() <= 30


def test_scene_places_particles_apart_inside_the_field_on_the_carbon():
    rng = np.random.default_rng(3)
    radii = np.array([10.0, 12.0, 8.0])
    scene = st.make_scene("Ag", radii, 100, 30, rng)
    c, r = scene.centres, scene.radii
    for i in range(3):
        assert r[i] <= c[i, 0] <= 100 - r[i] and r[i] <= c[i, 1] <= 100 - r[i]
        for j in range(i):
            assert np.linalg.norm(c[i] - c[j]) >= r[i] + r[j] + st.PARTICLE_GAP
    z = scene.atoms.positions[:, 2]
    assert z.min() >= 0 and z.max() <= scene.atoms.cell[2, 2]
    assert len(scene.particles) == len(scene.atoms) - int(np.sum(scene.atoms.numbers == 6))
    assert scene.projected_area == pytest.approx(np.pi * np.sum(radii ** 2))


def test_impossible_placements_are_clear_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="larger than the field extent=40"):
        st.place_discs([25.0], 40, rng)
    with pytest.raises(ValueError, match="n_particles=5 .* cannot fit at >= 10.0 Å apart"):
        st.place_discs([15.0] * 5, 60, rng)
    with pytest.raises(ValueError, match="n_faults=1 needs a wurtzite lattice"):
        st.nanoparticle("Cu", 10, rng, n_faults=1)


def test_gold_is_built_in_beside_the_studys_nine():
    gold = st.get_lattice("Au")
    cell = gold.unit_cell()
    assert gold.structure == "fcc" and len(cell) == 4 and set(cell.get_chemical_symbols()) == {"Au"}
    assert nearest_neighbour(cell.repeat(3)) == pytest.approx(4.0782 / np.sqrt(2), rel=1e-6)
    assert "Au" not in st.LATTICES  # the study's series keeps its nine


def _rocksalt_cif(path):
    from ase.build import bulk
    from ase.io import write

    write(path, bulk("NaCl", "rocksalt", a=5.64, cubic=True), format="cif")
    return path


def test_a_cif_crystal_is_read_whole_and_cut_into_particles_of_its_density(tmp_path):
    crystal = st.read_cif(_rocksalt_cif(tmp_path / "NaCl.cif"))
    assert crystal.name == "NaCl" and crystal.label_blur == st.CIF_LABEL_BLUR
    cell = crystal.unit_cell()
    assert len(cell) == 8 and sorted(set(cell.get_chemical_symbols())) == ["Cl", "Na"]
    assert nearest_neighbour(cell.repeat(3)) == pytest.approx(5.64 / 2, rel=1e-6)  # Na-Cl along a cube edge
    assert st.Crystal.from_spec(crystal.as_spec()) == crystal  # a scene spec carries it whole
    radius = 12.0
    p = st.nanoparticle(crystal, radius, np.random.default_rng(0))
    assert np.linalg.norm(p.positions, axis=1).max() <= radius
    assert len(p) == pytest.approx(8 / 5.64 ** 3 * 4 / 3 * np.pi * radius ** 3, rel=0.1)


@pytest.mark.parametrize("content, message", [
    (None, r"lattices: the CIF file '.*missing.cif' does not exist"),
    ("this is not a CIF\n", r"lattices: '.*bad.cif' does not parse as a CIF"),
    ("data_empty\n_cell_length_a 5\n_cell_length_b 5\n_cell_length_c 5\n_cell_angle_alpha 90\n"
     "_cell_angle_beta 90\n_cell_angle_gamma 90\n", r"lattices: .*(holds no atoms|does not parse)"),
])
def test_a_bad_cif_is_one_line_naming_the_parameter(tmp_path, content, message):
    name = {None: "missing.cif", "this is not a CIF\n": "bad.cif"}.get(content, "empty.cif")
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ValueError, match=message) as err:
        st.read_cif(path)
    assert "\n" not in str(err.value)
