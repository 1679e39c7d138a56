"""The work of one Dask task of an ensemble: run a batch of replicas in one Context, with per-replica files.

Every replica ``k`` owns, in the output folder,

* ``replica_000k.dcd`` (or ``.xtc``): one frame every ``trajectory_interval`` steps, frame ``f`` at step
  ``(f + 1) * trajectory_interval``;
* ``replica_000k.chk.json``: its last checkpoint (step, frames written, positions and velocities in nm and nm/ps,
  written atomically after the trajectory was flushed to disk, so the file always has at least ``frames`` frames).

:func:`run_batch` starts each replica from its checkpoint when one exists: frames written after the checkpoint
are dropped and computed again, so a batch retried after its worker died writes no frame twice and loses none.
Replicas of one batch whose checkpoints are at different steps (a worker killed while writing them) are
brought to the same step in smaller batches first. The Langevin noise of a stretch of steps is seeded by the
ensemble seed, the stretch's first step and its replicas.
"""
import errno
import json
import os
from typing import Any, Dict, List

import numpy as np

from .._io import atomic_write
from .replicas import replica_file_name
from ..units import FS_PER_PS

__all__ = ["DiskFullError", "run_batch", "checkpoint_path", "read_checkpoint"]

CHECKPOINT_SUFFIX = ".chk.json"
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class DiskFullError(OSError):
    """Writing an ensemble's files failed for lack of space; what was written up to the last checkpoint is intact."""


def checkpoint_path(output_dir, replica):
    """The checkpoint file of ``replica`` in ``output_dir``."""
    return os.path.join(output_dir, replica_file_name(replica, CHECKPOINT_SUFFIX))


def read_checkpoint(output_dir, replica):
    """The checkpoint of ``replica`` as a dict, or None when it has none."""
    path = checkpoint_path(output_dir, replica)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        try:
            return json.load(handle)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not a valid checkpoint ({error}); delete it to restart that replica") from None


def _write_checkpoint(output_dir, replica, state):
    with atomic_write(checkpoint_path(output_dir, replica), "w") as handle:
        json.dump(state, handle)


def _noise_seed(seed, step, group):
    """A nonzero 31-bit seed (OpenMM draws a random one for 0) from the ensemble seed, a step and the replicas."""
    mixed = np.random.SeedSequence([int(seed), int(step)] + [int(k) for k in group]).generate_state(1)[0]
    return int(mixed % 2147483646) + 1


def _initial_velocities(masses_amu, temperature_k, seed, replica):
    """Maxwell-Boltzmann velocities (nm/ps) of one replica, seeded by the ensemble seed and the replica index."""
    from ..units import KB_KJ_MOL_K

    rng = np.random.default_rng([int(seed), int(replica), 7])
    sigma = np.sqrt(KB_KJ_MOL_K * temperature_k / np.asarray(masses_amu))
    return rng.normal(size=(len(masses_amu), 3)) * sigma[:, None]


def _molecule(spec):
    """(single-molecule System, topology) of the spec: pure ML, the NNForce built as ``nnforce simulate`` does."""
    import io

    from openmm.app import PDBFile

    from ..contract import inspect_model, neighbor_cutoff
    from ..force import build_ml_system

    topology = PDBFile(io.StringIO(spec["pdb_text"])).topology
    info = inspect_model(spec["model_bytes"])
    system = build_ml_system(info, topology, neighbor_cutoff_nm=neighbor_cutoff(info, spec["neighbor_cutoff_nm"]),
                             neighbor_skin_nm=spec["neighbor_skin_nm"], precision=spec["model_precision"])
    return system, topology


def _context(spec, system, topology, group, states):
    """A Context for the replicas in ``group`` at their states, its Langevin noise seeded by the ensemble seed,
    their step and the replicas (a new Context per stretch between checkpoints: a run resumed from a checkpoint
    repeats the uninterrupted run)."""
    import openmm
    from openmm import unit

    from ..force import build_context
    from .replicas import replicate

    start = states[group[0]]["step"]
    batch = replicate(system, topology, [states[k]["positions"] for k in group])
    integrator = openmm.LangevinMiddleIntegrator(spec["temperature_k"] * unit.kelvin,
                                                 spec["friction_per_ps"] / unit.picosecond,
                                                 spec["timestep_fs"] * unit.femtoseconds)
    integrator.setRandomNumberSeed(_noise_seed(spec["seed"], start, group))
    context = build_context(batch.system, integrator, spec["platform"])
    context.setPositions(batch.positions)
    if start == 0 and spec["minimize"] and not any(states[k].get("minimized") for k in group):
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, int(spec.get("minimize_max_iterations", 500)))
    masses = [system.getParticleMass(i).value_in_unit(unit.dalton) for i in range(system.getNumParticles())]
    velocities = [states[k]["velocities"] if states[k].get("velocities") is not None
                  else _initial_velocities(masses, spec["temperature_k"], spec["seed"], k) for k in group]
    context.setVelocities(batch.join(velocities) / unit.picosecond)
    return batch, context


