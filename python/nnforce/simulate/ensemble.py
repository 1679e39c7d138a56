"""An ensemble of replicas of one molecule as Dask tasks: ``nnforce simulate MOL MODEL --replicas R``.

The R replicas (seeded starting structures and velocities) are split into batches, one Dask task per batch, each
batch running its replicas in one Context with one model call per step (:mod:`nnforce.simulate.replicas`). The tasks run
on a ``distributed.LocalCluster`` by default, or on any running scheduler (``dask scheduler`` + ``dask worker``)
given by its address; the output folder must be reachable by every worker (one machine, or a shared file system).

Files in the output folder: ``replica_0000.dcd`` ... (one trajectory per replica), ``replica_0000.chk.json`` ...
(per-replica checkpoints, see :mod:`nnforce.simulate.replica_batch`), ``ensemble.json`` (settings and starting
structures, written first) and ``ensemble_result.json`` (written last). A batch whose worker dies is run again by
the scheduler, or resubmitted here (up to ``max_retries`` times) when it raised: either way it continues from its
replicas' last checkpoints. Progress is shown for the whole ensemble (steps of all replicas).
"""
import json
import math
import os
import time
import uuid
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from .._io import atomic_write
from .replicas import replica_file_name
from .replica_batch import DiskFullError, read_checkpoint, run_batch

__all__ = ["EnsembleConfig", "run_ensemble", "connect"]

MANIFEST = "ensemble.json"
RESULT = "ensemble_result.json"
# settings a resumed ensemble must share with the run that wrote the checkpoints
_FINGERPRINT = ("replicas", "steps", "timestep_fs", "temperature_k", "friction_per_ps", "seed", "trajectory_interval",
                "checkpoint_interval", "platform", "model_precision", "neighbor_cutoff_nm", "neighbor_skin_nm",
                "minimize", "minimize_max_iterations", "suffix")


@dataclass
class EnsembleConfig:
    """An ensemble run. Units: K, fs, ps, nm.

    Parameters
    ----------
    model : str
        Exported TorchScript model file.
    pdb : str
        The molecule (PDB; a CRYST1 box makes it periodic).
    replicas : int
        R >= 1.
    starts : list of str, optional
        Where starting structures come from: a trajectory (with ``pdb`` as its topology) or PDB files of the same
        molecule; R starts are picked across its conformations by clustering (:func:`nnforce.simulate.seeding
        .pick_starts`). Default: every replica starts from ``pdb`` (with its own velocities).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); default: a ``LocalCluster``.
    workers : int, optional
        LocalCluster worker processes (default: ``min(cpu count, R)``).
    batch_size : int, optional
        Replicas per task (default: R split evenly over the workers).
    """

    model: str
    pdb: str
    replicas: int = 4
    output_dir: str = "ensemble"
    steps: int = 10000
    timestep_fs: float = 0.5
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    seed: int = 1
    trajectory_interval: int = 100
    checkpoint_interval: int = 1000
    platform: str = "CPU"
    model_precision: Optional[str] = None
    neighbor_cutoff_nm: Optional[float] = None
    neighbor_skin_nm: float = 0.0
    minimize: bool = True
    minimize_max_iterations: int = 500
    suffix: str = ".dcd"
    starts: Optional[List[str]] = None
    start_clusters: Optional[int] = None
    scheduler: Optional[str] = None
    workers: Optional[int] = None
    batch_size: Optional[int] = None
    threads: int = 1
    connect_timeout_s: float = 10.0
    max_retries: int = 3
    resume: bool = False
    progress: bool = True

    def __post_init__(self):
        if int(self.replicas) < 1:
            raise ValueError(f"--replicas must be at least 1, got {self.replicas}")
        for name in ("steps", "trajectory_interval", "checkpoint_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive number of steps, got {getattr(self, name)}")
        if self.checkpoint_interval % self.trajectory_interval:
            raise ValueError(f"checkpoint_interval ({self.checkpoint_interval}) must be a multiple of "
                             f"trajectory_interval ({self.trajectory_interval}), so a checkpoint falls on a frame")
        if self.suffix not in (".dcd", ".xtc"):
            raise ValueError(f"trajectory format must be .dcd or .xtc, got {self.suffix!r}")
        if self.timestep_fs <= 0 or self.temperature_k <= 0 or self.friction_per_ps < 0:
            raise ValueError("timestep_fs and temperature_k must be positive and friction_per_ps >= 0")
        for name in ("workers", "batch_size"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.connect_timeout_s <= 0:
            raise ValueError("connect_timeout_s must be positive")


def connect(scheduler=None, workers=1, timeout_s=10.0):
    """A ``distributed.Client``: to the scheduler at ``scheduler``, or to a new ``LocalCluster`` of ``workers``
    single-threaded processes. Raises ``ConnectionError`` when the scheduler does not answer within ``timeout_s``."""
    import logging

    from distributed import Client, LocalCluster

    if scheduler is None:
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.CRITICAL)  # task errors reach the user once, from here
        return Client(cluster)
    try:
        return Client(scheduler, timeout=f"{float(timeout_s)}s")
    except (OSError, TimeoutError) as error:
        raise ConnectionError(f"could not reach the Dask scheduler at {scheduler} within {timeout_s:g} s ({error}). "
                              "Check the address (tcp://HOST:PORT, as `dask scheduler` prints it) and that the "
                              "scheduler is running, or leave out --scheduler to use a local cluster.") from None


