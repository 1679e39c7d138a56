"""Structure-level features: RMSD to a reference, DSSP secondary structure, raw coordinates and custom
functions. Re-exported by :mod:`nnforce.analysis.features`."""
import numpy as np

from ._base import Feature, _atom_label, _select


class RMSD(Feature):
    """RMSD (nm) to a reference structure after optimal superposition of ``selection`` (mdtraj's QCP).

    Parameters
    ----------
    reference : str or mdtraj.Trajectory
    selection : str
    frame : int
        Frame of the reference.
    label : str

    Examples
    --------
    >>> RMSD("native.pdb").transform(traj)  # doctest: +SKIP
    """

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
    """Secondary structure per residue as one-hot columns: simplified (H, E, C) or full DSSP (8 codes).

    Parameters
    ----------
    simplified : bool
    selection : str, optional

    Examples
    --------
    >>> DSSP().transform(traj)  # doctest: +SKIP
    """

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
    """Cartesian coordinates (nm) of the selected atoms, optionally after superposing ``superpose_to``.

    Parameters
    ----------
    selection : str
    superpose_to : mdtraj.Trajectory, optional

    Examples
    --------
    >>> Coordinates("name CA").transform(traj)  # doctest: +SKIP
    """

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
    """Any function ``fn(traj) -> (n_frames, n_columns)`` with its column ``labels`` (must be picklable for Dask).

    Parameters
    ----------
    fn : callable
    labels : list of str

    Examples
    --------
    >>> import mdtraj
    >>> radius = Custom(lambda t: mdtraj.compute_rg(t)[:, None], ["rg"])
    """

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
