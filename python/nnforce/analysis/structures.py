"""Write structures of clusters or metastable states as PDB files: a representative (the frame nearest the
cluster center) and a seeded random sample of member frames (one multi-model PDB per state)."""
import os

import numpy as np

from .._io import atomic_save
from .stream import load_topology

__all__ = ["representative_frames", "state_representatives", "sample_frames", "write_state_structures"]


def representative_frames(data, dtrajs, centers):
    """For each cluster c, the (trajectory, frame) of the member nearest ``centers[c]`` in the data's space;
    clusters without members are absent from the returned dict.

    Parameters
    ----------
    data : list of arrays
        The space the centers live in (e.g. TICA coordinates), one array per trajectory.
    dtrajs : list of arrays of int
    centers : array, shape (k, d)

    Returns
    -------
    dict
        cluster -> (trajectory index, frame index).

    Examples
    --------
    >>> reps = representative_frames(projected, km.labels, km.centers)  # doctest: +SKIP
    """
    best = {}
    for t, (x, d) in enumerate(zip(data, dtrajs)):
        x = np.asarray(x)
        for c in np.unique(d):
            if c < 0:
                continue
            members = np.flatnonzero(d == c)
            dist = np.linalg.norm(x[members] - centers[c], axis=1)
            i = int(np.argmin(dist))
            if c not in best or dist[i] < best[c][0]:
                best[c] = (float(dist[i]), t, int(members[i]))
    return {int(c): (t, f) for c, (_, t, f) in best.items()}


def state_representatives(memberships, active_set, data, dtrajs, centers):
    """For each metastable set (PCCA+), the (trajectory, frame) nearest the center of the active cluster with
    the highest membership in that set.

    Parameters
    ----------
    memberships : array, shape (active states, sets)
        PCCA+ memberships (``MSM.pcca(n)["memberships"]``).
    active_set : array of int
        The cluster id of each active state.
    data : list of arrays
        The space the centers live in, one array per trajectory.
    dtrajs : list of arrays of int
    centers : array, shape (k, d)

    Returns
    -------
    dict
        set -> (trajectory index, frame index); a set whose best cluster has no frame is absent.

    Examples
    --------
    >>> sets = msm.pcca(3)  # doctest: +SKIP
    >>> reps = state_representatives(sets["memberships"], msm.active_set, projected, dtrajs, km.centers)  # doctest: +SKIP
    """
    memberships = np.asarray(memberships)
    frames = representative_frames(data, dtrajs, centers)
    out = {}
    for s in range(memberships.shape[1]):
        for state in np.argsort(-memberships[:, s]):  # the most typical cluster of the set that has frames
            cluster = int(active_set[state])
            if cluster in frames:
                out[s] = frames[cluster]
                break
    return out


def sample_frames(dtrajs, n_samples=5, seed=0):
    """Seeded random (trajectory, frame) samples per state (without replacement when enough frames).

    Parameters
    ----------
    dtrajs : list of arrays of int
    n_samples, seed : int

    Returns
    -------
    dict
        state -> list of (trajectory index, frame index).

    Examples
    --------
    >>> samples = sample_frames(km.labels, n_samples=3, seed=0)  # doctest: +SKIP
    """
    rng = np.random.default_rng(seed)
    where = {}
    for t, d in enumerate(dtrajs):
        for c in np.unique(d):
            if c >= 0:
                frames = np.flatnonzero(d == c)
                where.setdefault(int(c), []).append(np.stack([np.full(len(frames), t), frames], axis=1))
    out = {}
    for c in sorted(where):
        pairs = np.concatenate(where[c])
        pick = rng.choice(len(pairs), size=min(n_samples, len(pairs)), replace=False)
        out[c] = [tuple(map(int, pairs[i])) for i in sorted(pick)]
    return out


def _load(paths, top, pairs, stride):
    import mdtraj as md

    from .trajfile import quiet_native_output

    with quiet_native_output():  # the DCD reader's chatter, once per frame loaded
        frames = [md.load_frame(os.fspath(paths[t]), f * stride, top=top) for t, f in pairs]
    return md.join(frames) if len(frames) > 1 else frames[0]


def write_state_structures(paths, top, dtrajs, out_dir, stride=1, n_samples=5, seed=0, representatives=None,
                           prefix="cluster", superpose="backbone"):
    """Write ``{prefix}{c:03d}_representative.pdb`` (if ``representatives`` is given, a dict state ->
    (trajectory, frame)) and ``{prefix}{c:03d}_samples.pdb`` (``n_samples`` random members, superposed on
    ``superpose`` atoms of the first) for each state. Frame indices refer to the strided dtrajs.
    Returns {state: {"representative": path, "samples": path}}.

    Parameters
    ----------
    paths : list of str
    top : str or mdtraj.Topology
    dtrajs : list of arrays of int
    out_dir : str
    stride, n_samples, seed : int
    representatives : dict, optional
    prefix : str
    superpose : str
        mdtraj selection used to superpose the samples.

    Examples
    --------
    >>> written = write_state_structures(files, "mol.pdb", km.labels, "structures")  # doctest: +SKIP
    """
    topology = load_topology(top)
    written = {}
    samples = sample_frames(dtrajs, n_samples, seed)
    for c, pairs in samples.items():
        entry = {}
        if representatives and c in representatives:
            rep = _load(paths, topology, [representatives[c]], stride)
            path = os.path.join(out_dir, f"{prefix}{c:03d}_representative.pdb")
            atomic_save(path, rep.save_pdb)
            entry["representative"] = path
        traj = _load(paths, topology, pairs, stride)
        atoms = topology.select(superpose) if superpose else []
        if len(atoms) and traj.n_frames > 1:
            traj.superpose(traj, 0, atom_indices=atoms, parallel=False)
        path = os.path.join(out_dir, f"{prefix}{c:03d}_samples.pdb")
        atomic_save(path, traj.save_pdb)
        entry["samples"] = path
        written[c] = entry
    return written