def _read_structures(config):
    """(pdb text, topology, positions nm [R, n, 3], start info) of the replicas' starting structures."""
    import io

    import mdtraj as md
    import numpy as np
    from openmm import unit
    from openmm.app import PDBFile

    if not os.path.isfile(config.pdb):
        raise FileNotFoundError(f"structure file not found: {config.pdb}")
    with open(config.pdb) as handle:
        text = handle.read()
    structure = PDBFile(io.StringIO(text))
    n = structure.topology.getNumAtoms()
    base = np.asarray(structure.getPositions(asNumpy=True).value_in_unit(unit.nanometer), dtype=np.float64)
    if not config.starts:
        return text, structure.topology, np.repeat(base[None], config.replicas, axis=0), {"source": config.pdb}
    frames = []
    for path in config.starts:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"starting structures not found: {path}")
        traj = md.load(path) if path.lower().endswith((".pdb", ".cif", ".h5")) else md.load(path, top=config.pdb)
        if traj.n_atoms != n:
            raise ValueError(f"{path} has {traj.n_atoms} atoms but {config.pdb} has {n}: every replica must be the "
                             "same molecule (same atoms in the same order)")
        frames.append(traj)
    traj = md.join(frames, check_topology=False) if len(frames) > 1 else frames[0]
    from .seeding import pick_starts

    picked = pick_starts(traj, config.replicas, clusters=config.start_clusters, seed=config.seed)
    info = {"source": list(config.starts), "frames": picked.frames, "clusters": picked.clusters,
            "cluster_sizes": picked.cluster_sizes}
    return text, structure.topology, picked.positions, info


def _manifest(config, info, starts_info, topology=None):
    from .outputs import topology_fingerprint

    settings = {name: getattr(config, name) for name in _FINGERPRINT}
    settings["model_sha256"] = info["sha256"]
    if topology is not None:  # another structure with the same atom count must not continue these replicas
        settings["topology_sha256"] = topology_fingerprint(topology)
    return json.loads(json.dumps({"settings": settings, "starts": starts_info}))


def _prepare_output(config, manifest):
    path = os.path.join(config.output_dir, MANIFEST)
    if os.path.isfile(path):
        with open(path) as handle:
            old = json.load(handle)
        if not config.resume:
            raise ValueError(f"{config.output_dir} already holds an ensemble ({MANIFEST}); continue it with --resume "
                             "or choose another output folder")
        saved = old.get("settings", {})
        changed = sorted(k for k in manifest["settings"] if saved.get(k) != manifest["settings"][k]
                         and (k != "topology_sha256" or k in saved))  # (manifests from before it was recorded)
        if "topology_sha256" in changed:
            raise ValueError(f"--resume: the ensemble in {config.output_dir} was run on another structure (other atoms, "
                             "order or bonds); resume with the original structure, or choose another output folder")
        if changed:
            raise ValueError(f"--resume: the ensemble in {config.output_dir} was run with other settings ({', '.join(changed)})")
        return
    with atomic_write(path, "w") as handle:
        json.dump(manifest, handle, indent=2)


def _batches(replicas, size):
    return [list(range(first, min(first + size, replicas))) for first in range(0, replicas, size)]


def _steps_done(output_dir, replicas):
    total = 0
    for k in range(replicas):
        try:
            saved = read_checkpoint(output_dir, k)
        except (ValueError, OSError):
            saved = None  # being replaced right now
        total += 0 if saved is None else int(saved["step"])
    return total


