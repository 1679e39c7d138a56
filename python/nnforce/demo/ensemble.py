"""The demo's ensemble: replicas of alanine dipeptide seeded across its four basins, run with the trained model in
NNForce, all replicas batched in one Context (:mod:`nnforce.simulate.replicas`), and the same protocol (same starts,
seeds, thermostat and length) with the reference force field (amber14) for comparison.

Starts come from the reference sampling: its frames are split by basin (:func:`~nnforce.demo.measure.basin`)
and :func:`nnforce.simulate.seeding.pick_starts` spreads each basin's starts over it (k-means on sin/cos of
phi/psi, seeded). A basin the sampling never reached gets the checked-in structure turned to a point inside it.
"""
import os
import time

import numpy as np

from .measure import BASIN_CENTRES_DEG, BASINS, basin_indices

__all__ = ["seed_starts", "run_nnforce_ensemble", "run_reference_ensemble"]


def seed_starts(frames_nm, phi_rad, psi_rad, topology, per_basin, seed):
    """``per_basin`` starting structures in each of the four basins.

    Parameters
    ----------
    frames_nm : array, shape (F, n, 3)
        Frames of the molecule (the reference sampling).
    phi_rad, psi_rad : array, shape (F,)
        Their backbone torsions.
    topology : openmm.app.Topology
    per_basin : int
    seed : int
        Seeds the k-means of :func:`~nnforce.simulate.seeding.pick_starts` (basin k uses ``seed + k``).

    Returns
    -------
    dict
        ``positions`` [4 * per_basin, n, 3] nm, ``basins`` (the basin name of each start, in :data:`BASINS`
        order), ``sources`` (the reference frame index of each start, or -1 for a built structure).

    Examples
    --------
    >>> starts = seed_starts(frames, phi, psi, topology, 4, seed=0)  # doctest: +SKIP
    >>> starts["basins"][:4]  # doctest: +SKIP
    ['C7eq / C5 / beta / PPII', 'C7eq / C5 / beta / PPII', 'C7eq / C5 / beta / PPII', 'C7eq / C5 / beta / PPII']
    """
    import mdtraj

    from ..simulate.seeding import pick_starts
    from .molecule import set_backbone

    per_basin = int(per_basin)
    if per_basin < 1:
        raise ValueError(f"per_basin must be at least 1, got {per_basin}")
    frames = np.asarray(frames_nm, dtype=np.float64)
    index = basin_indices(phi_rad, psi_rad)
    md_topology = mdtraj.Topology.from_openmm(topology)
    positions, basins, sources = [], [], []
    for k, name in enumerate(BASINS):
        members = np.flatnonzero(index == k)
        if len(members):
            traj = mdtraj.Trajectory(frames[members].astype(np.float32), md_topology)
            picked = pick_starts(traj, per_basin, clusters=min(per_basin, len(members)), seed=int(seed) + k)
            chosen = [int(members[f]) for f in picked.frames]
            positions += [frames[f] for f in chosen]
            sources += chosen
        else:  # the sampling never got there: the checked-in structure turned into the basin
            built = set_backbone(topology, frames[0], *BASIN_CENTRES_DEG[name])
            positions += [built] * per_basin
            sources += [-1] * per_basin
        basins += [name] * per_basin
    return {"positions": np.asarray(positions), "basins": basins, "sources": sources}


class _Thermometer:
    """Keeps each replica's kinetic temperature and the mean potential energy per replica at every frame (an
    ``observe`` of :func:`nnforce.simulate.replicas.run_replica_steps`)."""

    def __init__(self, batch):
        from openmm import unit

        from ..units import KB_KJ_MOL_K

        self.batch = batch
        masses = np.array([batch.system.getParticleMass(i).value_in_unit(unit.dalton)
                           for i in range(batch.system.getNumParticles())])
        self.masses = batch.split(masses)  # [R, n]
        self.dof_kb = 3 * batch.atoms_per_replica * KB_KJ_MOL_K
        self.temperatures, self.potentials = [], []

    def __call__(self, step, state):
        """Record the replicas' temperatures (K) and the potential energy per replica (kJ/mol)."""
        from openmm import unit

        v = self.batch.split(state.getVelocities(asNumpy=True).value_in_unit(unit.nanometer / unit.picosecond))
        kinetic = 0.5 * (self.masses[..., None] * v ** 2).sum(axis=(1, 2))
        self.temperatures.append(2.0 * kinetic / self.dof_kb)
        energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        self.potentials.append(energy / self.batch.num_replicas)


