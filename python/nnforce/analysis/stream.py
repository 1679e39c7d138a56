"""Featurize trajectory files chunk by chunk (mdtraj.iterload), optionally in parallel with Dask.

Only one chunk of coordinates is in memory per worker at a time; the features (small) are kept. The box
of each chunk is built once (see ``features``), so boxed files pay no per-frame unit-cell cost.
Results save to ``.npz`` with their column labels and source files (``save_features``/``load_features``).
"""
import os

import numpy as np

from .._io import atomic_save

__all__ = ["load_topology", "featurize_file", "featurize", "featurize_dask", "save_features", "load_features",
           "iter_chunks"]


def load_topology(top):
    """An ``md.Topology`` from a file name, an md.Trajectory or an md.Topology.

    Parameters
    ----------
    top : str, mdtraj.Trajectory or mdtraj.Topology

    Returns
    -------
    mdtraj.Topology

    Examples
    --------
    >>> topology = load_topology("mol.pdb")  # doctest: +SKIP
    """
    import mdtraj as md

    if isinstance(top, md.Topology):
        return top
    if isinstance(top, md.Trajectory):
        return top.topology
    path = os.fspath(top)
    if not os.path.exists(path):
        raise FileNotFoundError(f"topology file not found: {path}")
    try:
        return md.load_topology(path)
    except Exception as error:
        raise ValueError(f"cannot read a topology from {path}: {error}") from None


def trajectory_paths(paths):
    """One path or a list of paths as a list of strings, each checked to exist.

    Raises
    ------
    ValueError
        For an empty list.
    FileNotFoundError
        Naming the first missing file.

    Examples
    --------
    >>> trajectory_paths([])
    Traceback (most recent call last):
    ...
    ValueError: no trajectory files given

    Parameters
    ----------
    paths : str, os.PathLike or sequence of them

    Returns
    -------
    list of str
    """
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    if not paths:
        raise ValueError("no trajectory files given")
    for p in paths:
        if not os.path.exists(p):
            raise FileNotFoundError(f"trajectory file not found: {p}")
    return paths


def _trajectory_atoms(path):
    """Atom count stored in a trajectory file, where mdtraj can tell without a topology (else None)."""
    import mdtraj as md

    from .trajfile import quiet_native_output

    try:
        with quiet_native_output(), md.open(path) as handle:
            if hasattr(handle, "read") and path.endswith((".xtc", ".trr", ".dcd")):
                xyz = handle.read(n_frames=1)[0]
                return int(xyz.shape[1])
    except Exception:
        return None
    return None


def iter_chunks(path, top, chunk=10000, stride=1, atom_indices=None, complete_frames_only=False):
    """Yield md.Trajectory chunks of ``path``; clear errors for a missing file, an atom-count mismatch or a file
    cut short (see :func:`nnforce.analysis.trajfile.check_trajectory`; ``complete_frames_only`` reads the complete
    frames of a truncated file instead).

    Parameters
    ----------
    path : str
    top : str or mdtraj.Topology
    chunk, stride : int
    atom_indices : array of int, optional

    Yields
    ------
    mdtraj.Trajectory

    Examples
    --------
    >>> n = sum(c.n_frames for c in iter_chunks("traj.xtc", "mol.pdb", chunk=1000))  # doctest: +SKIP
    """
    import mdtraj as md

    from .trajfile import check_trajectory, quiet_native_output

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"trajectory {path} is a directory, not a trajectory file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"trajectory file not found: {path}")
    topology = load_topology(top)
    if int(stride) < 1 or int(chunk) < 1:
        raise ValueError(f"stride and chunk must be positive integers (got stride={stride}, chunk={chunk})")
    limit = check_trajectory(path, complete_frames_only)  # frames to read (strided below), None = all
    remaining = None if limit is None else (limit + int(stride) - 1) // int(stride)
    try:
        iterator = iter(md.iterload(path, top=topology, chunk=int(chunk), stride=int(stride), atom_indices=atom_indices))
        while True:
            with quiet_native_output():  # the DCD reader's chatter on opening the file
                piece = next(iterator, None)
            if piece is None:
                break
            if remaining is not None:
                if remaining <= 0:
                    break
                piece = piece[:remaining] if piece.n_frames > remaining else piece
                remaining -= piece.n_frames
            yield piece
    except ValueError as error:
        if "xyz must be shape" in str(error) or "number of atoms" in str(error).lower():
            n_file = _trajectory_atoms(path)
            found = f"{n_file} atoms" if n_file else "a different number of atoms"
            raise ValueError(f"{path} has {found} but the topology has {topology.n_atoms}: the topology does not "
                             "belong to this trajectory (use the structure/topology file the trajectory was written "
                             "with, e.g. the solvated system rather than the solute only)") from None
        raise