def _monitor(client, specs, config):
    """Run every batch to completion, resubmitting failed ones; returns the per-replica results."""
    from distributed import wait
    from openmm import OpenMMException
    from tqdm.auto import tqdm

    results: Dict[int, Dict[str, Any]] = {}
    attempts = [0] * len(specs)

    token = uuid.uuid4().hex[:12]  # keys unique to this run: a scheduler may still hold an earlier run's results

    def submit(b):
        first, last = specs[b]["replicas"][0], specs[b]["replicas"][-1]
        # Each task carries the model's bytes, so that a task resubmitted after its worker died needs nothing that
        # died with it (a model scattered to the workers was lost with a killed worker: "Futures cancelled"). Dask
        # warns of a "large graph" for such a task on every run; the size is intended, so that warning is not shown.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"(?s).*[Ll]arge graph")
            return client.submit(run_batch, specs[b], key=f"nnforce-replicas-{first}-{last}-try{attempts[b]}-{token}",
                                 pure=False)

    running = {submit(b): b for b in range(len(specs))}
    bar = tqdm(total=config.replicas * config.steps, unit="step", desc=f"{config.replicas} replicas",
               disable=not config.progress, smoothing=0.1)
    try:
        while running:
            try:
                done, _ = wait(list(running), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:  # none finished in this half second
                done = []
            bar.n = _steps_done(config.output_dir, config.replicas)
            bar.refresh()
            for future in done:
                b = running.pop(future)
                if future.status == "finished":
                    results.update(future.result())
                    continue
                error = future.exception()
                if isinstance(error, (DiskFullError, ValueError, FileNotFoundError, OpenMMException)):
                    raise error  # the same again would fail the same way
                attempts[b] += 1
                if attempts[b] > config.max_retries:
                    raise RuntimeError(f"replicas {specs[b]['replicas']} failed {attempts[b]} times; last error: "
                                       f"{type(error).__name__}: {error}") from error
                running[submit(b)] = b  # continues from the replicas' checkpoints
        bar.n = _steps_done(config.output_dir, config.replicas)
        bar.refresh()
    finally:
        bar.close()
        for future in running:
            future.cancel()
    return results


def run_ensemble(config: EnsembleConfig, client=None) -> Dict[str, Any]:
    """Run (or, with ``resume``, continue) the ensemble; returns what ``ensemble_result.json`` holds.

    Parameters
    ----------
    config : EnsembleConfig
    client : distributed.Client, optional
        Use this client instead of connecting per ``config.scheduler`` / ``config.workers``.

    Raises
    ------
    ValueError
        Bad settings, R < 1, starting structures with other atom counts than the molecule, an output folder
        holding another ensemble.
    ConnectionError
        The scheduler did not answer within ``connect_timeout_s``.
    DiskFullError
        The disk filled up; every replica's files are intact up to its last checkpoint (continue with resume).

    Examples
    --------
    >>> run_ensemble(EnsembleConfig("model.pt", "mol.pdb", replicas=16, steps=20000))  # doctest: +SKIP
    """
    from ..contract import inspect_model, neighbor_cutoff
    from ..atoms import atomic_numbers_of, check_elements

    info = inspect_model(config.model)
    pdb_text, topology, starts, starts_info = _read_structures(config)
    check_elements(info["elements"], atomic_numbers_of(topology), "the structure")
    if neighbor_cutoff(info, config.neighbor_cutoff_nm) is None and "replica" not in info["arguments"]:
        raise ValueError("the model takes no neighbor list with a known cutoff and no 'replica' input, so replicas "
                         "batched in one Context would interact: export the model with its cutoff (nnforce export), "
                         "give --neighbor-cutoff, or use a model taking 'replica'")
    manifest = _manifest(config, info, starts_info, topology)
    os.makedirs(config.output_dir, exist_ok=True)
    _prepare_output(config, manifest)
    own = client is None
    workers = config.workers or max(1, min(os.cpu_count() or 1, config.replicas))
    if own:
        client = connect(config.scheduler, workers, config.connect_timeout_s)
    began = time.time()
    try:
        if config.batch_size is None:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})) or workers)
            size = math.ceil(config.replicas / n_workers)
        else:
            size = int(config.batch_size)
        common = {name: getattr(config, name) for name in _FINGERPRINT if name != "replicas"}
        common.update(output_dir=os.path.abspath(config.output_dir), model_bytes=info["bytes"], pdb_text=pdb_text,
                      threads=config.threads)
        specs = [dict(common, replicas=batch, starts={k: starts[k].tolist() for k in batch})
                 for batch in _batches(config.replicas, size)]
        results = _monitor(client, specs, config)
    finally:
        if own:
            cluster = getattr(client, "cluster", None)
            client.close()
            if cluster is not None:
                cluster.close()
    expected = config.steps // config.trajectory_interval
    summary = {
        "replicas": config.replicas, "steps": config.steps, "frames_per_replica": expected,
        "wall_s": time.time() - began, "batches": len(specs), "batch_size": size,
        "trajectories": [replica_file_name(k, config.suffix) for k in range(config.replicas)],
        "resumed_from": {str(k): results[k]["resumed_from"] for k in sorted(results)},
        "starts": starts_info,
    }
    bad = [k for k in range(config.replicas) if results[k]["frames"] != expected]
    if bad:
        raise RuntimeError(f"replicas {bad} ended with the wrong number of frames (expected {expected})")
    with atomic_write(os.path.join(config.output_dir, RESULT), "w") as handle:
        json.dump(summary, handle, indent=2)
    return summary

