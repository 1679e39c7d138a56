"""Enhanced sampling of a peptide's backbone (phi, psi) that converges, and its exact reweighting (issue 25).

Two phases, the same for any potential (an NNForce student or teacher ``.pt2``, or an MM force field):

1. :func:`build_bias` -- well-tempered metadynamics on (phi, psi) with OpenMM's own ``openmm.app.Metadynamics``,
   one walker. Gaussians are dropped every ``frequency_steps`` with heights that shrink where the bias is already
   high (bias factor gamma), so the bias converges towards ``-(1 - 1/gamma) F(phi, psi)``: it fills the basins and
   lets the walker cross the barriers that plain MD at 300 K does not cross in nanoseconds.
2. :func:`run_biased_replicas` -- production under that bias **held fixed**: R replicas, each with its own
   ``CustomCVForce`` (a periodic ``Continuous2DFunction`` of its phi/psi), batched in one Context through
   :mod:`nnforce.simulate.replicas` when the potential is one NNForce. A static bias makes the reweighting exact:
   a frame's unbiased weight is ``exp(+V(phi, psi)/kT)`` (:func:`frame_weights`), with no time-dependent
   correction (metadynamics' own frames would need one, since its bias changes while it runs).

Then :func:`reweighted_fes` (the phi/psi free energy in kT), :func:`basin_populations` (the four basins of
:data:`nnforce.demo.measure.BASINS` with 95% bootstrap intervals over replicas) and :func:`fes_rms_difference`
(student vs teacher over the bins within 4 kT of the minimum).

A Markov model built on the phase-2 trajectories describes the **biased** dynamics: its implied timescales are
those of the biased system, not of the molecule; its stationary distribution becomes the unbiased one by
reweighting each state, ``pi_i ~ pi_b,i <exp(V/kT)>_i`` (:func:`reweight_stationary`).

The settings are :class:`SamplingProtocol`; its defaults are the protocol (frozen once tuned; see docs/demo.md).
Only the lengths (``metad_steps``, ``replicas``, ``production_steps``) may differ between a student and the
teacher's reference.

Examples
--------
>>> protocol = SamplingProtocol(metad_steps=2000, replicas=4, production_steps=500)  # doctest: +SKIP
>>> bias = build_bias(system, topology, positions_nm, protocol, seed=1)  # doctest: +SKIP
>>> production = run_biased_replicas(system, topology, pick_starts(bias, 4, seed=2), bias, protocol, seed=3)  # doctest: +SKIP
>>> weights = frame_weights(production.bias_kj_mol, protocol.temperature_k)  # doctest: +SKIP
>>> fes = reweighted_fes(production.phi_rad, production.psi_rad, weights, protocol.temperature_k)  # doctest: +SKIP
"""
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..units import MOLAR_GAS_CONSTANT_KJ_MOL_K
from .bias_geometry import (_check_bias_grid, _copy_system, _grid, _kinetic_temperature,  # noqa: F401
                            _open_writers, _platform_properties, _positions, _seed31, _Clock, backbone_torsions,
                            bias_at, biased_replica_systems, dihedrals, repartition_hydrogen_mass,
                            step_replica_groups)
from .reweighting import (TEACHER_FES, basin_populations, fes_comparison, fes_noise,  # noqa: F401
                          fes_rms_difference, frame_weights, load_teacher_fes, reweight_stationary, reweighted_fes)

__all__ = ["SamplingProtocol", "BiasResult", "ProductionResult", "backbone_torsions", "build_bias",
           "run_biased_replicas", "pick_starts", "frame_weights", "reweighted_fes", "basin_populations",
           "fes_rms_difference", "fes_comparison", "fes_noise", "reweight_stationary", "bias_at",
           "repartition_hydrogen_mass", "dihedrals", "biased_replica_systems", "TEACHER_FES", "load_teacher_fes"]


