"""Geometric features: distances (atom and residue pairs), contacts, torsions and angles."""
import itertools

import numpy as np

from .. import _geometry
from ._base import Feature, _atom_label, _Frames, _residue_summary, _select

TORSION_KINDS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4")


class Distances(Feature):
    """Atom-pair distances (nm). Either explicit ``pairs`` or all pairs between ``selection`` and
    ``selection2`` (all pairs within ``selection`` when ``selection2`` is None), skipping pairs of atoms fewer
    than ``exclude_neighbors`` residues apart only when ``exclude_neighbors`` > 0. Minimum image when boxed
    and ``periodic``.

    Parameters
    ----------
    selection, selection2 : str, optional
        mdtraj selections.
    pairs : array of int, shape (P, 2), optional
    periodic : bool
    exclude_neighbors : int

    Examples
    --------
    >>> Distances("name CA").transform(traj).shape  # doctest: +SKIP
    """

    name = "distances"

    def __init__(self, selection="name CA", selection2=None, pairs=None, periodic=True, exclude_neighbors=0):
        super().__init__()
        self.selection, self.selection2, self.pairs, self.periodic = selection, selection2, pairs, periodic
        self.exclude_neighbors = int(exclude_neighbors)

    def _bind(self, topology):
        if self.pairs is not None:
            pairs = np.asarray(self.pairs, dtype=np.intp).reshape(-1, 2)
            if pairs.size and (pairs.min() < 0 or pairs.max() >= topology.n_atoms):
                raise ValueError(f"distances: pair indices out of range for a topology with {topology.n_atoms} atoms")
        else:
            first = _select(topology, self.selection, "distances selection")
            if self.selection2 is None:
                pairs = np.array(list(itertools.combinations(first, 2)), dtype=np.intp).reshape(-1, 2)
            else:
                second = _select(topology, self.selection2, "distances selection2")
                pairs = np.array([(i, j) for i in first for j in second if i != j], dtype=np.intp).reshape(-1, 2)
            if self.exclude_neighbors > 0 and len(pairs):
                res = np.array([a.residue.index for a in topology.atoms])
                pairs = pairs[np.abs(res[pairs[:, 0]] - res[pairs[:, 1]]) >= self.exclude_neighbors]
        self.atom_pairs = pairs
        return [f"dist {_atom_label(topology, i)}:{_atom_label(topology, j)}" for i, j in pairs]

    def _compute(self, frames):
        return _geometry.distances(frames.xyz, self.atom_pairs, frames.box if self.periodic else None)


class ResidueDistances(Feature):
    """Residue-pair distances (nm): ``scheme`` 'ca' (C-alpha), 'closest' (any atoms) or 'closest-heavy'.
    ``residues`` is a list of residue indices or an atom selection (residues having a selected atom);
    pairs ``exclude_neighbors`` or fewer apart in sequence are skipped (mdtraj's convention, default 2).

    Parameters
    ----------
    residues : list of int or str, optional
    scheme : {"ca", "closest", "closest-heavy"}
    exclude_neighbors : int
    periodic : bool
    pairs : array of int, optional
        Explicit residue pairs.

    Examples
    --------
    >>> ResidueDistances(scheme="ca").transform(traj)  # doctest: +SKIP
    """

    name = "residue_distances"

    def __init__(self, residues=None, scheme="closest-heavy", exclude_neighbors=2, periodic=True, pairs=None):
        super().__init__()
        if scheme not in ("ca", "closest", "closest-heavy"):
            raise ValueError(f"residue distances: unknown scheme {scheme!r}; use 'ca', 'closest' or 'closest-heavy'")
        self.residues, self.scheme, self.periodic = residues, scheme, periodic
        self.exclude_neighbors, self.pairs = int(exclude_neighbors), pairs

    def _residue_atoms(self, topology, residue):
        if self.scheme == "ca":
            return [a.index for a in residue.atoms if a.name == "CA"]
        heavy = self.scheme == "closest-heavy"
        return [a.index for a in residue.atoms if not heavy or (a.element is not None and a.element.symbol != "H")]

    def _bind(self, topology):
        if self.residues is None:
            residues = [r.index for r in topology.residues if r.is_protein] or [r.index for r in topology.residues]
        elif isinstance(self.residues, str):
            residues = sorted({topology.atom(i).residue.index for i in _select(topology, self.residues, "residues")})
        else:
            residues = [int(r) for r in self.residues]
        atoms = {r: self._residue_atoms(topology, topology.residue(r)) for r in residues}
        residues = [r for r in residues if atoms[r]]
        if self.pairs is not None:
            res_pairs = [tuple(p) for p in self.pairs]
        else:
            res_pairs = [(a, b) for a, b in itertools.combinations(residues, 2) if b - a > self.exclude_neighbors]
        if not res_pairs:
            raise ValueError("residue distances: no residue pairs (fewer than two residues in the selection, or all "
                             f"within exclude_neighbors={self.exclude_neighbors} of each other)")
        atom_pairs, starts = [], []
        for a, b in res_pairs:
            starts.append(len(atom_pairs))
            atom_pairs.extend((i, j) for i in atoms[a] for j in atoms[b])
        self.residue_pairs = np.asarray(res_pairs, dtype=np.intp)
        self.atom_pairs = np.asarray(atom_pairs, dtype=np.intp)
        self._starts = np.asarray(starts, dtype=np.intp)
        return [f"{self.name} {topology.residue(a)}:{topology.residue(b)}" for a, b in res_pairs]

    def _compute(self, frames):
        d = _geometry.distances(frames.xyz, self.atom_pairs, frames.box if self.periodic else None)
        return np.minimum.reduceat(d, self._starts, axis=1)


