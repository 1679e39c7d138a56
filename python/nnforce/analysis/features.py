"""Featurizers on mdtraj trajectories: one column per feature, one label per column, fixed column order.

A feature is declared against atom/residue *selections* and bound to a topology with ``bind(topology)``,
which resolves the atom indices once (and raises a clear ``ValueError`` for an empty selection).
``transform(traj)`` then maps an ``md.Trajectory`` (a whole file or one streamed chunk) to a float32
array (n_frames, n_columns). Geometry runs on the raw coordinate array with the periodic box built once per
chunk (see ``_geometry``), so boxed trajectories cost no per-frame unit-cell penalty.

Compose features with ``Featurizer([...])`` (or ``a + b``); the columns are the features' columns in the
order given, and ``labels`` names each of them (``"phi ALA2 sin"``, ``"dist CA1-CA5"``, ...).
"""
import itertools

import numpy as np

from . import _geometry

__all__ = ["Feature", "Featurizer", "Distances", "ResidueDistances", "Contacts", "Torsions", "Angles", "RMSD",
           "DSSP", "Coordinates", "Custom", "parse_features", "FEATURE_NAMES"]

TORSION_KINDS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4")


class _Frames:
    """One chunk of frames: coordinates (nm) and box vectors built once."""

    def __init__(self, traj):
        self.traj = traj
        self.xyz = traj.xyz
        self._lengths, self._angles = traj.unitcell_lengths, traj.unitcell_angles
        self._box = False

    @property
    def box(self):
        """Box vectors (F, 3, 3) or None; built on first use, validated."""
        if self._box is False:
            if self._lengths is None or self._angles is None:
                self._box = None
            else:
                box = _geometry.box_vectors(self._lengths, self._angles)
                bad = ~np.all(np.isfinite(box), axis=(1, 2))
                bad |= np.abs(box[:, 0, 0] * box[:, 1, 1] * box[:, 2, 2]) < 1e-9  # volume (lower-triangular box)
                if np.any(bad):
                    raise ValueError(f"invalid unit cell in {int(bad.sum())} frame(s) (first: frame {int(np.argmax(bad))}, "
                                     f"lengths {self._lengths[np.argmax(bad)]}, angles {self._angles[np.argmax(bad)]}); "
                                     "the file's box is unreadable or degenerate. Use periodic=False for features of "
                                     "whole molecules, or fix the box in the trajectory")
                self._box = box.astype(self.xyz.dtype)
        return self._box


def _select(topology, selection, what):
    if selection is None:
        return np.arange(topology.n_atoms)
    if isinstance(selection, str):
        try:
            indices = topology.select(selection)
        except Exception as error:  # mdtraj raises its own parse errors
            raise ValueError(f"{what}: cannot parse atom selection {selection!r}: {error}") from None
    else:
        indices = np.asarray(selection, dtype=np.intp).ravel()
        if indices.size and (indices.min() < 0 or indices.max() >= topology.n_atoms):
            raise ValueError(f"{what}: atom indices out of range for a topology with {topology.n_atoms} atoms")
    if len(indices) == 0:
        raise ValueError(f"{what}: the selection {selection!r} matches no atoms in this topology "
                         f"({topology.n_atoms} atoms, residues {_residue_summary(topology)}); "
                         "check the atom/residue names (mdtraj selection syntax, e.g. 'name CA', 'backbone')")
    return np.asarray(indices, dtype=np.intp)


def _residue_summary(topology, limit=6):
    names = [str(r) for r in itertools.islice(topology.residues, limit)]
    return ", ".join(names) + (", ..." if topology.n_residues > limit else "")


def _atom_label(topology, index):
    atom = topology.atom(index)
    return f"{atom.residue}-{atom.name}"


class Feature:
    """Base class. Subclasses set ``name`` and implement ``_bind(topology) -> labels`` and ``_compute(frames)``."""

    name = "feature"

    def __init__(self):
        self.topology = None
        self.labels = None

    def bind(self, topology):
        """Resolve selections against ``topology``; returns self. Rebinding to another topology is allowed."""
        self.topology = topology
        self.labels = list(self._bind(topology))
        if not self.labels:
            raise ValueError(f"{self.name}: no columns for this topology ({_residue_summary(topology)}); "
                             "the selection or the residue types it needs are missing")
        return self

    @property
    def n_features(self):
        self._require_bound()
        return len(self.labels)

    def _require_bound(self):
        if self.labels is None:
            raise ValueError(f"{self.name}: call bind(topology) before use (Featurizer.transform binds automatically)")

    def transform(self, traj):
        if self.topology is None or self.topology.n_atoms != traj.n_atoms:
            self.bind(traj.topology)
        return np.asarray(self._compute(_Frames(traj)), dtype=np.float32).reshape(traj.n_frames, -1)

    def __add__(self, other):
        return Featurizer([self]) + other

    def __repr__(self):
        return f"<{type(self).__name__} {self.name}>"