@dataclass
class SamplingProtocol:
    """Issue 25's sampling protocol. The defaults ARE the protocol (the same for student and teacher); only the
    lengths ``metad_steps``, ``replicas`` and ``production_steps`` may differ between runs, and are recorded beside
    each result.

    Attributes
    ----------
    temperature_k, timestep_fs, friction_per_ps : float
        Langevin (``LangevinMiddleIntegrator``) dynamics, both phases.
    hydrogen_mass_amu : float
        Hydrogen mass repartitioning: each H gets this mass, taken from the heavy atom it is bonded to (no
        constraints; what makes the 2 fs step stable). ``None`` or the element's own mass leaves masses alone.
    bias_factor, height_kj_mol, sigma_rad, frequency_steps, grid_width : phase 1
        Well-tempered metadynamics on (phi, psi) (``openmm.app.Metadynamics``): bias factor gamma, initial Gaussian
        height, Gaussian width (both angles), steps between Gaussians, points of the periodic bias grid per axis.
    metad_steps : int
        Length of phase 1 (one walker).
    replicas, production_steps : int
        Phase 2: replicas under the frozen bias, steps per replica.
    report_interval_steps : int
        Steps between saved frames, both phases.
    """

    temperature_k: float = 300.0
    timestep_fs: float = 2.0
    hydrogen_mass_amu: Optional[float] = 3.0
    friction_per_ps: float = 1.0
    bias_factor: float = 10.0
    height_kj_mol: float = 2.5
    sigma_rad: float = 0.35
    frequency_steps: int = 100
    grid_width: int = 48
    metad_steps: int = 100_000
    replicas: int = 16
    production_steps: int = 10_000
    report_interval_steps: int = 50

    def __post_init__(self):
        positive = ["temperature_k", "timestep_fs", "friction_per_ps", "height_kj_mol", "sigma_rad"]
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"SamplingProtocol.{name} must be a positive number, got {value!r}")
        for name in ["frequency_steps", "metad_steps", "replicas", "production_steps", "report_interval_steps"]:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"SamplingProtocol.{name} must be a positive whole number, got {value!r}")
        if isinstance(self.grid_width, bool) or not isinstance(self.grid_width, (int, np.integer)) or self.grid_width < 4:
            raise ValueError(f"SamplingProtocol.grid_width must be a whole number >= 4, got {self.grid_width!r}")
        if not isinstance(self.bias_factor, (int, float)) or not self.bias_factor > 1.0:
            raise ValueError(f"SamplingProtocol.bias_factor must be > 1 (well-tempered), got {self.bias_factor!r}")
        if self.hydrogen_mass_amu is not None and not (isinstance(self.hydrogen_mass_amu, (int, float))
                                                       and 0 < self.hydrogen_mass_amu < 6):
            raise ValueError(f"SamplingProtocol.hydrogen_mass_amu must be None or between 0 and 6 amu, got "
                             f"{self.hydrogen_mass_amu!r}")

    @property
    def kt_kj_mol(self):
        """k_B T in kJ/mol."""
        return MOLAR_GAS_CONSTANT_KJ_MOL_K * self.temperature_k

    def as_dict(self):
        """The settings as a plain dict (for result files)."""
        return dataclasses.asdict(self)


@dataclass
class BiasResult:
    """Phase 1's result (:func:`build_bias`).

    Attributes
    ----------
    bias_kj_mol : numpy.ndarray, [W, W]
        The metadynamics bias V on OpenMM's periodic grid, ``bias_kj_mol[i, j]`` at ``(phi_i, psi_j)`` with
        ``grid_rad[i] = -pi + 2 pi i / (W - 1)`` (the last point repeats the first: the form a periodic
        ``Continuous2DFunction`` takes).
    grid_rad : numpy.ndarray, [W]
    phi_rad, psi_rad : numpy.ndarray, [F]
        The walker every ``report_interval_steps``.
    frames_nm : numpy.ndarray, [F, N, 3]
        The walker's positions at the same steps (starts for phase 2, :func:`pick_starts`).
    free_energy_kj_mol : numpy.ndarray, [W, W]
        Metadynamics' own estimate ``-(gamma / (gamma - 1)) V`` (for a look; phase 2 is the measurement).
    temperature_k : numpy.ndarray, [F]
        The walker's kinetic temperature at each frame (3N degrees of freedom; a check of the time step).
    ms_per_step, wall_s, cpu_s : float
    steps : int
    protocol : dict
    seed : int
    """

    bias_kj_mol: np.ndarray
    grid_rad: np.ndarray
    phi_rad: np.ndarray
    psi_rad: np.ndarray
    frames_nm: np.ndarray
    free_energy_kj_mol: np.ndarray
    temperature_k: np.ndarray
    ms_per_step: float
    wall_s: float
    cpu_s: float
    steps: int
    protocol: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0


