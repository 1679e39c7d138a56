"""Readers for common reference-data formats. Units are always explicit and converted once, on read.

| reader | format | typical units |
|---|---|---|
| :func:`read_xyz` | extended XYZ (ASE) | what the file's producer used (ASE tools: eV, Angstrom) |
| :func:`read_ase_db` | ASE database (``.db``) | ASE: eV, Angstrom |
| :func:`read_md17` | npz with ``z``, ``R``, ``E``, ``F`` | MD17: kcal/mol, Angstrom |
| :func:`read_ani_h5` | ANI-style HDF5 (one group per formula) | ANI-1x: hartree, Angstrom |
| :func:`read_qm9` | QM9 from the ``qm9pack`` package | hartree, Angstrom (fixed by QM9) |
"""
import glob
import hashlib
import os

import numpy as np

from .dataset import Dataset
from ..units import energy_factor, force_factor, length_factor

_SYMBOLS = ["X", "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
            "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br", "Kr",
            "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te", "I", "Xe"]
_NUMBER = {s: z for z, s in enumerate(_SYMBOLS)}


def atomic_number(symbol):
    """Atomic number of an element symbol (str or bytes); ValueError for an unknown symbol.

    Parameters
    ----------
    symbol : str or bytes

    Returns
    -------
    int

    Examples
    --------
    >>> atomic_number("Cl"), atomic_number(b"H")
    (17, 1)
    """
    if isinstance(symbol, bytes):
        symbol = symbol.decode()
    symbol = str(symbol).strip().strip("'\"")
    if symbol not in _NUMBER or symbol == "X":
        raise ValueError(f"unknown element symbol {symbol!r}")
    return _NUMBER[symbol]


