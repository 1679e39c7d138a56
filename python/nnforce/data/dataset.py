"""A labelled set of molecular frames in OpenMM units, stored ragged (concatenated atoms + offsets).

Every reader in :mod:`nnforce.data` returns a :class:`Dataset`; conversions happen once, on read, through
the named factors in :mod:`nnforce.units`. Inside, positions are nm, energies kJ/mol per frame and forces
kJ/mol/nm per atom component, matching the model contract.
"""
import hashlib
import io
import os

import numpy as np

from .._io import atomic_write

FORMAT_VERSION = 1


class Dataset:
    """Frames of possibly different molecules.

    ``atomic_numbers``: int64[total_atoms]; ``positions_nm``: float64[total_atoms, 3]; ``offsets``: int64[F+1] (frame
    f owns atoms ``offsets[f]:offsets[f+1]``); ``energies_kj_mol``: float64[F] or None; ``forces_kj_mol_nm``:
    float64[total_atoms, 3] or None. Construct with :meth:`from_frames` or a reader; the constructor validates.

    Parameters
    ----------
    atomic_numbers : array of int, shape (total_atoms,)
    positions_nm : array, shape (total_atoms, 3)
    offsets : array of int, shape (F + 1,)
    energies_kj_mol : array, shape (F,), optional
    forces_kj_mol_nm : array, shape (total_atoms, 3), optional
    name : str

    Examples
    --------
    >>> import numpy as np
    >>> water = Dataset.from_frames([8, 1, 1], [np.zeros((3, 3)) + [[0, 0, 0], [0.1, 0, 0], [0, 0.1, 0]]], [0.0])
    >>> len(water), water.n_atoms.tolist()
    (1, [3])
    """

    def __init__(self, atomic_numbers, positions_nm, offsets, energies_kj_mol=None, forces_kj_mol_nm=None,
                 name="dataset"):
        self.atomic_numbers = np.ascontiguousarray(atomic_numbers, dtype=np.int64)
        self.positions_nm = np.ascontiguousarray(positions_nm, dtype=np.float64)
        self.offsets = np.ascontiguousarray(offsets, dtype=np.int64)
        self.energies_kj_mol = None if energies_kj_mol is None else np.ascontiguousarray(energies_kj_mol, np.float64)
        self.forces_kj_mol_nm = None if forces_kj_mol_nm is None else np.ascontiguousarray(forces_kj_mol_nm,
                                                                                           np.float64)
        self.name = str(name)
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frames(cls, atomic_numbers, positions_nm, energies_kj_mol=None, forces_kj_mol_nm=None, name="dataset"):
        """Build from per-frame lists (or arrays [F, N, 3] when all frames share one molecule).

        ``atomic_numbers`` is either one int array shared by every frame or a list with one array per frame.
        """
        positions = [np.asarray(p, dtype=np.float64) for p in positions_nm]
        n_frames = len(positions)
        if n_frames == 0:
            raise ValueError(f"{name}: no frames given")
        if _is_int_array(atomic_numbers):  # one array shared by every frame
            shared = np.asarray(atomic_numbers, dtype=np.int64)
            numbers = [shared] * n_frames
        else:
            numbers = [np.asarray(a, dtype=np.int64) for a in atomic_numbers]
            if len(numbers) != n_frames:
                raise ValueError(f"{name}: {len(numbers)} atomic-number arrays for {n_frames} frames")
        for f, (zf, pf) in enumerate(zip(numbers, positions)):
            if pf.ndim != 2 or pf.shape[1] != 3 or pf.shape[0] != zf.shape[0]:
                raise ValueError(f"{name}: frame {f} has positions of shape {pf.shape} but {zf.shape[0]} atoms; "
                                 "positions must be [n_atoms, 3]")
        counts = np.array([len(zf) for zf in numbers], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)])
        forces = None
        if forces_kj_mol_nm is not None:
            forces_list = [np.asarray(f, dtype=np.float64) for f in forces_kj_mol_nm]
            if len(forces_list) != n_frames:
                raise ValueError(f"{name}: {len(forces_list)} force arrays for {n_frames} frames")
            for f, (ff, pf) in enumerate(zip(forces_list, positions)):
                if ff.shape != pf.shape:
                    raise ValueError(f"{name}: frame {f} has forces of shape {ff.shape} but positions {pf.shape}")
            forces = np.concatenate(forces_list)
        energies = None
        if energies_kj_mol is not None:
            energies = np.asarray(energies_kj_mol, dtype=np.float64).reshape(-1)
            if energies.shape[0] != n_frames:
                raise ValueError(f"{name}: {energies.shape[0]} energies for {n_frames} frames")
        return cls(np.concatenate(numbers), np.concatenate(positions), offsets, energies, forces, name=name)

    def validate(self):
        """Raise ValueError on inconsistent shapes, NaN/inf values or impossible atomic numbers."""
        name = self.name
        if self.offsets.ndim != 1 or self.offsets.shape[0] < 1 or self.offsets[0] != 0:
            raise ValueError(f"{name}: offsets must be a 1-D array starting at 0")
        if np.any(np.diff(self.offsets) <= 0):
            raise ValueError(f"{name}: every frame needs at least one atom (offsets must increase)")
        total = int(self.offsets[-1])
        if self.atomic_numbers.shape != (total,):
            raise ValueError(f"{name}: {self.atomic_numbers.shape[0]} atomic numbers but offsets describe {total} atoms")
        if self.positions_nm.shape != (total, 3):
            raise ValueError(f"{name}: positions have shape {self.positions_nm.shape}, expected ({total}, 3)")
        if total and (self.atomic_numbers.min() < 1 or self.atomic_numbers.max() > 118):
            raise ValueError(f"{name}: atomic numbers must be 1..118, got range "
                             f"{self.atomic_numbers.min()}..{self.atomic_numbers.max()}")
        if not np.all(np.isfinite(self.positions_nm)):
            bad = np.unique(np.searchsorted(self.offsets, np.nonzero(~np.isfinite(self.positions_nm))[0], "right") - 1)
            raise ValueError(f"{name}: non-finite positions in frames {bad[:10].tolist()}; drop those frames")
        if self.energies_kj_mol is not None:
            if self.energies_kj_mol.shape != (len(self),):
                raise ValueError(f"{name}: {self.energies_kj_mol.shape[0]} energies for {len(self)} frames")
            if not np.all(np.isfinite(self.energies_kj_mol)):
                bad = np.nonzero(~np.isfinite(self.energies_kj_mol))[0]
                raise ValueError(f"{name}: NaN/inf energy labels in frames {bad[:10].tolist()} "
                                 f"({len(bad)} in all); drop or relabel those frames")
        if self.forces_kj_mol_nm is not None:
            if self.forces_kj_mol_nm.shape != (total, 3):
                raise ValueError(f"{name}: forces have shape {self.forces_kj_mol_nm.shape}, expected ({total}, 3)")
            if not np.all(np.isfinite(self.forces_kj_mol_nm)):
                rows = np.nonzero(~np.all(np.isfinite(self.forces_kj_mol_nm), axis=1))[0]
                bad = np.unique(np.searchsorted(self.offsets, rows, "right") - 1)
                raise ValueError(f"{name}: NaN/inf force labels in frames {bad[:10].tolist()}; drop or relabel them")

    # ------------------------------------------------------------------ access
    def __len__(self):
        return int(self.offsets.shape[0] - 1)

    @property
    def n_atoms(self):
        """Atoms per frame, int64[F]."""
        return np.diff(self.offsets)

    @property
    def elements(self):
        """Sorted atomic numbers present."""
        return sorted(int(z) for z in np.unique(self.atomic_numbers))

    @property
    def has_forces(self):
        return self.forces_kj_mol_nm is not None

    def frame(self, index):
        """(atomic_numbers, positions_nm, energy_kj_mol or None, forces_kj_mol_nm or None) of one frame."""
        a, b = self.offsets[index], self.offsets[index + 1]
        energy = None if self.energies_kj_mol is None else float(self.energies_kj_mol[index])
        forces = None if self.forces_kj_mol_nm is None else self.forces_kj_mol_nm[a:b]
        return self.atomic_numbers[a:b], self.positions_nm[a:b], energy, forces

    def atom_index(self, frames):
        """Concatenated atom rows of the given frames (in that order)."""
        return offset_ranges(self.offsets, frames)

    def subset(self, frames, name=None):
        """A new Dataset with the given frames (copies)."""
        frames = np.asarray(frames, dtype=np.int64).reshape(-1)
        if len(frames) == 0:
            raise ValueError(f"{self.name}: empty subset requested; every split needs at least one frame")
        if frames.min() < 0 or frames.max() >= len(self):
            raise ValueError(f"{self.name}: frame index out of range 0..{len(self) - 1}")
        rows = self.atom_index(frames)
        counts = self.offsets[frames + 1] - self.offsets[frames]
        return Dataset(self.atomic_numbers[rows], self.positions_nm[rows], np.concatenate([[0], np.cumsum(counts)]),
                       None if self.energies_kj_mol is None else self.energies_kj_mol[frames],
                       None if self.forces_kj_mol_nm is None else self.forces_kj_mol_nm[rows],
                       name=name or self.name)

    def composition(self, elements):
        """Element counts per frame, int64[F, len(elements)]; ValueError on an element not in ``elements``."""
        elements = list(elements)
        self.check_elements(elements)
        lookup = np.full(119, -1, dtype=np.int64)
        lookup[elements] = np.arange(len(elements))
        frame_of_atom = np.repeat(np.arange(len(self)), self.n_atoms)
        counts = np.zeros((len(self), len(elements)), dtype=np.int64)
        np.add.at(counts, (frame_of_atom, lookup[self.atomic_numbers]), 1)
        return counts

    def check_elements(self, elements):
        unknown = sorted(set(self.elements) - {int(z) for z in elements})
        if unknown:
            raise ValueError(f"{self.name}: atomic numbers {unknown} are not among the model's elements "
                             f"{sorted(int(z) for z in elements)}; build the model with those elements or drop "
                             "the frames that contain them")

    def content_hash(self):
        """SHA-256 of the arrays (positions, numbers, labels): identifies the training data in exported metadata."""
        digest = hashlib.sha256()
        for array in (self.atomic_numbers, self.offsets, self.positions_nm, self.energies_kj_mol,
                      self.forces_kj_mol_nm):
            digest.update(b"none" if array is None else np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()

    def __repr__(self):
        return (f"Dataset({self.name!r}, frames={len(self)}, elements={self.elements}, "
                f"energies={self.energies_kj_mol is not None}, forces={self.has_forces})")

    # ------------------------------------------------------------------ storage
    def save(self, path):
        """Write the native npz (explicit unit names in the keys), atomically."""
        arrays = dict(format_version=np.int64(FORMAT_VERSION), atomic_numbers=self.atomic_numbers,
                      positions_nm=self.positions_nm, offsets=self.offsets, name=np.str_(self.name))
        if self.energies_kj_mol is not None:
            arrays["energies_kj_mol"] = self.energies_kj_mol
        if self.forces_kj_mol_nm is not None:
            arrays["forces_kj_mol_nm"] = self.forces_kj_mol_nm
        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        with atomic_write(path) as handle:
            handle.write(buffer.getvalue())

    @classmethod
    def load(cls, path):
        """Read a file written by :meth:`save`."""
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"dataset file {path} does not exist")
        with np.load(path, allow_pickle=False) as data:
            if "offsets" not in data or "positions_nm" not in data:
                raise ValueError(f"{path} is not an nnforce dataset (no offsets/positions_nm); for MD17-style "
                                 "files use nnforce.data.read_md17(path, energy_unit=..., length_unit=...)")
            return cls(data["atomic_numbers"], data["positions_nm"], data["offsets"],
                       data["energies_kj_mol"] if "energies_kj_mol" in data else None,
                       data["forces_kj_mol_nm"] if "forces_kj_mol_nm" in data else None,
                       name=str(data["name"]) if "name" in data else os.path.basename(path))