def _advance(spec, system, topology, group, states, target):
    """Run the replicas in ``group`` (all at the same step) to step ``target``, one Context at a time."""
    from openmm import unit

    from .replicas import replica_writers, run_replica_steps

    out = spec["output_dir"]
    interval, every = spec["trajectory_interval"], spec["checkpoint_interval"]
    writers = replica_writers(out, group, topology, spec["timestep_fs"] / FS_PER_PS, interval, spec["suffix"])
    try:
        for k, writer in zip(group, writers):
            writer.start(frames_kept=states[k]["frames"])
        step = states[group[0]]["step"]
        while step < target:
            batch, context = _context(spec, system, topology, group, states)
            end = min(target, (step // every + 1) * every)
            state = run_replica_steps(context, batch, step, end, interval, writers)
            step = end
            positions = batch.split(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
            speeds = batch.split(state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond))
            del context
            for writer in writers:
                writer.sync()  # the frames are on disk before a checkpoint counts them
            for j, (k, writer) in enumerate(zip(group, writers)):
                states[k].update(step=step, frames=writer.frames, positions=positions[j].tolist(),
                                 velocities=speeds[j].tolist(), minimized=True)
                _write_checkpoint(out, k, states[k])
    finally:
        for writer in writers:
            writer.close()


def run_batch(spec: Dict[str, Any]) -> Dict[int, Dict[str, Any]]:
    """Run the replicas ``spec["replicas"]`` to ``spec["steps"]`` (resuming from their checkpoints).

    Parameters
    ----------
    spec : dict
        Made by :func:`nnforce.simulate.ensemble.run_ensemble`: output_dir, model_bytes, pdb_text, replicas,
        starts (positions nm per replica), steps, timestep_fs, temperature_k, friction_per_ps, seed,
        trajectory_interval, checkpoint_interval, platform, model_precision, neighbor_cutoff_nm,
        neighbor_skin_nm, minimize, minimize_max_iterations, threads, suffix.

    Returns
    -------
    dict
        Per replica: ``step``, ``frames`` and ``resumed_from`` (the checkpoint steps this replica was resumed
        from, in order).

    Raises
    ------
    DiskFullError
        A write failed for lack of space (or a file-size limit); the files are as of the last checkpoint.
    """
    import torch

    import nnforce  # noqa: F401  (loads the plugin into this worker)

    torch.set_num_threads(int(spec.get("threads") or 1))
    out = spec["output_dir"]
    os.makedirs(out, exist_ok=True)
    system, topology = _molecule(spec)
    states: Dict[int, Dict[str, Any]] = {}
    for k in spec["replicas"]:
        saved = read_checkpoint(out, k)
        if saved is None:
            states[k] = {"replica": k, "step": 0, "frames": 0, "positions": spec["starts"][k], "velocities": None,
                         "resumed_from": []}
        else:
            saved["resumed_from"] = list(saved.get("resumed_from", [])) + [saved["step"]]
            states[k] = saved
    steps = int(spec["steps"])
    try:
        while True:
            pending = [k for k in spec["replicas"] if states[k]["step"] < steps]
            if not pending:
                break
            low = min(states[k]["step"] for k in pending)
            group: List[int] = [k for k in pending if states[k]["step"] == low]
            later = sorted({states[k]["step"] for k in pending if states[k]["step"] > low})
            _advance(spec, system, topology, group, states, later[0] if later else steps)
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise DiskFullError(error.errno, f"ensemble: could not write to {out} ({os.strerror(error.errno)}). The "
                                "replicas' files are intact up to their last checkpoints; free space and run again "
                                "with --resume to continue.") from None
        raise
    return {k: {"step": states[k]["step"], "frames": states[k]["frames"], "resumed_from": states[k]["resumed_from"]}
            for k in spec["replicas"]}