@dataclass
class ProductionResult:
    """Phase 2's result (:func:`run_biased_replicas`); per-frame arrays are [R, T] (replica, frame).

    Attributes
    ----------
    phi_rad, psi_rad : numpy.ndarray, [R, T]
    bias_kj_mol : numpy.ndarray, [R, T]
        V(phi, psi) of each frame, the bias the replica felt there (for :func:`frame_weights`).
    positions_nm : numpy.ndarray, [R, T, N, 3]
    temperature_k : numpy.ndarray, [T]
        Kinetic temperature of all replicas together at each frame (3N per replica).
    dcd_paths : list of str
        ``out_dir/replica_0000.dcd`` ... (empty without ``out_dir``).
    ms_per_step : float
        Wall milliseconds per step of all replicas together.
    wall_s, cpu_s : float
    steps : int
        Steps per replica.
    batched : bool
        True when the replicas ran in one Context (an NNForce System), False for one Context per replica.
    frame_interval_ps : float
    """

    phi_rad: np.ndarray
    psi_rad: np.ndarray
    bias_kj_mol: np.ndarray
    positions_nm: np.ndarray
    temperature_k: np.ndarray
    dcd_paths: List[str]
    ms_per_step: float
    wall_s: float
    cpu_s: float
    steps: int
    batched: bool
    frame_interval_ps: float
    protocol: Dict[str, Any] = field(default_factory=dict)
    seed: int = 0


# phase 1


def _integrator(protocol, seed, stream):
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(protocol.temperature_k * unit.kelvin,
                                                 protocol.friction_per_ps / unit.picosecond,
                                                 protocol.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(_seed31(seed, stream))
    return integrator


def _check_frame(x, step, protocol, what):
    if not np.isfinite(x).all():
        raise RuntimeError(f"{what} blew up at step {step} (positions not finite): the time step "
                           f"{protocol.timestep_fs} fs is too long for this potential")


def build_bias(system, topology, positions_nm, protocol: SamplingProtocol = None, seed=0, platform="CPU",
               progress=None, max_wall_s=None) -> BiasResult:
    """Phase 1: well-tempered metadynamics on (phi, psi), one walker, ``protocol.metad_steps`` steps.

    The System is copied (hydrogen masses repartitioned, the bias force added to the copy); the walker is
    minimised (200 iterations), given velocities at the temperature (seeded) and run with
    ``openmm.app.Metadynamics`` under a seeded ``LangevinMiddleIntegrator``.

    Parameters
    ----------
    system : openmm.System
        The molecule's potential (NNForce or MM); not modified.
    topology : openmm.app.Topology
        With backbone atom names (:func:`backbone_torsions`) and bonds (for hydrogen mass repartitioning).
    positions_nm : array [N, 3] or Quantity
    protocol : SamplingProtocol
    seed : int
    platform : str
        OpenMM platform name (CPU runs with one thread).
    progress : callable, optional
        Called as ``progress(step, total)`` after every saved frame.
    max_wall_s : float, optional
        Stop at the first saved frame after this many seconds (``steps`` records how far it got).

    Returns
    -------
    BiasResult
    """
    import openmm
    from openmm import app, unit

    protocol = SamplingProtocol() if protocol is None else protocol
    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System {n} particles")
    start = _positions(positions_nm, n, "positions_nm")
    if start.ndim != 2:
        raise ValueError(f"positions_nm: one structure [N, 3] starts the walker, got shape {start.shape}")
    phi_atoms, psi_atoms = backbone_torsions(topology)
    work = repartition_hydrogen_mass(_copy_system(system), topology, protocol.hydrogen_mass_amu)
    variables = []
    for atoms in (phi_atoms, psi_atoms):
        torsion = openmm.CustomTorsionForce("theta")
        torsion.addTorsion(*atoms, [])
        variables.append(app.BiasVariable(torsion, -math.pi, math.pi, protocol.sigma_rad, periodic=True,
                                          gridWidth=protocol.grid_width))
    meta = app.Metadynamics(work, variables, protocol.temperature_k * unit.kelvin, protocol.bias_factor,
                            protocol.height_kj_mol * unit.kilojoule_per_mole, protocol.frequency_steps)
    simulation = app.Simulation(topology, work, _integrator(protocol, seed, 1),
                                openmm.Platform.getPlatformByName(platform), _platform_properties(platform))
    simulation.context.setPositions(start * unit.nanometer)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(protocol.temperature_k * unit.kelvin, _seed31(seed, 2))
    interval, total = protocol.report_interval_steps, protocol.metad_steps
    frames, temperatures, done, clock = [], [], 0, _Clock()
    while done < total and not (max_wall_s is not None and clock.read()[0] > max_wall_s):
        chunk = min(interval, total - done)
        meta.step(simulation, chunk)
        done += chunk
        if done % interval == 0:
            state = simulation.context.getState(getPositions=True, getEnergy=True)
            frames.append(np.array(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)))
            _check_frame(frames[-1], done, protocol, "metadynamics")
            temperatures.append(_kinetic_temperature(state, n))
            if progress is not None:
                progress(done, total)
    wall, cpu = clock.read()
    frames_nm = np.array(frames).reshape(-1, n, 3)
    gamma = protocol.bias_factor
    free = np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)).T  # [phi, psi]
    return BiasResult(bias_kj_mol=-free * (gamma - 1.0) / gamma, grid_rad=_grid(protocol.grid_width),
                      phi_rad=dihedrals(frames_nm, phi_atoms), psi_rad=dihedrals(frames_nm, psi_atoms),
                      frames_nm=frames_nm, free_energy_kj_mol=free, temperature_k=np.array(temperatures),
                      ms_per_step=1000.0 * wall / max(done, 1), wall_s=wall, cpu_s=cpu,
                      steps=int(done), protocol=protocol.as_dict(), seed=int(seed))