def _production_steps(settings, ms_per_step, spent_s):
    """The settings' steps per replica, fitted to the time budget (never below the minimum) when there is one."""
    steps = int(settings["ensemble_steps"])
    budget = settings.get("ensemble_time_budget_s")
    if budget:
        affordable = int((budget - spent_s) * 1000.0 / ms_per_step)
        steps = max(int(settings["ensemble_min_steps"]), min(steps, affordable))
    return steps - steps % int(settings["ensemble_trajectory_interval"])


def _equilibration_friction(settings):
    """The equilibration's friction (1/ps): stronger than production's, so the replicas reach the temperature."""
    return max(settings["ensemble_friction_per_ps"], settings.get("ensemble_equilibration_friction_per_ps") or 0.0)


def _seed31(seed, salt):
    """A nonzero 31-bit integrator seed (OpenMM draws a random one for 0)."""
    return int(np.random.SeedSequence([int(seed), int(salt)]).generate_state(1)[0] % 2147483646) + 1


def _equilibrate(context, s, temperature, seed):
    """Minimize, draw velocities (seeded), equilibrate with the stronger friction, then set the production friction;
    returns (ms per step of the equilibration, the production steps that fit the time budget)."""
    import openmm
    from openmm import unit

    began = time.perf_counter()
    openmm.LocalEnergyMinimizer.minimize(context, 10.0, int(s["ensemble_minimize_iterations"]))
    context.setVelocitiesToTemperature(temperature, _seed31(seed, 2))
    timed = time.perf_counter()
    context.getIntegrator().step(int(s["ensemble_equilibration_steps"]))
    ms = (time.perf_counter() - timed) * 1000.0 / max(int(s["ensemble_equilibration_steps"]), 1)
    context.getIntegrator().setFriction(s["ensemble_friction_per_ps"] / unit.picosecond)
    return ms, _production_steps(s, ms, time.perf_counter() - began)


def _produce(context, batch, writers, thermometer, steps, interval, progress):
    """Production: ``steps`` steps with the shared replica loop (frames to ``writers``, closed at the end, and to
    ``thermometer``); returns the wall time (s)."""
    from tqdm.auto import tqdm

    from ..simulate.replicas import run_replica_steps

    production = time.perf_counter()
    replicas = batch.num_replicas
    with tqdm(total=steps * replicas, unit="step", desc=f"{replicas} replicas", disable=not progress) as bar:
        def observe(step, state):
            thermometer(step, state)
            bar.update(interval * replicas)

        try:
            for writer in writers:
                writer.start()
            run_replica_steps(context, batch, 0, steps, interval, writers, observe, energy=True)
        finally:
            for writer in writers:
                writer.close()
    return time.perf_counter() - production