def _require(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist")
    return path


def _from_atoms_list(images, energy_unit, length_unit, energy_key, forces_key, name):
    if not images:
        raise ValueError(f"{name}: no frames")
    e_factor = energy_factor(energy_unit)
    l_factor = length_factor(length_unit)
    f_factor = force_factor(energy_unit, length_unit)
    numbers, positions, energies, forces = [], [], [], []
    for index, atoms in enumerate(images):
        numbers.append(atoms.get_atomic_numbers())
        positions.append(atoms.get_positions() * l_factor)
        energy = _image_value(atoms, energy_key, "energy")
        force = _image_value(atoms, forces_key, "forces")
        energies.append(None if energy is None else float(np.asarray(energy).reshape(())) * e_factor)
        forces.append(None if force is None else np.asarray(force, dtype=np.float64) * f_factor)
    have_e = [e is not None for e in energies]
    have_f = [f is not None for f in forces]
    if any(have_e) and not all(have_e):
        raise ValueError(f"{name}: frames {[i for i, h in enumerate(have_e) if not h][:10]} have no energy "
                         f"(looked for {energy_key!r}); label every frame or pass energy_key")
    if any(have_f) and not all(have_f):
        raise ValueError(f"{name}: frames {[i for i, h in enumerate(have_f) if not h][:10]} have no forces "
                         f"(looked for {forces_key!r})")
    return Dataset.from_frames(numbers, positions, energies if all(have_e) else None,
                               forces if all(have_f) else None, name=name)


def _image_value(atoms, key, kind):
    if key is not None:
        if key in atoms.info:
            return atoms.info[key]
        if key in atoms.arrays:
            return atoms.arrays[key]
    if atoms.calc is not None:
        try:
            return atoms.calc.get_property(kind, atoms, allow_calculation=False)
        except Exception:  # the calculator (e.g. a SinglePointCalculator) does not hold that property
            return None
    return None


def read_xyz(path, *, energy_unit, length_unit, energy_key="energy", forces_key="forces", index=":"):
    """Read an (extended) XYZ file with ASE. Energies from ``atoms.info[energy_key]`` or the stored calculator,
    forces from ``atoms.arrays[forces_key]``; forces are taken to be in ``energy_unit/length_unit``.

    Parameters
    ----------
    path : str
    energy_unit, length_unit : str
        The file's units (see :mod:`nnforce.units`).
    energy_key, forces_key : str
    index : str
        ASE frame selection.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = read_xyz("ethanol.xyz", energy_unit="eV", length_unit="angstrom")  # doctest: +SKIP
    """
    import ase.io

    path = _require(path)
    images = ase.io.read(path, index=index, format="extxyz")
    return _from_atoms_list(images, energy_unit, length_unit, energy_key, forces_key, os.path.basename(path))


def read_ase_db(path, *, energy_unit="eV", length_unit="Angstrom", selection=None):
    """Read an ASE database; ASE stores eV and Angstrom, so those are the defaults.

    Parameters
    ----------
    path : str
    energy_unit, length_unit : str
    selection : str, optional
        An ASE database query.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = read_ase_db("molecules.db")  # doctest: +SKIP
    """
    import ase.db

    path = _require(path)
    with ase.db.connect(path) as db:
        images = [row.toatoms() for row in db.select(selection)]
    return _from_atoms_list(images, energy_unit, length_unit, None, None, os.path.basename(path))


def read_md17(path, *, energy_unit, length_unit, max_frames=None):
    """Read an MD17/rMD17-style npz: ``z`` [N], ``R`` [F,N,3], ``E`` [F] or [F,1], ``F`` [F,N,3].

    rMD17 uses ``nuclear_charges``/``coords``/``energies``/``forces``; both spellings are accepted. MD17's own units
    are kcal/mol and Angstrom, but they are not assumed: pass them.

    Parameters
    ----------
    path : str
    energy_unit, length_unit : str
    max_frames : int, optional

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = read_md17("md17_ethanol.npz", energy_unit="kcal/mol", length_unit="angstrom")  # doctest: +SKIP
    """
    path = _require(path)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)

        def pick(*names):
            for name in names:
                if name in keys:
                    return data[name]
            return None

        z = pick("z", "nuclear_charges")
        coords = pick("R", "coords")
        energies = pick("E", "energies")
        forces = pick("F", "forces")
    if z is None or coords is None:
        raise ValueError(f"{path}: an MD17-style file needs 'z' (or 'nuclear_charges') and 'R' (or 'coords'); "
                         f"found {sorted(keys)}")
    coords = np.asarray(coords, dtype=np.float64)
    z = np.asarray(z, dtype=np.int64).reshape(-1)
    if coords.ndim != 3 or coords.shape[1:] != (z.shape[0], 3):
        raise ValueError(f"{path}: R has shape {coords.shape} but z lists {z.shape[0]} atoms; expected "
                         f"[frames, {z.shape[0]}, 3]")
    frames = coords.shape[0] if max_frames is None else min(int(max_frames), coords.shape[0])
    if energies is not None:
        energies = np.asarray(energies, dtype=np.float64).reshape(-1)
        if energies.shape[0] != coords.shape[0]:
            raise ValueError(f"{path}: {energies.shape[0]} energies for {coords.shape[0]} frames")
        energies = energies[:frames] * energy_factor(energy_unit)
    if forces is not None:
        forces = np.asarray(forces, dtype=np.float64)
        if forces.shape != coords.shape:
            raise ValueError(f"{path}: F has shape {forces.shape} but R has {coords.shape}")
        forces = forces[:frames] * force_factor(energy_unit, length_unit)
    return Dataset.from_frames(z, coords[:frames] * length_factor(length_unit), energies,
                               None if forces is None else list(forces), name=os.path.basename(path))


