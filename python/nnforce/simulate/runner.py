"""The run: build (or take) the System, start or resume, integrate in segments between reporting, trajectory and
checkpoint events, and summarise. :func:`run` is the entry point."""
import hashlib
import json
import math
import os
import sys
import time
from typing import Any, Dict

from .._io import atomic_write, make_output_dir
from ..contract import inspect_model
from ..units import ns_per_day, temperature_k
from .config import CHECKPOINT_NAME, CHECKPOINT_STATE_NAME, CSV_COLUMNS, CSV_NAME, UNCERTAINTY_COLUMNS, SimulationConfig, equilibration_friction
from .outputs import (EnergyLog, TrajectoryWriter, energy_drift, fingerprint, read_checkpoint, read_checkpoint_state,
                      temperature_warning, write_json)
from .system import build_system, degrees_of_freedom, get_platform, load_structure, make_integrator
from .threads import apply_thread_defaults


class _Session:
    """One simulation's live state: the OpenMM Simulation and the files it writes."""

    def __init__(self, config, topology, system, info, platform, properties):
        from openmm import app

        self.config = config
        self.topology = topology
        self.output_dir = os.fspath(config.output_dir)
        make_output_dir(self.output_dir)
        self.csv_path = os.path.join(self.output_dir, CSV_NAME)
        self.checkpoint_path = os.path.join(self.output_dir, CHECKPOINT_NAME)
        self.state_path = os.path.join(self.output_dir, CHECKPOINT_STATE_NAME)
        self.trajectory_path = None
        if config.trajectory is not None:
            self.trajectory_path = config.trajectory if os.path.isabs(config.trajectory) else os.path.join(
                self.output_dir, config.trajectory)
        self.integrator = make_integrator(config)
        self.simulation = app.Simulation(topology, system, self.integrator, platform, properties)
        self.context = self.simulation.context
        self.fingerprint = fingerprint(config, info, topology.getNumAtoms(), topology)
        self.equilibration = int(config.equilibration_steps)
        self.total = self.equilibration + int(config.steps)
        self.dt_ps = config.timestep_ps
        self.dof = degrees_of_freedom(system)
        self.periodic = system.usesPeriodicBoundaryConditions()  # (OpenMM would wrap a non-periodic system too)
        self.log = EnergyLog(self.csv_path)
        self.committee = _Committee(system, config)
        self.trajectory = None
        if self.trajectory_path is not None:
            self.trajectory = TrajectoryWriter(self.trajectory_path, topology, self.dt_ps, config.trajectory_interval,
                                               self.equilibration)

    def resume(self):
        """Continue from the checkpoint in the output folder; returns its step, or None when there is none.

        The checkpoint is loaded only when its bytes hash to the SHA-256 recorded beside it in
        ``checkpoint.json``: a truncated, damaged or mismatched ``checkpoint.chk`` is refused, naming the file.
        """
        if not (os.path.isfile(self.checkpoint_path) and os.path.isfile(self.state_path)):
            print(f"nnforce simulate: no checkpoint in {self.output_dir}, starting from the beginning",
                  file=sys.stderr)
            return None
        saved = read_checkpoint_state(self.state_path)
        changed = {k: (saved["fingerprint"].get(k), v) for k, v in self.fingerprint.items()
                   if saved["fingerprint"].get(k) != v and (k != "topology_sha256" or k in saved["fingerprint"])}
        if "topology_sha256" in changed:
            raise ValueError(f"resume: the checkpoint in {self.output_dir} was written for another structure (same "
                             f"{self.topology.getNumAtoms()} atoms, but other atoms, order or bonds than "
                             f"{self.config.pdb or 'the topology given'}); resume with the original structure, or start "
                             "a new run in another output directory")
        if changed:
            raise ValueError("resume: the checkpoint in {} was written with different settings {}; use the "
                             "original settings or a new output directory".format(
                                 self.output_dir, ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())))
        data = read_checkpoint(self.checkpoint_path, saved, self.state_path)
        import openmm

        try:
            self.context.loadCheckpoint(data)
        except openmm.OpenMMException as error:
            raise ValueError(f"resume: {self.checkpoint_path} could not be loaded ({error}); start again without "
                             "--resume") from None
        step = int(saved["step"])
        self.simulation.currentStep = step
        self._set_friction(step)
        self.log.load_until(step)
        if self.trajectory is not None:
            self.trajectory.start(int(saved.get("trajectory_frames", 0)) if step > self.equilibration else 0)
        return step

    def _set_friction(self, step):
        """Langevin friction for the phase ``step`` is in: the equilibration friction before production."""
        if self.config.integrator != "langevin-middle":
            return
        from openmm import unit

        friction = self.config.friction_per_ps
        if step < self.equilibration:
            friction = equilibration_friction(self.config)
        self.integrator.setFriction(friction / unit.picosecond)

    def start(self, positions):
        """Set positions, minimise (if asked) and draw velocities."""
        import openmm
        from openmm import unit

        config = self.config
        self.context.setPositions(positions)
        if config.minimize:
            openmm.LocalEnergyMinimizer.minimize(
                self.context, config.minimize_tolerance_kj_mol_nm * unit.kilojoule_per_mole / unit.nanometer,
                int(config.minimize_max_iterations))
        self.context.setVelocitiesToTemperature(config.temperature_k * unit.kelvin, int(config.seed))
        self.simulation.currentStep = 0
        self._set_friction(0)
        if self.trajectory is not None and self.equilibration == 0:
            self.trajectory.start()

    def save_checkpoint(self, step):
        """Flush the outputs, then write the OpenMM checkpoint and what had been written at ``step``."""
        if self.trajectory is not None:
            self.trajectory.sync()
        self.log.flush()
        data = self.context.createCheckpoint()
        with atomic_write(self.checkpoint_path, "wb") as handle:
            handle.write(data)
        write_json(self.state_path, {"step": step, "fingerprint": self.fingerprint,
                                     "trajectory_frames": 0 if self.trajectory is None else self.trajectory.frames,
                                     "checkpoint_sha256": hashlib.sha256(data).hexdigest(),
                                     "trajectory_interval": self.config.trajectory_interval,
                                     "report_interval": self.config.report_interval})

    def report(self, step, speed):
        """One CSV row; a non-finite energy stops the run with an explanation."""
        from openmm import unit

        state = self.context.getState(getEnergy=True)
        potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        row = {"step": step, "time_ps": f"{step * self.dt_ps:.6f}", "potential_kj_mol": repr(potential),
               "kinetic_kj_mol": repr(kinetic), "total_kj_mol": repr(potential + kinetic),
               "temperature_k": f"{temperature_k(kinetic, self.dof):.4f}", "ns_per_day": f"{speed:.4f}"}
        row.update(self.committee.read(self.context, step, self.log))  # the evaluation getState just made
        self.log.add(row)
        if not math.isfinite(potential):
            raise ValueError(f"the energy became {potential} at step {step}: the simulation blew up (try a "
                             "smaller time step, minimisation, or check the model's elements and units)")

    def next_event(self, step):
        """The next step at which something is reported, written or checkpointed."""
        config = self.config
        events = [self.total]
        if step < self.equilibration:
            events.append(self.equilibration)
        else:
            events.append((step // config.report_interval + 1) * config.report_interval)
            if self.trajectory is not None:
                since = (step - self.equilibration) % config.trajectory_interval
                events.append(step + config.trajectory_interval - since)
        if config.checkpoint_interval:
            events.append((step // config.checkpoint_interval + 1) * config.checkpoint_interval)
        return min(e for e in events if e > step)

    def at_event(self, step, speed, bar):
        """What happens when integration reaches ``step``: reports, frames, checkpoints."""
        config = self.config
        if step == self.equilibration and self.equilibration > 0:
            bar.set_description("production")
            self._set_friction(step)
            if self.trajectory is not None and not self.trajectory.started:
                self.trajectory.start()
            self.report(step, speed)
        elif step > self.equilibration:
            if (step - self.equilibration) % config.report_interval == 0 or step == self.total:
                self.report(step, speed)
            if self.trajectory is not None and (step - self.equilibration) % config.trajectory_interval == 0:
                self.trajectory.write(self.context.getState(getPositions=True, enforcePeriodicBox=self.periodic))
        if config.checkpoint_interval and step % config.checkpoint_interval == 0:
            self.save_checkpoint(step)

    def integrate(self):
        """Run to the last step; returns (final step, speed in ns/day)."""
        from tqdm import tqdm

        step = self.simulation.currentStep
        bar = tqdm(total=self.total, initial=step, unit="step", disable=not self.config.progress,
                   dynamic_ncols=True, desc="equilibration" if step < self.equilibration else "production")
        wall_start = time.perf_counter()
        steps_run, speed = 0, 0.0
        try:
            if step == 0 and self.total > 0 and self.equilibration == 0:
                self.report(0, 0.0)
            while step < self.total and self.committee.stopped_at is None:
                target = self.next_event(step)
                self.integrator.step(target - step)
                steps_run += target - step
                step = self.simulation.currentStep = target
                bar.update(target - bar.n)
                speed = ns_per_day(steps_run, self.dt_ps, time.perf_counter() - wall_start)
                bar.set_postfix_str(f"{speed:.3g} ns/day")
                self.at_event(step, speed, bar)
            self.save_checkpoint(step)
        finally:
            bar.close()
            if self.trajectory is not None:
                self.trajectory.close()
            self.log.flush()
        return step, speed

    def summary(self, step, speed, platform, resumed_from):
        """The result dict of :func:`run` (also written as ``result.json``), and ``final.pdb``."""
        import numpy as np
        from openmm import app, unit

        config, topology = self.config, self.topology
        state = self.context.getState(getPositions=True, getEnergy=True, enforcePeriodicBox=self.periodic)
        final_pdb = os.path.join(self.output_dir, "final.pdb")
        with atomic_write(final_pdb, "w") as handle:
            app.PDBFile.writeFile(topology, state.getPositions(), handle, keepIds=True)
        production = [row for row in self.log.rows if int(row["step"]) >= self.equilibration]
        times = [float(r["time_ps"]) for r in production]
        totals = [float(r["total_kj_mol"]) for r in production]
        result = {
            "steps": int(config.steps), "equilibration_steps": self.equilibration, "final_step": step,
            "time_ps": step * self.dt_ps, "ns_per_day": speed, "resumed_from_step": resumed_from,
            "platform": platform.getName(), "integrator": config.integrator, "num_atoms": topology.getNumAtoms(),
            "final_potential_kj_mol": state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            "temperature_mean_k": (float(np.mean([float(r["temperature_k"]) for r in production]))
                                   if production else None),
            "energy_drift_kj_mol_ps_atom": (energy_drift(times, totals, topology.getNumAtoms())
                                            if config.integrator == "verlet" else None),
            "energy_csv": self.csv_path, "trajectory": self.trajectory_path, "checkpoint": self.checkpoint_path,
            "final_pdb": final_pdb,
        }
        result["temperature_warning"] = (
            temperature_warning([float(r["temperature_k"]) for r in production], config.temperature_k, self.dof,
                                (times[-1] - times[0]) if times else 0.0, config.friction_per_ps)
            if config.integrator == "langevin-middle" else None)
        result.update(self.committee.summary())
        write_json(os.path.join(self.output_dir, "result.json"), result)
        result["positions_nm"] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        return result


class _Committee:
    """The committee uncertainty of each reported frame: the ``"uncertainty"`` output of the System's NNForce
    (a model returning it, :class:`nnforce.models.Committee`), read with ``NNForce.getOutput`` after the
    evaluation the report made; past ``uncertainty_threshold_kj_mol`` a frame is flagged or the run stops."""

    def __init__(self, system, config):
        import nnforce

        self.forces = [nnforce.NNForce.cast(f) for f in system.getForces() if nnforce.NNForce.isinstance(f)]
        self.threshold = config.uncertainty_threshold_kj_mol
        self.stop = config.uncertainty_action == "stop"
        self.force = None
        self.checked = False
        self.values, self.flagged = [], 0
        self.stopped_at = None

    def _find(self, context, log):
        """At the first report: the force returning "uncertainty" (adds the CSV columns), or None."""
        self.checked = True
        for force in self.forces:
            if "uncertainty" in force.getOutputNames(context):
                self.force = force
                log.columns = CSV_COLUMNS + UNCERTAINTY_COLUMNS
                return
        if self.threshold is not None:
            raise ValueError("uncertainty_threshold_kj_mol needs a model returning an \"uncertainty\" output "
                             "(a committee: nnforce.export.export_committee or `nnforce learn`); this model returns "
                             + (", ".join(self.forces[0].getOutputNames(context)) if self.forces else "no NNForce"))

    def read(self, context, step, log):
        """The CSV entries of this frame ({} without a committee)."""
        if not self.checked:
            self._find(context, log)
        if self.force is None:
            return {}
        value = float(self.force.getOutput(context, "uncertainty"))
        self.values.append(value)
        flagged = self.threshold is not None and not value <= self.threshold
        self.flagged += int(flagged)
        if flagged and self.stop and self.stopped_at is None:
            self.stopped_at = step
            print(f"nnforce simulate: committee uncertainty {value:.4g} kJ/mol > {self.threshold:g} at step {step}: "
                  "stopping", file=sys.stderr)
        return {"uncertainty_kj_mol": repr(value), "flagged": int(flagged)}

    def summary(self):
        """Entries for result.json (none without a committee)."""
        if self.force is None:
            return {}
        return {"uncertainty_max_kj_mol": max(self.values) if self.values else None,
                "uncertainty_mean_kj_mol": sum(self.values) / len(self.values) if self.values else None,
                "flagged_frames": self.flagged, "stopped_by_uncertainty_at_step": self.stopped_at}


def run(config: SimulationConfig, system=None) -> Dict[str, Any]:
    """Build (unless ``system`` is given), minimise, equilibrate and run; return a summary.

    Parameters
    ----------
    config : SimulationConfig
    system : openmm.System, optional
        Run this prepared System instead of building one from the model (which is then not used).

    Returns
    -------
    dict
        ``steps``, ``time_ps``, ``ns_per_day``, ``final_potential_kj_mol``, ``temperature_mean_k``,
        ``energy_drift_kj_mol_ps_atom`` (verlet only), ``resumed_from_step``, the output paths
        (``energy_csv``, ``trajectory``, ``checkpoint``, ``final_pdb``) and ``positions_nm`` (final positions).

    Examples
    --------
    >>> result = run(SimulationConfig(model="model.pt", pdb="mol.pdb", steps=1000))  # doctest: +SKIP
    >>> result["final_step"]  # doctest: +SKIP
    1000
    """
    platform, properties = get_platform(config.platform, config.precision)
    if config.threads is not None and int(config.threads) < 1:
        raise ValueError(f"threads must be >= 1, got {config.threads}")
    topology, positions = load_structure(config)
    properties = dict(properties)
    apply_thread_defaults(config.threads, _num_model_atoms(config, topology),
                          system is None and config.forcefield is None, platform.getName(), properties)
    if system is None:
        info = inspect_model(config.model)
        system = build_system(config, topology, info)
    else:
        info = {"sha256": "custom-system"}
    session = _Session(config, topology, system, info, platform, properties)
    resumed_from = session.resume() if config.resume else None
    if resumed_from is None:
        session.start(positions)
    step, speed = session.integrate()
    return session.summary(step, speed, platform, resumed_from)


def _num_model_atoms(config, topology):
    """The atoms the model sees: the ML region, or the whole structure."""
    if config.ml_atoms is None:
        return topology.getNumAtoms()
    try:
        from ..atoms import parse_atom_selection

        return len(parse_atom_selection(config.ml_atoms, topology))
    except ValueError:
        return topology.getNumAtoms()  # (build_system reports a bad selection)