class Distances(Feature):
    """Atom-pair distances (nm). Either explicit ``pairs`` or all pairs between ``selection`` and
    ``selection2`` (all pairs within ``selection`` when ``selection2`` is None), skipping pairs of atoms fewer
    than ``exclude_neighbors`` residues apart only when ``exclude_neighbors`` > 0. Minimum image when boxed
    and ``periodic``."""

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
    pairs ``exclude_neighbors`` or fewer apart in sequence are skipped (mdtraj's convention, default 2)."""

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
    """Residue contacts: 1 where the residue-pair distance is below ``cutoff_nm``, else 0."""

    name = "contact"

    def __init__(self, residues=None, cutoff_nm=0.45, scheme="closest-heavy", exclude_neighbors=2, periodic=True):
        super().__init__(residues, scheme, exclude_neighbors, periodic)
        self.cutoff_nm = float(cutoff_nm)

    def _compute(self, frames):
        return (super()._compute(frames) < self.cutoff_nm).astype(np.float32)


class Torsions(Feature):
    """Backbone and side-chain torsions (``kinds`` from phi, psi, omega, chi1..chi4) of the residues with an
    atom in ``selection``; each angle becomes two columns, sin and cos (``sincos=True``), or one in radians."""

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
    """Bond angles (radians, or sin/cos) for explicit ``triples`` or for every bonded triple within ``selection``."""

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


class RMSD(Feature):
    """RMSD (nm) to a reference structure after optimal superposition of ``selection`` (mdtraj's QCP)."""

    name = "rmsd"

    def __init__(self, reference, selection="backbone", frame=0, label="reference"):
        super().__init__()
        self.reference, self.selection, self.frame, self.label = reference, selection, int(frame), label

    def _bind(self, topology):
        import mdtraj as md

        ref = self.reference
        if isinstance(ref, str):
            import os

            if not os.path.exists(ref):
                raise FileNotFoundError(f"rmsd: reference structure not found: {ref}")
            try:
                ref = md.load_frame(ref, self.frame)
            except Exception as error:
                raise ValueError(f"rmsd: cannot read a reference structure with coordinates from {ref} ({error}); "
                                 "give a PDB/GRO/HDF5 file or an md.Trajectory: rmsd:reference=ref.pdb") from None
        if ref.n_atoms != topology.n_atoms:
            raise ValueError(f"rmsd: the reference has {ref.n_atoms} atoms but the trajectory topology has "
                             f"{topology.n_atoms}; pass a reference structure of the same system")
        self._ref = ref[self.frame] if ref.n_frames > 1 else ref
        self._atoms = _select(topology, self.selection, "rmsd selection")
        return [f"rmsd {self.label} ({self.selection})"]

    def _compute(self, frames):
        import mdtraj as md

        return md.rmsd(frames.traj, self._ref, atom_indices=self._atoms, parallel=False)


class DSSP(Feature):
    """Secondary structure per residue as one-hot columns: simplified (H, E, C) or full DSSP (8 codes)."""

    name = "dssp"

    def __init__(self, simplified=True, selection=None):
        super().__init__()
        self.simplified, self.selection = bool(simplified), selection
        self.codes = ("H", "E", "C") if self.simplified else ("H", "B", "E", "G", "I", "T", "S", " ")

    def _bind(self, topology):
        protein = [r for r in topology.residues if r.is_protein]
        if self.selection is not None:
            keep = {topology.atom(i).residue.index for i in _select(topology, self.selection, "dssp selection")}
            protein = [r for r in protein if r.index in keep]
        if not protein:
            raise ValueError("dssp: no protein residues in this topology/selection")
        self._residues = np.array([r.index for r in protein])
        return [f"dssp {r} {c.strip() or 'loop'}" for r in protein for c in self.codes]

    def _compute(self, frames):
        import mdtraj as md

        traj = frames.traj
        # DSSP's hydrogen-bond energies use absolute coordinates; drop the box so mdtraj skips unit-cell work
        codes = md.compute_dssp(md.Trajectory(traj.xyz, traj.topology), simplified=self.simplified)
        index = {r.index: i for i, r in enumerate(r for r in traj.topology.residues)}
        codes = codes[:, [index[r] for r in self._residues]]
        onehot = np.stack([codes == c for c in self.codes], axis=-1)
        return onehot.reshape(len(codes), -1).astype(np.float32)


class Coordinates(Feature):
    """Cartesian coordinates (nm) of the selected atoms, optionally after superposing ``superpose_to``."""

    name = "xyz"

    def __init__(self, selection="name CA", superpose_to=None):
        super().__init__()
        self.selection, self.superpose_to = selection, superpose_to

    def _bind(self, topology):
        self._atoms = _select(topology, self.selection, "coordinates selection")
        return [f"{_atom_label(topology, i)} {c}" for i in self._atoms for c in "xyz"]

    def _compute(self, frames):
        traj = frames.traj
        if self.superpose_to is not None:
            import mdtraj as md

            traj = md.Trajectory(traj.xyz.copy(), traj.topology).superpose(self.superpose_to, atom_indices=self._atoms,
                                                                          parallel=False)
        return traj.xyz[:, self._atoms].reshape(traj.n_frames, -1)


class Custom(Feature):
    """Any function ``fn(traj) -> (n_frames, n_columns)`` with its column ``labels`` (must be picklable for Dask)."""

    name = "custom"

    def __init__(self, fn, labels):
        super().__init__()
        self.fn, self._given = fn, list(labels)

    def _bind(self, topology):
        return self._given

    def _compute(self, frames):
        out = np.asarray(self.fn(frames.traj))
        if out.ndim == 1:
            out = out[:, None]
        if out.shape[1] != len(self._given):
            raise ValueError(f"custom feature returned {out.shape[1]} columns but {len(self._given)} labels were given")
        return out


class Featurizer:
    """An ordered composition of features. ``transform(traj)`` concatenates their columns; ``labels`` names them."""

    def __init__(self, features=()):
        self.features = list(features)
        if not self.features:
            raise ValueError("featurizer: no features given; e.g. Featurizer([Torsions(('phi', 'psi'))])")
        self.topology = None

    def __add__(self, other):
        extra = other.features if isinstance(other, Featurizer) else [other]
        return Featurizer(self.features + list(extra))

    def bind(self, topology):
        for feature in self.features:
            feature.bind(topology)
        self.topology = topology
        return self

    @property
    def labels(self):
        if self.topology is None:
            raise ValueError("featurizer: call bind(topology) first")
        return [label for f in self.features for label in f.labels]

    @property
    def n_features(self):
        return len(self.labels)

    def transform(self, traj):
        """Features of every frame of ``traj``: float32 (n_frames, n_features)."""
        if self.topology is None:
            self.bind(traj.topology)
        elif self.topology.n_atoms != traj.n_atoms:
            raise ValueError(f"featurizer: bound to a topology with {self.topology.n_atoms} atoms but the trajectory has "
                             f"{traj.n_atoms}; use the topology the trajectory was written with")
        frames = _Frames(traj)
        blocks = [np.asarray(f._compute(frames), dtype=np.float32).reshape(traj.n_frames, -1) for f in self.features]
        return np.concatenate(blocks, axis=1) if len(blocks) > 1 else blocks[0]

    def describe(self):
        return list(self.labels)

    def __repr__(self):
        return f"<Featurizer {[f.name for f in self.features]}>"


FEATURE_NAMES = {
    "phi_psi": lambda **kw: Torsions(("phi", "psi"), **kw),
    "backbone_torsions": lambda **kw: Torsions(("phi", "psi", "omega"), **kw),
    "chi": lambda **kw: Torsions(("chi1", "chi2", "chi3", "chi4"), **kw),
    "torsions": Torsions,
    "distances": Distances,
    "residue_distances": ResidueDistances,
    "contacts": Contacts,
    "angles": Angles,
    "rmsd": RMSD,
    "dssp": DSSP,
    "xyz": Coordinates,
}


def _parse_value(key, value):
    if key in ("kinds",):
        return tuple(v for v in value.replace("+", ",").split(",") if v)
    if key in ("residues",) and all(part.strip().isdigit() for part in value.replace("+", ",").split(",")):
        return [int(v) for v in value.replace("+", ",").split(",")]
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    for cast in (int, float):
        try:
            return cast(value)
        except ValueError:
            pass
    return value


def parse_features(specs, reference=None):
    """Build a Featurizer from strings like ``"phi_psi"``, ``"torsions:kinds=phi+psi+chi1"``,
    ``"distances:selection=name CA"``, ``"contacts:cutoff_nm=0.5"``, ``"rmsd:selection=backbone"``, ``"dssp"``.
    Options are ``key=value`` separated by ``;`` (list values joined with ``+``). ``reference`` (a structure
    file or md.Trajectory) is used by ``rmsd`` when the spec gives no ``reference=``."""
    if isinstance(specs, str):
        specs = [specs]
    features = []
    for spec in specs:
        name, _, rest = spec.partition(":")
        name = name.strip()
        if name not in FEATURE_NAMES:
            raise ValueError(f"unknown feature {name!r}; choose from {', '.join(FEATURE_NAMES)}")
        options = {}
        for item in filter(None, (part.strip() for part in rest.split(";"))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"feature option {item!r} in {spec!r} is not key=value")
            options[key.strip()] = _parse_value(key.strip(), value.strip())
        if name == "rmsd" and "reference" not in options:
            if reference is None:
                raise ValueError("rmsd feature needs a reference structure: rmsd:reference=ref.pdb (or --top is used)")
            options["reference"] = reference
        try:
            features.append(FEATURE_NAMES[name](**options))
        except TypeError as error:
            raise ValueError(f"feature {spec!r}: {error}") from None
    return Featurizer(features)