def read_ani_h5(path, *, energy_unit="hartree", length_unit="Angstrom", energy_key=None, forces_key=None,
                species_key=None, coordinates_key="coordinates", max_conformers=None):
    """Read an ANI-style HDF5 file: groups (possibly nested) each holding one molecule's conformers.

    A group is a leaf when it has ``coordinates`` [C, N, 3] and a species array: ``species`` (element symbols,
    ANI-1 files) or ``atomic_numbers`` (ANI-1x files). Energies come from ``energies`` (ANI-1) or, for ANI-1x,
    pass ``energy_key='wb97x_dz.energy'`` and ``forces_key='wb97x_dz.forces'``. ANI's own units are hartree and
    Angstrom (the defaults here: the format fixes them).

    Parameters
    ----------
    path : str
    energy_unit, length_unit : str
    energy_key, forces_key, species_key, coordinates_key : str, optional
    max_conformers : int, optional

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = read_ani_h5("ani1x.h5", energy_key="wb97x_dz.energy", forces_key="wb97x_dz.forces")  # doctest: +SKIP
    """
    import h5py

    path = _require(path)
    e_factor = energy_factor(energy_unit)
    l_factor = length_factor(length_unit)
    f_factor = force_factor(energy_unit, length_unit)
    numbers, positions, energies, forces = [], [], [], []

    def visit(group):
        keys = set(group.keys())
        if coordinates_key in keys:
            skey = species_key or ("species" if "species" in keys else "atomic_numbers")
            if skey not in keys:
                raise ValueError(f"{path}:{group.name}: no species array ('species' or 'atomic_numbers')")
            species = np.asarray(group[skey])
            if species.dtype.kind in "SUO":
                z = np.array([atomic_number(s) for s in species.reshape(-1)], dtype=np.int64)
            else:
                z = species.astype(np.int64).reshape(-1)
            coords = np.asarray(group[coordinates_key], dtype=np.float64)
            if coords.ndim == 2:
                coords = coords[None]
            if coords.shape[1:] != (z.shape[0], 3):
                raise ValueError(f"{path}:{group.name}: coordinates {coords.shape} do not match {z.shape[0]} atoms")
            ekey = energy_key or ("energies" if "energies" in keys else None)
            if ekey is None or ekey not in keys:
                raise ValueError(f"{path}:{group.name}: no energy dataset {ekey!r}; pass energy_key= "
                                 f"(the group holds {sorted(keys)})")
            e = np.asarray(group[ekey], dtype=np.float64).reshape(-1)
            if e.shape[0] != coords.shape[0]:
                raise ValueError(f"{path}:{group.name}: {e.shape[0]} energies for {coords.shape[0]} conformers")
            f = None
            if forces_key is not None:
                if forces_key not in keys:
                    raise ValueError(f"{path}:{group.name}: no forces dataset {forces_key!r}")
                f = np.asarray(group[forces_key], dtype=np.float64)
            take = coords.shape[0] if max_conformers is None else min(coords.shape[0], int(max_conformers))
            for c in range(take):
                numbers.append(z)
                positions.append(coords[c] * l_factor)
                energies.append(e[c] * e_factor)
                if f is not None:
                    forces.append(f[c] * f_factor)
            return
        for key in sorted(keys):
            item = group[key]
            if isinstance(item, h5py.Group):
                visit(item)

    with h5py.File(path, "r") as handle:
        visit(handle)
    if not positions:
        raise ValueError(f"{path}: no conformer groups (with '{coordinates_key}') found")
    return Dataset.from_frames(numbers, positions, energies, forces if forces else None, name=os.path.basename(path))


QM9_TARGETS = {"U0": "InternalEnergy_0K_au", "U": "InternalEnergy_298K_au", "H": "Enthalphy_298K_au",
               "G": "GibbsFreeEnergy_298K_au"}