def pick_starts(bias: BiasResult, replicas, seed=0, skip_fraction=0.5):
    """``replicas`` starting structures for phase 2: walker frames drawn without replacement (seeded) from the last
    ``1 - skip_fraction`` of phase 1, where the bias has nearly converged and the walker roams the biased
    distribution phase 2 samples. Returns [R, N, 3] nm."""
    frames = np.asarray(bias.frames_nm)
    if len(frames) == 0:
        raise ValueError("the bias has no walker frames (metad_steps < report_interval_steps?)")
    pool = np.arange(int(len(frames) * skip_fraction), len(frames))
    chosen = np.random.default_rng(seed).choice(pool, size=replicas, replace=len(pool) < replicas)
    return frames[np.sort(chosen)]


# phase 2


def _start_contexts(batches, batched, protocol, seed, platform):
    """A Context per batch at its starts, velocities at the temperature (seeded)."""
    from openmm import unit

    from ..force import build_context

    contexts = []
    for g, batch in enumerate(batches):
        context = build_context(batch.system, _integrator(protocol, seed, 10 + g), platform,
                                _platform_properties(platform))
        context.setPositions(batch.positions if batched else batch.positions * unit.nanometer)
        context.setVelocitiesToTemperature(protocol.temperature_k * unit.kelvin, _seed31(seed, 1000 + g))
        contexts.append(context)
    return contexts


def _check_phase2(topology, n, starts_nm, protocol):
    """Phase 2's inputs checked; returns the starts [R, N, 3] nm."""
    if topology.getNumAtoms() != n:
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System {n} particles")
    starts = _positions(starts_nm, n, "starts_nm")
    if starts.ndim != 3 or len(starts) != protocol.replicas:
        raise ValueError(f"starts_nm: expected {protocol.replicas} starts (protocol.replicas) of shape [N, 3], got "
                         f"shape {starts.shape}; pick them with pick_starts(bias, protocol.replicas, seed)")
    if protocol.production_steps < protocol.report_interval_steps:
        raise ValueError(f"production_steps ({protocol.production_steps}) < report_interval_steps "
                         f"({protocol.report_interval_steps}): phase 2 would save no frame; run at least one interval")
    return starts


