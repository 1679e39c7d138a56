"""The base of every feature (:class:`Feature`: selections bound to a topology, then ``transform``), their
composition (:class:`Featurizer`, here because ``Feature + Feature`` makes one) and the helpers the feature kinds
share; the kinds are in ``geometric`` and ``structural``, all importable from :mod:`nnforce.analysis.features`."""
import itertools

import numpy as np

from .. import _geometry


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
    """Base class. Subclasses set ``name`` and implement ``_bind(topology) -> labels`` and ``_compute(frames)``.

    Attributes
    ----------
    topology : mdtraj.Topology or None
        The topology it is bound to.
    labels : list of str or None
        One per column, after :meth:`bind`.

    Examples
    --------
    >>> from nnforce.analysis.features import Torsions
    >>> Torsions().labels is None  # not bound yet
    True
    """

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


class Featurizer:
    """An ordered composition of features. ``transform(traj)`` concatenates their columns; ``labels`` names them.

    Parameters
    ----------
    features : sequence of Feature

    Examples
    --------
    >>> featurizer = Featurizer([Torsions(), Distances("name CA")])
    >>> featurizer.features[0].kinds
    ('phi', 'psi')
    """

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