def read_qm9(target="U0", max_molecules=None, cache_dir=None):
    """QM9 (B3LYP/6-31G(2df,p) equilibrium geometries) from the ``qm9pack`` package, energies in kJ/mol.

    ``target`` is one of U0, U, H, G (hartree in the package, converted). The parsed arrays are cached under
    ``cache_dir`` (default ``$NNFORCE_CACHE`` or ``~/.cache/nnforce``) keyed by the package's CSV files, since
    parsing the 130,831 molecules takes about a minute. Frames keep the package's order (by QM9 index).

    Parameters
    ----------
    target : {"U0", "U", "H", "G"}
    max_molecules : int, optional
    cache_dir : str, optional

    Returns
    -------
    Dataset

    Examples
    --------
    >>> qm9 = read_qm9(max_molecules=1000)  # doctest: +SKIP
    """
    if target not in QM9_TARGETS:
        raise ValueError(f"unknown QM9 target {target!r}; use one of {sorted(QM9_TARGETS)}")
    import importlib.util

    # locate the package's data without importing it (qm9pack imports pkg_resources, gone from new setuptools)
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("read_qm9 needs the qm9pack package: pip install qm9pack")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    parts = sorted(glob.glob(os.path.join(folder, "qm9_part*.csv")))
    if not parts:
        raise FileNotFoundError(f"no qm9_part*.csv in {folder}; reinstall qm9pack")
    key = hashlib.sha256("|".join(f"{os.path.basename(p)}:{os.path.getsize(p)}" for p in parts).encode()).hexdigest()
    cache_dir = cache_dir or os.environ.get("NNFORCE_CACHE") or os.path.expanduser("~/.cache/nnforce")
    cache = os.path.join(cache_dir, f"qm9_{key[:16]}.npz")
    if os.path.exists(cache):
        with np.load(cache) as data:
            z, xyz, offsets, index = data["z"], data["xyz"], data["offsets"], data["index"]
            energy = data[target]
    elif max_molecules is not None and int(max_molecules) <= 10000:
        # a few molecules: parse the head of the first part only (it holds the lowest QM9 indices), no cache
        arrays = _parse_qm9(parts[:1], None, nrows=int(max_molecules))
        z, xyz, offsets, index, energy = (arrays["z"], arrays["xyz"], arrays["offsets"], arrays["index"],
                                          arrays[target])
    else:
        _parse_qm9(parts, cache)
        with np.load(cache) as data:
            z, xyz, offsets, index = data["z"], data["xyz"], data["offsets"], data["index"]
            energy = data[target]
    dataset = Dataset(z, xyz * length_factor("angstrom"), offsets, energy * energy_factor("hartree"), name=f"qm9-{target}")
    dataset.qm9_index = index
    if max_molecules is not None:
        dataset = dataset.subset(np.arange(min(int(max_molecules), len(dataset))))
    return dataset


def _parse_qm9(parts, cache, nrows=None):
    import pandas as pd

    from .._io import atomic_write

    columns = ["Index", "Elements", "XYZ_Ang"] + list(QM9_TARGETS.values())
    frame = pd.concat([pd.read_csv(p, usecols=columns, nrows=nrows) for p in parts], ignore_index=True)
    frame = frame.sort_values("Index", kind="stable")
    z_all, xyz_all, counts = [], [], []
    for elements, xyz in zip(frame["Elements"].values, frame["XYZ_Ang"].values):
        z = [_NUMBER[s.strip().strip("'\"")] for s in elements.strip("[]").split(",") if s.strip()]
        coords = np.array(xyz.replace("[", " ").replace("]", " ").replace("*^", "e").replace(",", " ").split(),
                          dtype=np.float64)
        if coords.shape[0] != 3 * len(z):
            raise ValueError(f"qm9pack row with {len(z)} elements has {coords.shape[0]} coordinates")
        z_all.append(np.array(z, dtype=np.int64))
        xyz_all.append(coords.reshape(-1, 3))
        counts.append(len(z))
    arrays = dict(z=np.concatenate(z_all), xyz=np.concatenate(xyz_all),
                  offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
                  index=frame["Index"].values.astype(np.int64))
    for short, column in QM9_TARGETS.items():
        arrays[short] = frame[column].values.astype(np.float64)
    if cache is None:
        return arrays
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    with atomic_write(cache) as handle:
        handle.write(buffer.getvalue())


def read_dataset(path, **units):
    """Read any supported file by its extension (``.npz`` native or MD17, ``.xyz``/``.extxyz``, ``.db``, ``.h5``).

    Parameters
    ----------
    path : str
    **units
        ``energy_unit``/``length_unit`` (and reader options) for non-native files.

    Returns
    -------
    Dataset

    Examples
    --------
    >>> data = read_dataset("ethanol.npz")  # doctest: +SKIP
    """
    path = os.fspath(path)
    lower = path.lower()
    if lower.endswith(".npz"):
        _require(path)
        with np.load(path) as data:
            native = "offsets" in data.files
        return Dataset.load(path) if native else read_md17(path, **units)
    if lower.endswith((".xyz", ".extxyz")):
        return read_xyz(path, **units)
    if lower.endswith(".db"):
        return read_ase_db(path, **units)
    if lower.endswith((".h5", ".hdf5")):
        return read_ani_h5(path, **units)
    raise ValueError(f"cannot tell the format of {path}; use .npz, .xyz/.extxyz, .db or .h5")
