"""Clustering of feature (or reduced) coordinates into discrete states, seeded and reproducible.

Every clusterer has ``fit(data)`` (one (frames, dims) array or a list, one per trajectory), ``labels``
(the discrete trajectories, a list of int arrays), ``centers``, and ``predict(data)`` to assign new frames to
the existing clusters. Built on scikit-learn (k-means, mini-batch k-means, HDBSCAN) and deeptime (regular
space); k-centers and RMSD k-medoids are small numpy/mdtraj implementations here.

``KMeans`` seeds k-means++ on a random subsample (at most ``init_size`` frames) and then runs
scikit-learn's Lloyd iterations on all frames: the same final algorithm as ``sklearn.cluster.KMeans`` but
without its full-data k-means++ pass, which dominates the cost for large k.
"""
import numpy as np

from .reduce import as_trajectory_list
from .specs import parse_spec

__all__ = ["KMeans", "MiniBatchKMeans", "RegularSpace", "KCenters", "HDBSCAN", "KMedoidsRMSD", "make_clusterer",
           "assign_nearest", "CLUSTER_METHODS"]


def _threads_for(work):
    """Thread limit for scikit-learn/BLAS calls: one thread for small problems, where OpenMP start-up and
    spin-waiting cost far more than the work (seconds instead of milliseconds on a busy machine)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1) if work < 20_000_000 else threadpool_limits(None)


def _split(labels, lengths):
    return [np.asarray(part, dtype=np.int32) for part in np.split(np.asarray(labels), np.cumsum(lengths)[:-1])]


def assign_nearest(data, centers, batch=65536):
    """Index of the nearest center (Euclidean) for each row of ``data``, computed in batches.

    Parameters
    ----------
    data : array, shape (n, d)
    centers : array, shape (k, d)
    batch : int
        Rows per distance block (memory bound).

    Returns
    -------
    numpy.ndarray of int, shape (n,)

    Examples
    --------
    >>> import numpy as np
    >>> assign_nearest(np.array([[0.0], [0.9], [2.1]]), np.array([[0.0], [2.0]])).tolist()
    [0, 0, 1]
    """
    from sklearn.metrics import pairwise_distances_argmin

    data = np.asarray(data)
    centers = np.asarray(centers, dtype=data.dtype if np.issubdtype(data.dtype, np.floating) else np.float64)
    if data.shape[1] != centers.shape[1]:
        raise ValueError(f"data have {data.shape[1]} dimensions but the cluster centers have {centers.shape[1]}")
    out = np.empty(len(data), dtype=np.int32)
    with _threads_for(len(data) * len(centers) * data.shape[1]):
        for a in range(0, len(data), batch):
            out[a:a + batch] = pairwise_distances_argmin(data[a:a + batch], centers)
    return out


class _Clusterer:
    name = "clusterer"
    centers = None

    def fit(self, data):
        trajs = as_trajectory_list(data)
        lengths = [len(x) for x in trajs]
        stacked = np.concatenate(trajs)
        if len(stacked) == 0:
            raise ValueError("no frames to cluster")
        self._fit(stacked)
        self.labels = _split(self._labels_flat, lengths)
        return self

    def predict(self, data):
        """Assign frames to the fitted clusters; same structure as the input (array or list of arrays)."""
        if self.centers is None:
            raise ValueError(f"{self.name}: not fitted, call fit(data) first")
        single = isinstance(data, np.ndarray)
        out = [self._assign(x) for x in as_trajectory_list(data)]
        return out[0] if single else out

    def _assign(self, x):
        return assign_nearest(x, self.centers)

    @property
    def n_clusters(self):
        return len(self.centers)


class KMeans(_Clusterer):
    """k-means (Lloyd, scikit-learn) with k-means++ seeding on a subsample; ``seed`` makes it reproducible.

    Parameters
    ----------
    k : int
    seed : int
    max_iter : int
    tol : float
    init_size : int, optional
        Frames the k-means++ seeding sees (default: a subsample).

    Examples
    --------
    >>> km = KMeans(k=50, seed=0).fit(projected)  # doctest: +SKIP
    >>> km.labels[0][:5], km.centers.shape  # doctest: +SKIP
    """

    name = "kmeans"

    def __init__(self, k=100, seed=0, max_iter=300, tol=1e-4, init_size=None):
        self.k, self.seed, self.max_iter, self.tol = int(k), int(seed), int(max_iter), tol
        self.init_size = init_size

    def _fit(self, x):
        from sklearn.cluster import KMeans as _SK, kmeans_plusplus

        if self.k < 1 or self.k > len(x):
            raise ValueError(f"kmeans: k={self.k} must be between 1 and the number of frames ({len(x)})")
        x = np.ascontiguousarray(x, dtype=np.float32 if x.dtype == np.float32 else np.float64)
        rng = np.random.default_rng(self.seed)
        size = self.init_size or max(20 * self.k, 10000)
        sample = x if len(x) <= size else x[np.sort(rng.choice(len(x), size, replace=False))]
        with _threads_for(len(x) * self.k * x.shape[1]):
            init, _ = kmeans_plusplus(sample, self.k, random_state=self.seed)
            model = _SK(self.k, init=init, n_init=1, max_iter=self.max_iter, tol=self.tol, random_state=self.seed)
            model.fit(x)
        self.model = model
        self.centers = model.cluster_centers_
        self.inertia = float(model.inertia_)
        self._labels_flat = model.labels_


class MiniBatchKMeans(_Clusterer):
    """scikit-learn's mini-batch k-means (faster, slightly less tight clusters for very large data).

    Parameters
    ----------
    k, seed, batch_size, max_iter : int

    Examples
    --------
    >>> labels = MiniBatchKMeans(k=200).fit(projected).labels  # doctest: +SKIP
    """

    name = "minibatch"

    def __init__(self, k=100, seed=0, batch_size=4096, max_iter=100):
        self.k, self.seed, self.batch_size, self.max_iter = int(k), int(seed), int(batch_size), int(max_iter)

    def _fit(self, x):
        from sklearn.cluster import MiniBatchKMeans as _MB

        if self.k < 1 or self.k > len(x):
            raise ValueError(f"minibatch: k={self.k} must be between 1 and the number of frames ({len(x)})")
        with _threads_for(len(x) * self.k * x.shape[1]):
            model = _MB(self.k, batch_size=self.batch_size, max_iter=self.max_iter, random_state=self.seed, n_init=1)
            model.fit(x)
            self._labels_flat = model.predict(x)
        self.model, self.centers = model, model.cluster_centers_


class RegularSpace(_Clusterer):
    """Regular-space clustering (deeptime): a frame farther than ``dmin`` from all centers becomes a center.

    Parameters
    ----------
    dmin : float
        Minimum distance between centers (in the data's units).
    max_centers : int

    Examples
    --------
    >>> labels = RegularSpace(dmin=0.5).fit(projected).labels  # doctest: +SKIP
    """

    name = "regspace"

    def __init__(self, dmin=0.5, max_centers=1000):
        if dmin <= 0:
            raise ValueError(f"regspace: dmin must be positive, got {dmin}")
        self.dmin, self.max_centers = float(dmin), int(max_centers)

    def _fit(self, x):
        from deeptime.clustering import RegularSpace as _RS

        model = _RS(dmin=self.dmin, max_centers=self.max_centers).fit(np.ascontiguousarray(x, dtype=np.float64))
        self.centers = model.fetch_model().cluster_centers
        self._labels_flat = self._assign(x)


class KCenters(_Clusterer):
    """Greedy k-centers (farthest-point sampling): bounds the largest frame-to-center distance.

    Parameters
    ----------
    k, seed : int

    Examples
    --------
    >>> centers = KCenters(k=20).fit(projected).centers  # doctest: +SKIP
    """

    name = "kcenters"

    def __init__(self, k=100, seed=0):
        self.k, self.seed = int(k), int(seed)

    def _fit(self, x):
        if self.k < 1 or self.k > len(x):
            raise ValueError(f"kcenters: k={self.k} must be between 1 and the number of frames ({len(x)})")
        x = np.asarray(x, dtype=np.float64)
        rng = np.random.default_rng(self.seed)
        chosen = [int(rng.integers(len(x)))]
        dist = np.linalg.norm(x - x[chosen[0]], axis=1)
        for _ in range(self.k - 1):
            nxt = int(np.argmax(dist))
            chosen.append(nxt)
            dist = np.minimum(dist, np.linalg.norm(x - x[nxt], axis=1))
        self.center_frames = np.array(chosen)
        self.centers = x[chosen]
        self.max_radius = float(dist.max())
        self._labels_flat = self._assign(x)


class HDBSCAN(_Clusterer):
    """Density-based HDBSCAN (scikit-learn); label -1 is noise. ``predict`` gives a new frame the label of
    its nearest fitted frame (noise stays noise). ``centers`` are the clusters' mean positions.

    Parameters
    ----------
    min_cluster_size : int
    min_samples : int, optional
    max_fit_frames : int
        A seeded subset of at most this many frames is clustered; the rest get their nearest fitted frame's label.
    seed : int

    Examples
    --------
    >>> labels = HDBSCAN(min_cluster_size=30).fit(projected).labels  # doctest: +SKIP
    """

    name = "hdbscan"

    def __init__(self, min_cluster_size=50, min_samples=None, max_fit_frames=20000, seed=0):
        self.min_cluster_size, self.min_samples = int(min_cluster_size), min_samples
        self.max_fit_frames, self.seed = int(max_fit_frames), int(seed)

    def _fit(self, x):
        from sklearn.cluster import HDBSCAN as _H
        from sklearn.neighbors import NearestNeighbors

        rng = np.random.default_rng(self.seed)
        sample = np.arange(len(x)) if len(x) <= self.max_fit_frames else np.sort(
            rng.choice(len(x), self.max_fit_frames, replace=False))
        model = _H(min_cluster_size=self.min_cluster_size, min_samples=self.min_samples, copy=True).fit(x[sample])
        self._train, self._train_labels = x[sample], model.labels_
        self._nn = NearestNeighbors(n_neighbors=1).fit(self._train)
        n = int(model.labels_.max()) + 1
        if n == 0:
            raise ValueError("hdbscan found no clusters (all noise); lower min_cluster_size")
        self.centers = np.array([x[sample][model.labels_ == c].mean(axis=0) for c in range(n)])
        self._labels_flat = self._assign(x)

    def _assign(self, x):
        _, idx = self._nn.kneighbors(np.asarray(x))
        return self._train_labels[idx[:, 0]].astype(np.int32)


class KMedoidsRMSD:
    """k-medoids on structures with the RMSD metric (mdtraj, after optimal superposition).

    ``fit(traj)`` takes an ``md.Trajectory`` (or a list, one per trajectory); at most ``max_frames`` frames
    (a seeded random subset) enter the O(n^2) RMSD matrix, then every frame is assigned to its nearest medoid.
    ``medoids`` is an md.Trajectory of the cluster structures.

    Parameters
    ----------
    k : int
    selection : str
        mdtraj selection of the atoms the RMSD uses.
    seed, max_frames, max_iter : int

    Examples
    --------
    >>> medoids = KMedoidsRMSD(k=5).fit(md.load("traj.dcd", top="mol.pdb")).medoids  # doctest: +SKIP
    """

    name = "kmedoids"

    def __init__(self, k=10, selection="backbone", seed=0, max_frames=2000, max_iter=100):
        self.k, self.selection, self.seed = int(k), selection, int(seed)
        self.max_frames, self.max_iter = int(max_frames), int(max_iter)
        self.medoids = None

    def fit(self, trajs):
        import mdtraj as md

        trajs = [trajs] if isinstance(trajs, md.Trajectory) else list(trajs)
        joined = md.join(trajs) if len(trajs) > 1 else trajs[0]
        atoms = joined.topology.select(self.selection) if isinstance(self.selection, str) else np.asarray(self.selection)
        if len(atoms) == 0:
            raise ValueError(f"kmedoids: selection {self.selection!r} matches no atoms")
        if self.k < 1 or self.k > joined.n_frames:
            raise ValueError(f"kmedoids: k={self.k} must be between 1 and the number of frames ({joined.n_frames})")
        self.atoms = atoms
        rng = np.random.default_rng(self.seed)
        n = joined.n_frames
        sample = np.arange(n) if n <= self.max_frames else np.sort(rng.choice(n, self.max_frames, replace=False))
        sub = joined[sample]
        dist = np.empty((len(sub), len(sub)))
        for i in range(len(sub)):
            dist[i] = md.rmsd(sub, sub, i, atom_indices=atoms, parallel=False)
        dist = (dist + dist.T) / 2
        # k-medoids++ seeding, then alternate assignment / medoid update until stable
        medoids = [int(rng.integers(len(sub)))]
        for _ in range(self.k - 1):
            d2 = dist[:, medoids].min(axis=1) ** 2
            medoids.append(int(rng.choice(len(sub), p=d2 / d2.sum())) if d2.sum() > 0 else int(np.argmax(d2)))
        medoids = np.array(medoids)
        for _ in range(self.max_iter):
            assign = np.argmin(dist[:, medoids], axis=1)
            new = medoids.copy()
            for c in range(self.k):
                members = np.flatnonzero(assign == c)
                if len(members):
                    new[c] = members[np.argmin(dist[np.ix_(members, members)].sum(axis=1))]
            if np.array_equal(new, medoids):
                break
            medoids = new
        self.medoid_frames = sample[medoids]
        self.medoids = joined[self.medoid_frames]
        self.labels = self.predict(trajs)
        return self

    def predict(self, trajs):
        import mdtraj as md

        if self.medoids is None:
            raise ValueError("kmedoids: not fitted, call fit(traj) first")
        single = isinstance(trajs, md.Trajectory)
        out = []
        for traj in ([trajs] if single else trajs):
            d = np.stack([md.rmsd(traj, self.medoids, c, atom_indices=self.atoms, parallel=False)
                          for c in range(self.k)], axis=1)
            out.append(np.argmin(d, axis=1).astype(np.int32))
        return out[0] if single else out

    @property
    def n_clusters(self):
        return self.k


CLUSTER_METHODS = {"kmeans": KMeans, "minibatch": MiniBatchKMeans, "regspace": RegularSpace, "kcenters": KCenters,
                   "hdbscan": HDBSCAN, "kmedoids": KMedoidsRMSD}


def make_clusterer(spec, seed=0):
    """A clusterer from a spec string (:mod:`nnforce.analysis.specs` syntax).

    Parameters
    ----------
    spec : str
        ``"kmeans:k=100"``, ``"minibatch:k=100"``, ``"kcenters:k=50"``, ``"regspace:dmin=0.3"``,
        ``"hdbscan:min_cluster_size=30"``, ...
    seed : int
        Passed to every method that draws random numbers.

    Returns
    -------
    An unfitted clusterer of this module.

    Examples
    --------
    >>> make_clusterer("kmeans:k=7", seed=3).k
    7
    """
    name, parsed = parse_spec(spec, "clustering")
    name = (name or "").replace("-", "_").replace("mini_batch", "minibatch")
    if name not in CLUSTER_METHODS:
        raise ValueError(f"unknown clustering method {name!r}; choose from {', '.join(CLUSTER_METHODS)}")
    options = {"seed": seed} if name not in ("regspace",) else {}
    options.update(parsed)
    try:
        return CLUSTER_METHODS[name](**options)
    except TypeError as error:
        raise ValueError(f"clustering {spec!r}: {error}") from None