def run_biased_replicas(system, topology, starts_nm, bias, protocol: SamplingProtocol = None, seed=0, out_dir=None,
                        platform="CPU", progress=None, max_wall_s=None, workers=1) -> ProductionResult:
    """Phase 2: R replicas under the phase-1 bias held fixed, ``protocol.production_steps`` steps each.

    Each replica gets its own ``CustomCVForce`` ``table(phi, psi)`` (a periodic ``Continuous2DFunction`` of the
    bias grid) on its own atoms. A System whose potential is one NNForce runs all replicas in one Context
    (:func:`nnforce.simulate.replicas.replicate`, one model call per step); any other System (an MM reference)
    runs one Context per replica. Velocities at the temperature (seeded), then production from the starts (no
    minimisation: the starts are walker frames, already thermal), stepped by ``replicas.run_replica_steps``.

    Parameters
    ----------
    system : openmm.System
        One molecule; not modified.
    topology : openmm.app.Topology
    starts_nm : array [R, N, 3]
        R = ``protocol.replicas`` (:func:`pick_starts`).
    bias : BiasResult or array [W, W]
    protocol : SamplingProtocol
    seed : int
    out_dir : str, optional
        Where ``replica_0000.dcd`` ... go (a frame every ``report_interval_steps``).
    platform : str
    progress, max_wall_s
        As for :func:`build_bias`.
    workers : int
        An NNForce System's replicas split into this many Contexts (consecutive replicas, one model call per step
        each), stepped at once in as many threads (OpenMM releases the GIL while it steps): on a machine with that
        many free cores, about that many times the steps per second. The replicas' physics is the same; their
        random streams depend on the split (each Context is seeded by ``seed`` and its index). On the Reference
        platform, whose random numbers come from one process-wide generator, the Contexts step in turn.

    Returns
    -------
    ProductionResult
    """
    from openmm import unit

    protocol = SamplingProtocol() if protocol is None else protocol
    n = system.getNumParticles()
    starts = _check_phase2(topology, n, starts_nm, protocol)
    grid = _check_bias_grid(bias)
    batches, batched = biased_replica_systems(system, topology, starts, grid, protocol.hydrogen_mass_amu,
                                              groups=workers)
    interval, steps = protocol.report_interval_steps, protocol.production_steps
    writers = _open_writers(out_dir, batches, topology, protocol)
    contexts = _start_contexts(batches, batched, protocol, seed, platform)
    frames, temperatures = [[] for _ in batches], [[] for _ in batches]

    def observer(g):
        def observe(step, state):
            x = batches[g].split(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
            _check_frame(x, step, protocol, f"replica batch {g}")
            frames[g].append(x)
            temperatures[g].append(_kinetic_temperature(state, n * batches[g].num_replicas))
        return observe

    try:
        done, wall, cpu = step_replica_groups(contexts, batches, writers, observer, steps, interval,
                                              threaded=batched and platform != "Reference", progress=progress,
                                              max_wall_s=max_wall_s)
    finally:
        for writer in (w for group in writers for w in group):
            writer.close()
    positions_nm = np.concatenate([np.array(f).reshape(len(f), -1, n, 3) for f in frames], axis=1).swapaxes(0, 1)
    phi_atoms, psi_atoms = backbone_torsions(topology)
    phi, psi = dihedrals(positions_nm, phi_atoms), dihedrals(positions_nm, psi_atoms)
    return ProductionResult(phi_rad=phi, psi_rad=psi, bias_kj_mol=bias_at(grid, phi, psi), positions_nm=positions_nm,
                            temperature_k=np.mean(np.array(temperatures), axis=0),
                            dcd_paths=[w.path for group in writers for w in group],
                            ms_per_step=1000.0 * wall / max(done, 1), wall_s=wall, cpu_s=cpu, steps=int(done),
                            batched=batched, frame_interval_ps=interval * protocol.timestep_fs / 1000.0,
                            protocol=protocol.as_dict(), seed=int(seed))