class Contacts(ResidueDistances):
    """Residue contacts: 1 where the residue-pair distance is below ``cutoff_nm``, else 0.

    Parameters
    ----------
    residues, scheme, exclude_neighbors, periodic
        As for :class:`ResidueDistances`.
    cutoff_nm : float

    Examples
    --------
    >>> Contacts(cutoff_nm=0.5).transform(traj)  # doctest: +SKIP
    """

    name = "contact"

    def __init__(self, residues=None, cutoff_nm=0.45, scheme="closest-heavy", exclude_neighbors=2, periodic=True):
        super().__init__(residues, scheme, exclude_neighbors, periodic)
        self.cutoff_nm = float(cutoff_nm)

    def _compute(self, frames):
        return (super()._compute(frames) < self.cutoff_nm).astype(np.float32)


class Torsions(Feature):
    """Backbone and side-chain torsions (``kinds`` from phi, psi, omega, chi1..chi4) of the residues with an
    atom in ``selection``; each angle becomes two columns, sin and cos (``sincos=True``), or one in radians.

    Parameters
    ----------
    kinds : sequence of str
    selection : str, optional
    sincos : bool
    periodic : bool

    Examples
    --------
    >>> Torsions(("phi", "psi"), sincos=False).transform(traj)  # doctest: +SKIP
    """

    name = "torsions"

    def __init__(self, kinds=("phi", "psi"), selection=None, sincos=True, periodic=True):
        super().__init__()
        kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
        unknown = [k for k in kinds if k not in TORSION_KINDS]
        if unknown or not kinds:
            raise ValueError(f"torsions: unknown kind(s) {unknown or kinds}; choose from {', '.join(TORSION_KINDS)}")
        self.kinds, self.selection, self.sincos, self.periodic = kinds, selection, bool(sincos), periodic

    def _bind(self, topology):
        import mdtraj as md

        dummy = md.Trajectory(np.zeros((1, topology.n_atoms, 3), dtype=np.float32), topology)
        wanted = None if self.selection is None else {
            topology.atom(int(i)).residue.index for i in _select(topology, self.selection, "torsions selection")}
        quads, labels = [], []
        for kind in self.kinds:
            with np.errstate(all="ignore"):  # only the atom indices are used; the zero coordinates give NaN angles
                indices, _ = getattr(md, f"compute_{kind}")(dummy, periodic=False)
            for quad in indices:
                owner = topology.atom(int(quad[1])).residue  # phi: N_i, psi: CA_i, omega: C_i, chi: own
                if wanted is not None and owner.index not in wanted:
                    continue
                quads.append(quad)
                labels.append(f"{kind} {owner}")
        if not quads:
            raise ValueError(f"torsions: no {'/'.join(self.kinds)} torsions in the selection {self.selection!r} of "
                             f"this topology ({_residue_summary(topology)})")
        self.quads = np.asarray(quads, dtype=np.intp)
        self.angle_labels = labels
        if not self.sincos:
            return labels
        return [f"{label} {f}" for label in labels for f in ("sin", "cos")]

    def angles(self, traj):
        """The raw torsion angles (radians), one column per torsion, in ``angle_labels`` order."""
        if self.topology is None or self.topology.n_atoms != traj.n_atoms:
            self.bind(traj.topology)
        frames = _Frames(traj)
        return _geometry.dihedrals(frames.xyz, self.quads, frames.box if self.periodic else None)

    def _compute(self, frames):
        angle = _geometry.dihedrals(frames.xyz, self.quads, frames.box if self.periodic else None)
        if not self.sincos:
            return angle
        out = np.empty(angle.shape + (2,), dtype=np.float32)
        out[..., 0] = np.sin(angle)
        out[..., 1] = np.cos(angle)
        return out.reshape(len(angle), -1)


class Angles(Feature):
    """Bond angles (radians, or sin/cos) for explicit ``triples`` or for every bonded triple within ``selection``.

    Parameters
    ----------
    triples : array of int, shape (T, 3), optional
    selection : str
    sincos, periodic : bool

    Examples
    --------
    >>> Angles(selection="name N CA C").transform(traj)  # doctest: +SKIP
    """

    name = "angles"

    def __init__(self, triples=None, selection="backbone", sincos=False, periodic=True):
        super().__init__()
        self.triples, self.selection, self.sincos, self.periodic = triples, selection, bool(sincos), periodic

    def _bind(self, topology):
        if self.triples is not None:
            triples = np.asarray(self.triples, dtype=np.intp).reshape(-1, 3)
            if triples.size and (triples.min() < 0 or triples.max() >= topology.n_atoms):
                raise ValueError("angles: triple indices out of range")
        else:
            chosen = set(_select(topology, self.selection, "angles selection").tolist())
            neighbors = {i: set() for i in chosen}
            for bond in topology.bonds:
                a, b = bond[0].index, bond[1].index
                if a in chosen and b in chosen:
                    neighbors[a].add(b)
                    neighbors[b].add(a)
            triples = [(i, j, k) for j in sorted(neighbors) for i, k in itertools.combinations(sorted(neighbors[j]), 2)]
            triples = np.asarray(triples, dtype=np.intp).reshape(-1, 3)
            if not len(triples):
                raise ValueError(f"angles: no bonded atom triples in the selection {self.selection!r} (does the topology "
                                 "have bonds? PDB files without CONECT records get bonds only for standard residues)")
        self.atom_triples = triples
        base = [f"angle {_atom_label(topology, i)}:{_atom_label(topology, j)}:{_atom_label(topology, k)}"
                for i, j, k in triples]
        return [f"{b} {f}" for b in base for f in ("sin", "cos")] if self.sincos else base

    def _compute(self, frames):
        angle = _geometry.angles(frames.xyz, self.atom_triples, frames.box if self.periodic else None)
        if not self.sincos:
            return angle
        return np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(len(angle), -1)