def featurize_file(path, top, featurizer, chunk=10000, stride=1, complete_frames_only=False):
    """Features of one trajectory file, streamed: float32 (n_frames // stride, n_features).

    Parameters
    ----------
    path : str
    top : str or mdtraj.Topology
    featurizer : Featurizer
    chunk, stride : int
    complete_frames_only : bool
        Read the complete frames of a file cut short instead of refusing it.

    Returns
    -------
    numpy.ndarray

    Examples
    --------
    >>> x = featurize_file("traj.xtc", "mol.pdb", parse_features("phi_psi"))  # doctest: +SKIP
    """
    topology = load_topology(top)
    if featurizer.topology is None or featurizer.topology.n_atoms != topology.n_atoms:
        featurizer.bind(topology)
    blocks = [featurizer.transform(piece) for piece in iter_chunks(path, topology, chunk, stride,
                                                                   complete_frames_only=complete_frames_only)]
    if not blocks:
        return np.zeros((0, featurizer.n_features), dtype=np.float32)
    return np.concatenate(blocks) if len(blocks) > 1 else blocks[0]


def featurize(paths, top, featurizer, chunk=10000, stride=1, progress=False, complete_frames_only=False):
    """Features of each trajectory file, in order, in this process: a list of float32 arrays.

    Parameters
    ----------
    paths : str or list of str
    top : str or mdtraj.Topology
    featurizer : Featurizer
    chunk, stride : int
    complete_frames_only : bool
        Read the complete frames of a file cut short instead of refusing it.
    progress : bool

    Returns
    -------
    list of numpy.ndarray

    Examples
    --------
    >>> data = featurize(["a.xtc", "b.xtc"], "mol.pdb", parse_features(["phi_psi"]))  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    paths = trajectory_paths(paths)
    topology = load_topology(top)
    featurizer.bind(topology)
    with tqdm(paths, desc="featurize", unit="file", disable=not progress) as bar:  # closed (newline) on errors too
        return [featurize_file(p, topology, featurizer, chunk, stride, complete_frames_only) for p in bar]


def _dask_task(path, top, featurizer, chunk, stride, complete_frames_only=False):
    return featurize_file(path, top, featurizer, chunk, stride, complete_frames_only)


def featurize_dask(paths, top, featurizer, chunk=10000, stride=1, scheduler=None, n_workers=None,
                   threads_per_worker=1, processes=True, complete_frames_only=False):
    """Featurize files in parallel with Dask: one task per file, results in input order.

    ``scheduler``: None starts a local cluster (``n_workers`` processes, default the CPU count, capped by the
    number of files) for this call; an address (``"tcp://host:8786"``) or an existing
    ``distributed.Client`` uses that cluster. Workers must see the same file paths (shared filesystem).

    Parameters
    ----------
    paths : list of str
    top : str or mdtraj.Topology
    featurizer : Featurizer
    chunk, stride : int
    scheduler : None, str or distributed.Client
    n_workers, threads_per_worker : int, optional
    processes : bool

    Returns
    -------
    list of numpy.ndarray

    Examples
    --------
    >>> data = featurize_dask(files, "mol.pdb", parse_features("phi_psi"), n_workers=4)  # doctest: +SKIP
    """
    from dask.distributed import Client, LocalCluster

    paths = trajectory_paths(paths)
    topology = load_topology(top)
    featurizer.bind(topology)
    own_cluster = None
    if isinstance(scheduler, Client):
        client = scheduler
    elif scheduler:
        client = Client(scheduler)
    else:
        n_workers = n_workers or min(len(paths), os.cpu_count() or 1)
        own_cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=processes,
                                   dashboard_address=None)
        client = Client(own_cluster)
    try:
        futures = [client.submit(_dask_task, p, topology, featurizer, chunk, stride, complete_frames_only, pure=False)
                   for p in paths]
        return client.gather(futures)
    finally:
        if own_cluster is not None or (scheduler and not isinstance(scheduler, Client)):
            client.close()
        if own_cluster is not None:
            own_cluster.close()


def save_features(path, features, labels, sources=None, **metadata):
    """Write features (a list of arrays, one per trajectory) with their labels and sources to ``.npz``.

    Parameters
    ----------
    path : str
    features : list of arrays
    labels : list of str
    sources : list of str, optional
    **metadata
        Stored alongside (JSON-able).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> save_features("features.npz", data, featurizer.labels, files)  # doctest: +SKIP
    """
    features = [np.asarray(f) for f in features]
    labels = list(labels)
    for f in features:
        if f.ndim != 2 or f.shape[1] != len(labels):
            raise ValueError(f"feature array of shape {f.shape} does not match {len(labels)} labels")
    arrays = {f"traj_{i:05d}": f for i, f in enumerate(features)}
    arrays["labels"] = np.array(labels, dtype=str)
    arrays["sources"] = np.array([os.fspath(s) for s in (sources or [""] * len(features))], dtype=str)
    for key, value in metadata.items():
        arrays[f"meta_{key}"] = np.asarray(value)

    def write(tmp):
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **arrays)

    atomic_save(path, write)
    return path


def load_features(path):
    """Read ``save_features`` output: (list of arrays, labels, sources, metadata dict).

    Parameters
    ----------
    path : str

    Returns
    -------
    tuple
        ``(features, labels, sources, metadata)``.

    Examples
    --------
    >>> data, labels, sources, meta = load_features("features.npz")  # doctest: +SKIP
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"feature file not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(k for k in data.files if k.startswith("traj_"))
        features = [data[k] for k in keys]
        meta = {k[5:]: data[k] for k in data.files if k.startswith("meta_")}
        return features, [str(s) for s in data["labels"]], [str(s) for s in data["sources"]], meta
