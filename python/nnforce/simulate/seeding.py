"""Starting structures spread over the conformations a trajectory (or training set) visited.

:func:`pick_starts` featurizes the frames (backbone phi/psi as sin/cos for peptides and proteins, else the
pairwise distances of the heavy atoms), clusters them with k-means (seeded) and picks from every cluster the
frame closest to its centre, then more members of each cluster (seeded) when more starts than clusters are asked
for, so that every basin the data saw gets replicas.
"""
from dataclasses import dataclass
from typing import Any, List

import numpy as np

__all__ = ["Starts", "pick_starts", "default_features"]


@dataclass
class Starts:
    """Starting structures picked by :func:`pick_starts`.

    Attributes
    ----------
    frames : list of int
        Frame indices into the trajectory, one per start.
    clusters : list of int
        The cluster of each start.
    positions : numpy.ndarray
        [S, n, 3] nm.
    cluster_sizes : list of int
        Frames per cluster.
    """

    frames: List[int]
    clusters: List[int]
    positions: Any
    cluster_sizes: List[int]


def default_features(trajectory):
    """Features for clustering conformations: sin/cos of backbone phi/psi when the molecule has any, else the
    distances between heavy atoms (or all atoms when there are fewer than two heavy atoms)."""
    import mdtraj as md

    _, phi = md.compute_phi(trajectory)
    _, psi = md.compute_psi(trajectory)
    if phi.shape[1] + psi.shape[1] > 0:
        angles = np.concatenate([phi, psi], axis=1)
        return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
    heavy = [a.index for a in trajectory.topology.atoms if a.element is None or a.element.symbol != "H"]
    if len(heavy) < 2:
        heavy = list(range(trajectory.n_atoms))
    if len(heavy) < 2:
        raise ValueError("pick_starts: one atom has no conformations to cluster")
    pairs = np.array([(i, j) for k, i in enumerate(heavy) for j in heavy[k + 1:]])
    return md.compute_distances(trajectory, pairs, periodic=False)


def pick_starts(trajectory, count, clusters=None, seed=0, features=None) -> Starts:
    """Pick ``count`` starting structures from ``trajectory``, spread over its clusters.

    Parameters
    ----------
    trajectory : mdtraj.Trajectory
        Any trajectory or set of training structures of the molecule.
    count : int
        How many starts (>= 1); with more starts than clusters each cluster gets ``count // clusters`` or one more.
    clusters : int, optional
        Number of k-means clusters (default ``min(count, frames)``).
    seed : int
        Seeds k-means and the choice of extra members.
    features : numpy.ndarray, optional
        [frames, d] features to cluster instead of :func:`default_features`.

    Returns
    -------
    Starts
        The first start of every cluster is the frame nearest its centre.

    Examples
    --------
    >>> starts = pick_starts(md.load("train.dcd", top="mol.pdb"), 16, clusters=4, seed=1)  # doctest: +SKIP
    """
    from sklearn.cluster import KMeans

    count = int(count)
    if count < 1:
        raise ValueError(f"pick_starts: count must be >= 1, got {count}")
    frames = trajectory.n_frames
    if frames < 1:
        raise ValueError("pick_starts: the trajectory has no frames")
    clusters = min(count, frames) if clusters is None else int(clusters)
    if not 1 <= clusters <= frames:
        raise ValueError(f"pick_starts: clusters must be between 1 and the number of frames ({frames}), got {clusters}")
    x = default_features(trajectory) if features is None else np.asarray(features, dtype=np.float64)
    if len(x) != frames:
        raise ValueError(f"pick_starts: {len(x)} feature rows for {frames} frames")
    model = KMeans(clusters, n_init=4, random_state=int(seed)).fit(x)
    labels = model.labels_
    rng = np.random.default_rng(int(seed))
    ordered = []  # per cluster: the frame nearest the centre first, then the others in a seeded order
    for c in range(clusters):
        members = np.flatnonzero(labels == c)
        distance = ((x[members] - model.cluster_centers_[c]) ** 2).sum(axis=1)
        nearest = members[np.argmin(distance)]
        rest = rng.permutation(members[members != nearest])
        ordered.append([int(nearest)] + [int(m) for m in rest])
    chosen, owner = [], []
    # round-robin over clusters: every cluster gets a start before any gets a second
    for r in range(count):
        c = r % clusters
        pool = ordered[c]
        chosen.append(pool[(r // clusters) % len(pool)])
        owner.append(c)
    return Starts(frames=chosen, clusters=owner, positions=trajectory.xyz[chosen].astype(np.float64),
                  cluster_sizes=[int((labels == c).sum()) for c in range(clusters)])