def offset_ranges(offsets, frames):
    """Concatenated ``arange(offsets[f], offsets[f + 1])`` over ``frames`` (in that order): the rows of the given
    frames in any array laid out by per-frame ``offsets`` (atoms, or a feature cache's pairs and triplets)."""
    frames = np.asarray(frames, dtype=np.int64)
    starts = offsets[frames]
    counts = offsets[frames + 1] - starts
    if len(frames) == 0:
        return np.zeros(0, dtype=np.int64)
    base = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts)
    return base + np.arange(int(counts.sum()))


def concatenate(datasets, name="dataset"):
    """Join datasets frame-wise (all or none must carry energies / forces).

    Parameters
    ----------
    datasets : sequence of Dataset
    name : str

    Returns
    -------
    Dataset

    Examples
    --------
    >>> both = concatenate([train, extra], name="more")  # doctest: +SKIP
    """
    datasets = list(datasets)
    if not datasets:
        raise ValueError("concatenate needs at least one dataset")
    has_e = {d.energies_kj_mol is not None for d in datasets}
    has_f = {d.has_forces for d in datasets}
    if len(has_e) > 1 or len(has_f) > 1:
        raise ValueError("cannot concatenate datasets where only some carry energies/forces")
    offsets = [np.zeros(1, dtype=np.int64)]
    total = 0
    for d in datasets:
        offsets.append(d.offsets[1:] + total)
        total += int(d.offsets[-1])
    return Dataset(np.concatenate([d.atomic_numbers for d in datasets]),
                   np.concatenate([d.positions_nm for d in datasets]), np.concatenate(offsets),
                   np.concatenate([d.energies_kj_mol for d in datasets]) if True in has_e else None,
                   np.concatenate([d.forces_kj_mol_nm for d in datasets]) if True in has_f else None, name=name)


def _is_int_array(value):
    try:
        array = np.asarray(value)
    except ValueError:
        return False
    return array.dtype != object and array.ndim == 1 and np.issubdtype(array.dtype, np.integer)