def run_nnforce_ensemble(model_path, topology, starts_nm, settings, seed, out_dir, progress=False, log=None):
    """Run the replicas with NNForce, batched in one Context, writing ``out_dir/replica_0000.dcd`` ...

    Minimization (all replicas at once), velocities at the temperature (seeded), equilibration with the stronger
    ``ensemble_equilibration_friction_per_ps`` (not saved; it times NNForce so the production length can be fitted
    to ``ensemble_time_budget_s``), then production with a frame every ``ensemble_trajectory_interval`` steps.

    Parameters
    ----------
    model_path : str
        The exported model.
    topology : openmm.app.Topology
        One molecule.
    starts_nm : array, shape (R, n, 3)
    settings : dict
        The demo's ``ensemble_*`` settings.
    seed : int
        Seeds the velocities and the Langevin noise.
    out_dir : str
    progress : bool
    log : callable, optional
        Called with one line of text about the fitted length.

    Returns
    -------
    dict
        ``trajectories`` (paths), ``replicas``, ``steps`` (production steps per replica), ``equilibration_steps``,
        ``ms_per_step`` (wall, all replicas together), ``wall_s``, ``aggregate_steps_per_s``,
        ``temperatures_k`` [frames, R], ``potential_per_replica_kj_mol`` [frames], ``frame_interval_ps``.

    Examples
    --------
    >>> result = run_nnforce_ensemble("model.pt", topology, starts, SETTINGS["small"], 1, "ensemble")  # doctest: +SKIP
    """
    import openmm
    from openmm import unit

    from ..contract import inspect_model
    from ..force import build_context
    from ..simulate.replicas import replica_writers, replicate
    from ..simulate import SimulationConfig, build_system
    from ..units import FS_PER_PS

    s = settings
    starts = np.asarray(starts_nm, dtype=np.float64)
    system = build_system(SimulationConfig(model=model_path, topology=topology, positions=starts[0]), topology,
                          inspect_model(model_path))
    batch = replicate(system, topology, list(starts))
    temperature = s["ensemble_temperature_k"] * unit.kelvin
    integrator = openmm.LangevinMiddleIntegrator(temperature, _equilibration_friction(s) / unit.picosecond,
                                                 s["ensemble_timestep_fs"] * unit.femtoseconds)
    integrator.setRandomNumberSeed(_seed31(seed, 1))
    context = build_context(batch.system, integrator, "CPU", {"Threads": "1"})
    context.setPositions(batch.positions)
    ms, steps = _equilibrate(context, s, temperature, seed)
    if log is not None:
        log(f"NNForce: {ms:.1f} ms per step for {batch.num_replicas} replicas in one Context; {steps} production "
            f"steps per replica (at most {s['ensemble_steps']})")
    interval = int(s["ensemble_trajectory_interval"])
    os.makedirs(out_dir, exist_ok=True)
    writers = replica_writers(out_dir, range(batch.num_replicas), batch.replica_topology,
                              integrator.getStepSize().value_in_unit(unit.picoseconds), interval,
                              first_step=interval)  # the header names the first frame's step
    thermometer = _Thermometer(batch)
    wall = _produce(context, batch, writers, thermometer, steps, interval, progress)
    return {"trajectories": [writer.path for writer in writers], "replicas": batch.num_replicas, "steps": steps,
            "equilibration_steps": int(s["ensemble_equilibration_steps"]), "ms_per_step": ms, "wall_s": wall,
            "aggregate_steps_per_s": steps * batch.num_replicas / wall,
            "temperatures_k": np.asarray(thermometer.temperatures), "potential_per_replica_kj_mol":
            np.asarray(thermometer.potentials), "frame_interval_ps": interval * s["ensemble_timestep_fs"] / FS_PER_PS}


def run_reference_ensemble(topology, starts_nm, settings, steps, seed, out_dir):
    """The same protocol with amber14 (vacuum, no cutoff, no constraints): one Context per replica, the same
    starts, temperature, friction, time step, minimization, equilibration and production length, seeded.

    Parameters
    ----------
    topology : openmm.app.Topology
    starts_nm : array, shape (R, n, 3)
    settings : dict
    steps : int
        Production steps per replica (the NNForce ensemble's).
    seed : int
    out_dir : str
        Gets ``replica_0000.dcd`` ... (frames every ``ensemble_trajectory_interval`` steps).

    Returns
    -------
    dict
        ``trajectories`` (paths), ``wall_s``.

    Examples
    --------
    >>> run_reference_ensemble(topology, starts, SETTINGS["small"], 800, 1, "reference")  # doctest: +SKIP
    """
    import mdtraj
    import openmm
    from openmm import app, unit

    from .._io import atomic_save, make_output_dir
    from ..simulate.replicas import replica_file_name

    s = settings
    make_output_dir(out_dir)
    forcefield = app.ForceField("amber14-all.xml")
    system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
    temperature = s["ensemble_temperature_k"] * unit.kelvin
    interval = int(s["ensemble_trajectory_interval"])
    md_topology = mdtraj.Topology.from_openmm(topology)
    paths, began = [], time.perf_counter()
    for k, start in enumerate(np.asarray(starts_nm, dtype=np.float64)):
        integrator = openmm.LangevinMiddleIntegrator(temperature, _equilibration_friction(s) / unit.picosecond,
                                                     s["ensemble_timestep_fs"] * unit.femtoseconds)
        integrator.setRandomNumberSeed(_seed31(seed, 1000 + k))
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPositions(start * unit.nanometer)
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, int(s["ensemble_minimize_iterations"]))
        context.setVelocitiesToTemperature(temperature, _seed31(seed, 2000 + k))
        integrator.step(int(s["ensemble_equilibration_steps"]))
        integrator.setFriction(s["ensemble_friction_per_ps"] / unit.picosecond)
        frames = []
        for _ in range(int(steps) // interval):
            integrator.step(interval)
            frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
        del context, integrator
        path = os.path.join(out_dir, replica_file_name(k))
        traj = mdtraj.Trajectory(np.asarray(frames, dtype=np.float32), md_topology)
        atomic_save(path, traj.save_dcd)
        paths.append(path)
    return {"trajectories": paths, "wall_s": time.perf_counter() - began}
