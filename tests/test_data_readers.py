"""Readers (extended XYZ, ASE db, MD17 npz, ANI HDF5, QM9 via qm9pack), units, splits, bad data, xTB labels."""
import numpy as np
import pytest

from nnforce.data import (Dataset, read_ani_h5, read_ase_db, read_dataset, read_md17, read_qm9, read_xyz, split)
from nnforce.units import KJ_MOL_PER_EV, KJ_MOL_PER_HARTREE

WATER_Z = np.array([8, 1, 1])
WATER_A = np.array([[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]])


def _frames(n, seed=0):
    rng = np.random.default_rng(seed)
    positions = [WATER_A + rng.normal(scale=0.05, size=(3, 3)) for _ in range(n)]
    energies = rng.normal(size=n)
    forces = [rng.normal(size=(3, 3)) for _ in range(n)]
    return positions, energies, forces


def test_extxyz_and_ase_db_convert_units(tmp_path):
    import ase.db
    import ase.io
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    positions, energies, forces = _frames(4)
    images = []
    for x, e, f in zip(positions, energies, forces):
        atoms = Atoms(numbers=WATER_Z, positions=x)
        atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
        images.append(atoms)
    ase.io.write(tmp_path / "w.xyz", images, format="extxyz")
    data = read_xyz(tmp_path / "w.xyz", energy_unit="eV", length_unit="angstrom")
    assert len(data) == 4 and data.elements == [1, 8]
    np.testing.assert_allclose(data.positions_nm, np.concatenate(positions) / 10.0, atol=1e-9)
    np.testing.assert_allclose(data.energies_kj_mol, energies * 96.48533212331, rtol=1e-9)
    np.testing.assert_allclose(data.forces_kj_mol_nm, np.concatenate(forces) * 964.8533212331, rtol=1e-6)  # extxyz: 8 digits
    with ase.db.connect(tmp_path / "w.db") as db:
        for atoms in images:
            db.write(atoms)
    from_db = read_ase_db(tmp_path / "w.db")
    np.testing.assert_allclose(from_db.energies_kj_mol, energies * KJ_MOL_PER_EV, rtol=1e-12)
    np.testing.assert_allclose(from_db.forces_kj_mol_nm, np.concatenate(forces) * KJ_MOL_PER_EV * 10, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown energy unit"):
        read_xyz(tmp_path / "w.xyz", energy_unit="furlong", length_unit="angstrom")


def test_md17_npz_and_native_roundtrip(tmp_path):
    positions, energies, forces = _frames(5)
    np.savez(tmp_path / "md17.npz", z=WATER_Z, R=np.array(positions), E=energies[:, None], F=np.array(forces))
    data = read_md17(tmp_path / "md17.npz", energy_unit="kcal/mol", length_unit="angstrom")
    assert data.energies_kj_mol[2] == pytest.approx(energies[2] * 4.184)
    assert data.forces_kj_mol_nm[4, 1] == pytest.approx(np.array(forces)[1, 1, 1] * 41.84)
    data.save(tmp_path / "native.npz")
    again = read_dataset(tmp_path / "native.npz")
    np.testing.assert_array_equal(again.positions_nm, data.positions_nm)
    assert again.content_hash() == data.content_hash()
    # mismatched shapes are refused
    np.savez(tmp_path / "bad.npz", z=WATER_Z, R=np.zeros((5, 4, 3)), E=energies)
    with pytest.raises(ValueError, match="z lists 3 atoms"):
        read_md17(tmp_path / "bad.npz", energy_unit="kcal/mol", length_unit="angstrom")
    with pytest.raises(FileNotFoundError):
        read_md17(tmp_path / "missing.npz", energy_unit="kcal/mol", length_unit="angstrom")


def test_ani_h5_both_layouts(tmp_path):
    import h5py

    positions, energies, forces = _frames(3)
    with h5py.File(tmp_path / "ani1.h5", "w") as handle:  # ANI-1: nested groups, symbols, 'energies'
        group = handle.create_group("gdb11_s01").create_group("water")
        group["species"] = np.array([b"O", b"H", b"H"])
        group["coordinates"] = np.array(positions)
        group["energies"] = energies
    data = read_ani_h5(tmp_path / "ani1.h5")
    assert data.atomic_numbers.tolist() == [8, 1, 1] * 3
    assert data.energies_kj_mol[1] == pytest.approx(energies[1] * KJ_MOL_PER_HARTREE)
    with h5py.File(tmp_path / "ani1x.h5", "w") as handle:  # ANI-1x: atomic_numbers + method-named datasets
        group = handle.create_group("H2O")
        group["atomic_numbers"] = WATER_Z
        group["coordinates"] = np.array(positions)
        group["wb97x_dz.energy"] = energies
        group["wb97x_dz.forces"] = np.array(forces)
    data = read_ani_h5(tmp_path / "ani1x.h5", energy_key="wb97x_dz.energy", forces_key="wb97x_dz.forces")
    assert data.forces_kj_mol_nm[0, 2] == pytest.approx(forces[0][0, 2] * KJ_MOL_PER_HARTREE * 10.0)
    with pytest.raises(ValueError, match="no energy dataset"):
        read_ani_h5(tmp_path / "ani1x.h5")


def test_qm9_from_qm9pack(tmp_path):
    pytest.importorskip("pandas")
    data = read_qm9("U0", max_molecules=3, cache_dir=str(tmp_path))
    # QM9 molecule 1 is methane, U0 = -40.478930 hartree (Ramakrishnan et al., Sci. Data 1, 140022 (2014))
    assert data.frame(0)[0].tolist() == [6, 1, 1, 1, 1]
    assert data.energies_kj_mol[0] == pytest.approx(-40.47893 * KJ_MOL_PER_HARTREE, abs=1e-3)
    c, h = data.frame(0)[1][0], data.frame(0)[1][1]
    assert np.linalg.norm(h - c) == pytest.approx(0.1092, abs=5e-4)  # C-H bond, nm
    assert data.frame(1)[0].tolist() == [7, 1, 1, 1]  # ammonia


def test_bad_data_errors():
    positions, energies, forces = _frames(3)
    with pytest.raises(ValueError, match="positions of shape"):
        Dataset.from_frames(WATER_Z, [p[:2] for p in positions])
    with pytest.raises(ValueError, match="NaN/inf energy labels in frames \\[1\\]"):
        Dataset.from_frames(WATER_Z, positions, [0.0, np.nan, 1.0])
    bad_forces = [f.copy() for f in forces]
    bad_forces[2][1, 0] = np.inf
    with pytest.raises(ValueError, match="NaN/inf force labels in frames \\[2\\]"):
        Dataset.from_frames(WATER_Z, positions, energies, bad_forces)
    with pytest.raises(ValueError, match="2 energies for 3 frames"):
        Dataset.from_frames(WATER_Z, positions, energies[:2])
    data = Dataset.from_frames(WATER_Z, positions, energies, forces)
    with pytest.raises(ValueError, match=r"atomic numbers \[8\] are not among the model's elements"):
        data.check_elements([1, 6])
    with pytest.raises(ValueError, match="empty split"):
        split(data, (3, 0, 0))
    with pytest.raises(ValueError, match="need 4 frames"):
        split(data, (2, 1, 1))


def test_splits_are_seeded_and_disjoint():
    positions, energies, _ = _frames(50)
    data = Dataset.from_frames(WATER_Z, positions, np.arange(50.0))
    a = split(data, (30, 10, 10), seed=4)
    b = split(data, (30, 10, 10), seed=4)
    c = split(data, (30, 10, 10), seed=5)
    ids = [set(part.energies_kj_mol.astype(int)) for part in a]
    assert len(ids[0] | ids[1] | ids[2]) == 50
    assert [p.energies_kj_mol.tolist() for p in a] == [p.energies_kj_mol.tolist() for p in b]
    assert a[0].energies_kj_mol.tolist() != c[0].energies_kj_mol.tolist()
    fractions = split(data, (0.8, 0.1, 0.1), seed=0)
    assert [len(p) for p in fractions] == [40, 5, 5]


def test_xtb_labels_match_ase_calculator_and_finite_differences():
    pytest.importorskip("tblite")
    from ase import Atoms
    from tblite.ase import TBLite

    from nnforce.data.label import xtb_label

    positions, _, _ = _frames(2)
    data = xtb_label(Dataset.from_frames(WATER_Z, [p / 10.0 for p in positions]))
    atoms = Atoms(numbers=WATER_Z, positions=positions[1])
    atoms.calc = TBLite(method="GFN2-xTB", verbosity=0)
    assert data.energies_kj_mol[1] == pytest.approx(atoms.get_potential_energy() * KJ_MOL_PER_EV, rel=1e-8)
    np.testing.assert_allclose(data.frame(1)[3], atoms.get_forces() * KJ_MOL_PER_EV * 10.0, rtol=1e-6, atol=1e-4)
    # forces are -dE/dx in kJ/mol/nm: check one component by finite differences of our own energies
    h = 1e-5
    plus, minus = positions[0] / 10.0, positions[0] / 10.0
    plus, minus = plus.copy(), minus.copy()
    plus[1, 1] += h
    minus[1, 1] -= h
    pair = xtb_label(Dataset.from_frames(WATER_Z, [plus, minus]))
    fd = -(pair.energies_kj_mol[0] - pair.energies_kj_mol[1]) / (2 * h)
    assert data.forces_kj_mol_nm[1, 1] == pytest.approx(fd, rel=1e-4)


def test_cli_label_writes_labelled_dataset(tmp_path):
    pytest.importorskip("tblite")
    import ase.io
    from ase import Atoms

    from nnforce.cli import main

    positions, _, _ = _frames(4)
    ase.io.write(tmp_path / "traj.xyz", [Atoms(numbers=WATER_Z, positions=p) for p in positions])
    assert main(["label", str(tmp_path / "traj.xyz"), "--stride", "2", "-o", str(tmp_path / "out.npz")]) == 0
    data = Dataset.load(tmp_path / "out.npz")
    assert len(data) == 2 and data.has_forces
    np.testing.assert_allclose(data.frame(1)[1], positions[2] / 10.0, atol=1e-9)
    # GFN2-xTB water is about -5.07 hartree
    assert data.energies_kj_mol[0] / KJ_MOL_PER_HARTREE == pytest.approx(-5.07, abs=0.03)
    assert main(["label", str(tmp_path / "nothing.xyz"), "-o", str(tmp_path / "x.npz")]) == 2


def test_ani1x_teacher_labels_reproduce_the_published_methane_energy():
    try:
        from nnforce.models.ani1x import METHANE_ANGSTROM, METHANE_ATOMIC_NUMBERS, METHANE_PUBLISHED_HARTREE, ani1x

        teacher = ani1x()
    except (ImportError, FileNotFoundError) as error:
        pytest.skip(f"ANI-1x files not available: {error}")
    from nnforce.data.label import teacher_label

    methane = Dataset.from_frames(METHANE_ATOMIC_NUMBERS, [np.array(METHANE_ANGSTROM) / 10.0])
    labelled = teacher_label(methane, teacher.double())
    assert labelled.energies_kj_mol[0] / KJ_MOL_PER_HARTREE == pytest.approx(METHANE_PUBLISHED_HARTREE, abs=2e-5)
    # forces are -dE/dx: the net force on an isolated molecule vanishes
    np.testing.assert_allclose(labelled.forces_kj_mol_nm.sum(axis=0), 0.0, atol=1e-6)
    assert np.abs(labelled.forces_kj_mol_nm).max() > 1.0
