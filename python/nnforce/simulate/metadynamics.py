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
import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..units import MOLAR_GAS_CONSTANT_KJ_MOL_K

__all__ = ["SamplingProtocol", "BiasResult", "ProductionResult", "backbone_torsions", "build_bias",
           "run_biased_replicas", "pick_starts", "frame_weights", "reweighted_fes", "basin_populations",
           "fes_rms_difference", "fes_comparison", "fes_noise", "reweight_stationary", "bias_at",
           "repartition_hydrogen_mass", "dihedrals", "biased_replica_systems"]


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


# ---------------------------------------------------------------------------------------------------------------
# geometry


def backbone_torsions(topology) -> Tuple[List[int], List[int]]:
    """The atom indices of the backbone torsions phi (C(-1)-N-CA-C) and psi (N-CA-C-N(+1)) of a peptide's one
    residue that has both (alanine dipeptide: ACE C, ALA N, CA, C, NME N).

    Parameters
    ----------
    topology : openmm.app.Topology
        Atoms named N, CA, C (PDB names) and bonds (C(-1)-N and C-N(+1) are looked up through the bonds, or by
        residue order when the topology has no bonds).

    Returns
    -------
    tuple of two lists of 4 int

    Raises
    ------
    ValueError
        No residue with both phi and psi (not a peptide, or missing atoms), or more than one (the 2D bias needs
        one (phi, psi) pair: pass a dipeptide).

    Examples
    --------
    >>> from nnforce.demo import alanine_dipeptide
    >>> backbone_torsions(alanine_dipeptide()[0])
    ([4, 6, 8, 14], [6, 8, 14, 16])
    """
    residues = list(topology.residues())
    bonded = set()
    for a, b in topology.bonds():
        bonded.add((a.index, b.index))
        bonded.add((b.index, a.index))
    names = [{atom.name: atom.index for atom in residue.atoms()} for residue in residues]
    found = []
    for k, residue in enumerate(residues):
        atoms = names[k]
        if not all(name in atoms for name in ("N", "CA", "C")):
            continue
        n, ca, c = atoms["N"], atoms["CA"], atoms["C"]
        before = names[k - 1].get("C") if k > 0 and residues[k - 1].chain is residue.chain else None
        after = names[k + 1].get("N") if k + 1 < len(residues) and residues[k + 1].chain is residue.chain else None
        if bonded:
            before = before if before is not None and (before, n) in bonded else None
            after = after if after is not None and (c, after) in bonded else None
        if before is not None and after is not None:
            found.append(([before, n, ca, c], [n, ca, c, after]))
    if not found:
        raise ValueError("the topology has no residue with both backbone torsions phi (C-N-CA-C) and psi (N-CA-C-N): "
                         "the (phi, psi) bias needs a peptide with capped ends, e.g. alanine dipeptide (ACE-ALA-NME) "
                         "with PDB atom names N, CA, C")
    if len(found) > 1:
        raise ValueError(f"the topology has {len(found)} residues with both phi and psi; the (phi, psi) bias acts on "
                         "one pair: give a dipeptide (one residue between caps)")
    return found[0]


def dihedrals(positions_nm, quartet):
    """Dihedral angles (radians, IUPAC sign, OpenMM's convention) of atoms ``quartet`` in every frame.

    Parameters
    ----------
    positions_nm : array, [..., N, 3]
    quartet : sequence of 4 int

    Returns
    -------
    numpy.ndarray, [...]
    """
    x = np.asarray(positions_nm, dtype=np.float64)
    a, b, c, d = (x[..., i, :] for i in quartet)
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, axis=-1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, axis=-1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, axis=-1), np.sum(v * w, axis=-1))


def repartition_hydrogen_mass(system, topology, hydrogen_mass_amu):
    """Give each hydrogen ``hydrogen_mass_amu``, taking the difference from the heavy atom it is bonded to
    (in place; the total mass is unchanged). ``None`` does nothing.

    Raises
    ------
    ValueError
        A heavy atom would be left with no mass.
    """
    from openmm import unit
    from openmm.app import element

    if hydrogen_mass_amu is None:
        return system
    for a, b in topology.bonds():
        if a.element is element.hydrogen and b.element is element.hydrogen:
            continue
        if b.element is element.hydrogen:
            a, b = b, a
        if a.element is not element.hydrogen:
            continue
        h_mass = system.getParticleMass(a.index).value_in_unit(unit.dalton)
        heavy_mass = system.getParticleMass(b.index).value_in_unit(unit.dalton)
        moved = hydrogen_mass_amu - h_mass
        if heavy_mass - moved <= 0:
            raise ValueError(f"hydrogen mass repartitioning to {hydrogen_mass_amu} amu leaves atom {b.index} "
                             f"({b.name}) with {heavy_mass - moved:.3f} amu: use a smaller hydrogen_mass_amu")
        system.setParticleMass(a.index, hydrogen_mass_amu)
        system.setParticleMass(b.index, heavy_mass - moved)
    return system


def _copy_system(system):
    import openmm

    return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))


def _seed31(seed, stream):
    """A seed for OpenMM (1 ... 2**31 - 1; 0 would mean 'random') from ``seed`` and a stream number."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative whole number, got {seed!r}")
    return int(np.random.SeedSequence([int(seed), int(stream)]).generate_state(1)[0] % (2 ** 31 - 2)) + 1


def _positions(positions_nm, n, what):
    from openmm import unit

    if unit.is_quantity(positions_nm):
        positions_nm = positions_nm.value_in_unit(unit.nanometer)
    x = np.asarray(positions_nm, dtype=np.float64)
    if x.shape[-2:] != (n, 3):
        raise ValueError(f"{what}: expected positions of shape [..., {n}, 3] (nm) for the {n}-atom System, got "
                         f"{x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what}: the positions are not all finite")
    return x


def _platform_properties(platform):
    return {"Threads": "1"} if platform == "CPU" else {}


def _is_single_nnforce(system):
    import nnforce

    forces = [system.getForce(i) for i in range(system.getNumForces())]
    return len(forces) == 1 and nnforce.NNForce.isinstance(forces[0])


def _kinetic_temperature(state, particles):
    from openmm import unit

    kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
    return 2.0 * kinetic / (3 * particles * MOLAR_GAS_CONSTANT_KJ_MOL_K)


class _Clock:
    def __init__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()

    def read(self):
        return time.perf_counter() - self.wall, time.process_time() - self.cpu


# ---------------------------------------------------------------------------------------------------------------
# the bias grid


def _grid(width):
    return -math.pi + 2.0 * math.pi * np.arange(width) / (width - 1)


def _check_bias_grid(bias_kj_mol, what="bias"):
    grid = np.asarray(getattr(bias_kj_mol, "bias_kj_mol", bias_kj_mol), dtype=np.float64)
    if grid.ndim != 2 or grid.shape[0] != grid.shape[1] or grid.shape[0] < 4:
        raise ValueError(f"{what}: expected a square bias grid [W, W] (W >= 4) over phi x psi, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError(f"{what}: the bias grid is not all finite")
    if not (np.allclose(grid[0], grid[-1], rtol=0, atol=1e-9) and np.allclose(grid[:, 0], grid[:, -1], rtol=0,
                                                                               atol=1e-9)):
        raise ValueError(f"{what}: a periodic bias grid repeats its first row/column as its last (points at -pi and "
                         "+pi); this one does not (build it with build_bias, or append the first row and column)")
    return grid


def _spline_weights(x_rad, width):
    """[F, width - 1] weights: a periodic cubic spline through values on the grid (the last point = the first) at
    ``x_rad`` is ``weights @ values[:-1]`` (the spline is linear in its data)."""
    from scipy.interpolate import CubicSpline

    grid = _grid(width)
    basis = np.eye(width - 1)
    basis = np.concatenate([basis, basis[:1]], axis=0)  # periodic: the last row repeats the first
    spline = CubicSpline(grid, basis, bc_type="periodic", axis=0)
    x = np.mod(np.asarray(x_rad, dtype=np.float64) + math.pi, 2.0 * math.pi) - math.pi
    return spline(x)


def bias_at(bias_kj_mol, phi_rad, psi_rad):
    """The bias at points (phi, psi) as OpenMM's periodic ``Continuous2DFunction`` interpolates it: the bicubic
    periodic spline (a periodic cubic spline along each axis).

    Parameters
    ----------
    bias_kj_mol : array [W, W] or BiasResult
    phi_rad, psi_rad : array, same shape

    Returns
    -------
    numpy.ndarray, the shape of ``phi_rad``
    """
    grid = _check_bias_grid(bias_kj_mol)
    phi, psi = np.broadcast_arrays(np.asarray(phi_rad, dtype=np.float64), np.asarray(psi_rad, dtype=np.float64))
    w = grid.shape[0]
    a = _spline_weights(phi.ravel(), w)
    b = _spline_weights(psi.ravel(), w)
    values = np.einsum("fi,ij,fj->f", a, grid[:-1, :-1], b)
    return values.reshape(phi.shape)


def _bias_force(grid, phi_atoms, psi_atoms, offset=0):
    """One CustomCVForce: the static bias table(phi, psi) of one replica (atoms shifted by ``offset``)."""
    import openmm

    force = openmm.CustomCVForce("table(phi, psi)")
    for name, atoms in (("phi", phi_atoms), ("psi", psi_atoms)):
        torsion = openmm.CustomTorsionForce("theta")
        torsion.addTorsion(*[a + offset for a in atoms], [])
        force.addCollectiveVariable(name, torsion)
    w = grid.shape[0]
    # Continuous2DFunction's values[i + xsize * j] = f(x_i, y_j): phi (x) fastest
    table = openmm.Continuous2DFunction(w, w, grid.T.ravel().tolist(), -math.pi, math.pi, -math.pi, math.pi, True)
    force.addTabulatedFunction("table", table)
    force.setName("phi/psi static bias")
    return force


# ---------------------------------------------------------------------------------------------------------------
# phase 1


def build_bias(system, topology, positions_nm, protocol: SamplingProtocol = None, seed=0, platform="CPU",
               progress=None, max_wall_s=None) -> BiasResult:
    """Phase 1: well-tempered metadynamics on (phi, psi), one walker, ``protocol.metad_steps`` steps.

    The System is copied (hydrogen masses repartitioned, the bias force added to the copy); the walker is
    minimised, given velocities at the temperature (seeded) and run with ``openmm.app.Metadynamics`` under a
    seeded ``LangevinMiddleIntegrator``.

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
    temperature = protocol.temperature_k * unit.kelvin
    meta = app.Metadynamics(work, variables, temperature, protocol.bias_factor,
                            protocol.height_kj_mol * unit.kilojoule_per_mole, protocol.frequency_steps)
    integrator = openmm.LangevinMiddleIntegrator(temperature, protocol.friction_per_ps / unit.picosecond,
                                                 protocol.timestep_fs * unit.femtosecond)
    integrator.setRandomNumberSeed(_seed31(seed, 1))
    simulation = app.Simulation(topology, work, integrator, openmm.Platform.getPlatformByName(platform),
                                _platform_properties(platform))
    simulation.context.setPositions(start * unit.nanometer)
    simulation.minimizeEnergy(maxIterations=200)
    simulation.context.setVelocitiesToTemperature(temperature, _seed31(seed, 2))
    interval = protocol.report_interval_steps
    frames, temperatures = [], []
    clock = _Clock()
    done = 0
    while done < protocol.metad_steps:
        chunk = min(interval, protocol.metad_steps - done)
        meta.step(simulation, chunk)
        done += chunk
        if done % interval == 0:
            state = simulation.context.getState(getPositions=True, getEnergy=True)
            x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            if not np.isfinite(x).all():
                raise RuntimeError(f"metadynamics blew up at step {done} (positions not finite): the time step "
                                   f"{protocol.timestep_fs} fs is too long for this potential")
            frames.append(np.array(x))
            temperatures.append(_kinetic_temperature(state, n))
            if progress is not None:
                progress(done, protocol.metad_steps)
            if max_wall_s is not None and clock.read()[0] > max_wall_s:
                break
    wall, cpu = clock.read()
    frames_nm = np.array(frames).reshape(-1, n, 3)
    gamma = protocol.bias_factor
    free = np.asarray(meta.getFreeEnergy().value_in_unit(unit.kilojoule_per_mole)).T  # [phi, psi]
    bias = -free * (gamma - 1.0) / gamma
    return BiasResult(bias_kj_mol=bias, grid_rad=_grid(protocol.grid_width),
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
    rng = np.random.default_rng(seed)
    chosen = rng.choice(pool, size=replicas, replace=len(pool) < replicas)
    return frames[np.sort(chosen)]


# ---------------------------------------------------------------------------------------------------------------
# phase 2


def biased_replica_systems(system, topology, starts_nm, bias, hydrogen_mass_amu=None):
    """The Systems phase 2 runs: R replicas of ``system`` (copied, hydrogen masses repartitioned), each replica
    with its own ``CustomCVForce`` ``table(phi, psi)`` on its own atoms.

    Returns
    -------
    tuple
        ``(groups, batched)``: ``groups`` is a list of ``(System, positions Quantity, replica indices)``, one
        System holding every replica (``batched``, when the potential is one NNForce) or one System per replica.
    """
    from openmm import unit

    from .replicas import replicate

    n = system.getNumParticles()
    starts = _positions(starts_nm, n, "starts_nm")
    if starts.ndim != 3:
        raise ValueError(f"starts_nm: expected [R, {n}, 3], got shape {starts.shape}")
    grid = _check_bias_grid(bias)
    phi_atoms, psi_atoms = backbone_torsions(topology)
    work = repartition_hydrogen_mass(_copy_system(system), topology, hydrogen_mass_amu)
    if _is_single_nnforce(work):
        batch = replicate(work, topology, list(starts))
        for k in range(len(starts)):
            batch.system.addForce(_bias_force(grid, phi_atoms, psi_atoms, offset=k * n))
        return [(batch.system, batch.positions, list(range(len(starts))))], True
    groups = []
    for k in range(len(starts)):
        single = _copy_system(work)
        single.addForce(_bias_force(grid, phi_atoms, psi_atoms))
        groups.append((single, starts[k] * unit.nanometer, [k]))
    return groups, False


def run_biased_replicas(system, topology, starts_nm, bias, protocol: SamplingProtocol = None, seed=0, out_dir=None,
                        platform="CPU", progress=None, max_wall_s=None) -> ProductionResult:
    """Phase 2: R replicas under the phase-1 bias held fixed, ``protocol.production_steps`` steps each.

    Each replica gets its own ``CustomCVForce`` ``table(phi, psi)`` (a periodic ``Continuous2DFunction`` of the
    bias grid) on its own atoms. A System whose potential is one NNForce runs all replicas in one Context
    (:func:`nnforce.simulate.replicas.replicate`, one model call per step); any other System (an MM reference)
    runs one Context per replica. Velocities at the temperature (seeded), then production from the starts (no
    minimisation: the starts are walker frames, already thermal).

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
    progress : callable, optional
        ``progress(step, total)`` after every saved frame.
    max_wall_s : float, optional
        Stop at the first saved frame after this many seconds (``steps`` records how far it got).

    Returns
    -------
    ProductionResult
    """
    import openmm
    from openmm import unit

    from ..force import build_context
    from .replicas import replica_writers

    protocol = SamplingProtocol() if protocol is None else protocol
    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System {n} particles")
    starts = _positions(starts_nm, n, "starts_nm")
    if starts.ndim != 3 or len(starts) != protocol.replicas:
        raise ValueError(f"starts_nm: expected {protocol.replicas} starts (protocol.replicas) of shape [N, 3], got "
                         f"shape {starts.shape}; pick them with pick_starts(bias, protocol.replicas, seed)")
    grid = _check_bias_grid(bias)
    phi_atoms, psi_atoms = backbone_torsions(topology)
    groups, batched = biased_replica_systems(system, topology, starts, grid, protocol.hydrogen_mass_amu)
    temperature = protocol.temperature_k * unit.kelvin
    interval = protocol.report_interval_steps
    steps = protocol.production_steps
    R = len(starts)
    writers = []
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        writers = replica_writers(out_dir, range(R), topology, protocol.timestep_fs / 1000.0, interval)
        for writer in writers:
            writer.start()
    frames = [[] for _ in range(R)]
    temperatures = np.zeros((steps // interval, len(groups)))
    contexts = []
    for g, (group_system, positions, members) in enumerate(groups):
        integrator = openmm.LangevinMiddleIntegrator(temperature, protocol.friction_per_ps / unit.picosecond,
                                                     protocol.timestep_fs * unit.femtosecond)
        integrator.setRandomNumberSeed(_seed31(seed, 10 + g))
        context = build_context(group_system, integrator, platform, _platform_properties(platform))
        context.setPositions(positions)
        context.setVelocitiesToTemperature(temperature, _seed31(seed, 1000 + g))
        contexts.append(context)
    clock = _Clock()
    try:
        done = 0
        while done < steps:
            chunk = min(interval - done % interval, steps - done)
            for g, context in enumerate(contexts):
                context.getIntegrator().step(chunk)
            done += chunk
            if done % interval:
                continue
            t = done // interval - 1
            for g, context in enumerate(contexts):
                state = context.getState(getPositions=True, getEnergy=True)
                x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer).reshape(-1, n, 3)
                if not np.isfinite(x).all():
                    raise RuntimeError(f"replicas {groups[g][2]} blew up at step {done} (positions not finite): the "
                                       f"time step {protocol.timestep_fs} fs is too long for this potential")
                for k, frame in zip(groups[g][2], x):
                    frames[k].append(np.array(frame))
                    if writers:
                        writers[k].write_positions(frame, None)
                temperatures[t, g] = _kinetic_temperature(state, n * len(groups[g][2]))
            if progress is not None:
                progress(done, steps)
            if max_wall_s is not None and clock.read()[0] > max_wall_s:
                break
    finally:
        for writer in writers:
            writer.close()
    wall, cpu = clock.read()
    temperatures = temperatures[:len(frames[0])]
    positions_nm = np.array(frames).reshape(R, -1, n, 3)
    phi, psi = dihedrals(positions_nm, phi_atoms), dihedrals(positions_nm, psi_atoms)
    return ProductionResult(phi_rad=phi, psi_rad=psi, bias_kj_mol=bias_at(grid, phi, psi), positions_nm=positions_nm,
                            temperature_k=temperatures.mean(axis=1), dcd_paths=[w.path for w in writers],
                            ms_per_step=1000.0 * wall / max(done, 1), wall_s=wall, cpu_s=cpu, steps=int(done),
                            batched=batched, frame_interval_ps=interval * protocol.timestep_fs / 1000.0,
                            protocol=protocol.as_dict(), seed=int(seed))


# ---------------------------------------------------------------------------------------------------------------
# reweighting and comparison


def frame_weights(bias_kj_mol, temperature_k):
    """Unbiased weights of frames sampled under a static bias: ``w ~ exp(+V/kT)``, normalised to sum 1 over all
    frames (same shape as ``bias_kj_mol``)."""
    v = np.asarray(bias_kj_mol, dtype=np.float64)
    if v.size == 0:
        raise ValueError("frame_weights: no frames (the bias array is empty)")
    if not np.isfinite(v).all():
        raise ValueError("frame_weights: the bias values are not all finite")
    if not (isinstance(temperature_k, (int, float, np.floating)) and temperature_k > 0):
        raise ValueError(f"frame_weights: temperature_k must be positive, got {temperature_k!r}")
    x = v / (MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k)
    w = np.exp(x - x.max())
    return w / w.sum()


def _angles(phi, psi, weights=None):
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    if phi.shape != psi.shape:
        raise ValueError(f"phi and psi differ in shape: {phi.shape} vs {psi.shape}")
    if weights is None:
        weights = np.ones_like(phi)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != phi.shape:
        raise ValueError(f"weights have shape {weights.shape} but the angles {phi.shape}: one weight per frame")
    if phi.size == 0:
        raise ValueError("no frames")
    if not (np.isfinite(phi).all() and np.isfinite(psi).all() and np.isfinite(weights).all()) or (weights < 0).any():
        raise ValueError("angles and weights must be finite and the weights non-negative")
    return phi, psi, weights


def reweighted_fes(phi_rad, psi_rad, weights=None, temperature_k=300.0, bins=36):
    """The (phi, psi) free energy from weighted frames, on ``bins`` x ``bins`` bins over [-pi, pi)^2.

    Returns
    -------
    dict
        ``fes_kt`` [bins, bins] (phi, psi) in kT with minimum 0, NaN where no frame falls; ``fes_kj_mol`` (the same
        in kJ/mol); ``counts`` (frames per bin); ``probability`` (weights per bin, summing to 1); ``edges_rad``;
        ``temperature_k``.
    """
    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be a whole number >= 2, got {bins!r}")
    edges = np.linspace(-math.pi, math.pi, bins + 1)
    wrap = lambda a: np.mod(a.ravel() + math.pi, 2 * math.pi) - math.pi  # noqa: E731
    p, _, _ = np.histogram2d(wrap(phi), wrap(psi), bins=[edges, edges], weights=w.ravel())
    counts, _, _ = np.histogram2d(wrap(phi), wrap(psi), bins=[edges, edges])
    total = p.sum()
    if not total > 0:
        raise ValueError("the weights sum to zero")
    p = p / total
    with np.errstate(divide="ignore"):
        fes = np.where(counts > 0, -np.log(np.where(p > 0, p, np.nan)), np.nan)
    fes = fes - np.nanmin(fes)
    kt = MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k
    return {"fes_kt": fes, "fes_kj_mol": fes * kt, "counts": counts, "probability": p, "edges_rad": edges,
            "temperature_k": float(temperature_k)}


def _fes_grid(fes):
    grid = np.asarray(fes["fes_kt"] if isinstance(fes, dict) else fes, dtype=np.float64)
    if grid.ndim != 2:
        raise ValueError(f"a free-energy surface is a 2D grid (or reweighted_fes's dict), got shape {grid.shape}")
    return grid


def fes_comparison(fes_a, fes_b, within_kt=4.0):
    """Two (phi, psi) free energies compared over the bins within ``within_kt`` of the minimum of either surface
    (each measured from its own minimum), after removing the best constant offset (least squares: the mean
    difference).

    Returns
    -------
    dict
        ``rms_kt``; ``offset_kt`` (mean of b - a over the bins); ``bins`` (compared); ``missing_in_a`` /
        ``missing_in_b`` (bins within ``within_kt`` on one surface that the other never sampled: excluded from the
        RMS, reported so a missing basin does not pass unseen).
    """
    a, b = _fes_grid(fes_a), _fes_grid(fes_b)
    if a.shape != b.shape:
        raise ValueError(f"the two surfaces have different grids: {a.shape} vs {b.shape} (use the same bins)")
    if not (np.isfinite(a).any() and np.isfinite(b).any()):
        raise ValueError("a surface has no sampled bin")
    a, b = a - np.nanmin(a), b - np.nanmin(b)
    low_a, low_b = np.isfinite(a) & (a <= within_kt), np.isfinite(b) & (b <= within_kt)
    both = np.isfinite(a) & np.isfinite(b)
    mask = (low_a | low_b) & both
    if not mask.any():
        raise ValueError(f"no bin is sampled on both surfaces within {within_kt} kT of a minimum")
    d = b[mask] - a[mask]
    offset = d.mean()
    return {"rms_kt": float(np.sqrt(np.mean((d - offset) ** 2))), "offset_kt": float(offset), "bins": int(mask.sum()),
            "missing_in_a": int((low_b & ~np.isfinite(a)).sum()), "missing_in_b": int((low_a & ~np.isfinite(b)).sum())}


def fes_rms_difference(fes_a, fes_b, within_kt=4.0):
    """RMS difference in kT between two (phi, psi) free energies over the bins within ``within_kt`` of the minimum
    of either surface, after removing the best constant offset (:func:`fes_comparison` gives the details).

    Examples
    --------
    >>> a = np.array([[0.0, 1.0], [2.0, 9.0]])
    >>> round(fes_rms_difference(a, a + 3.0), 12)
    0.0
    """
    return fes_comparison(fes_a, fes_b, within_kt)["rms_kt"]


def _replica_units(phi, psi, w, blocks):
    """Split frames into bootstrap units: replicas ([R, T] input) or ``blocks`` contiguous blocks (1-D input)."""
    if phi.ndim == 2 and phi.shape[0] > 1:
        return [(phi[k], psi[k], w[k]) for k in range(phi.shape[0])]
    phi, psi, w = phi.ravel(), psi.ravel(), w.ravel()
    chunks = np.array_split(np.arange(phi.size), min(blocks, phi.size))
    return [(phi[c], psi[c], w[c]) for c in chunks]


def basin_populations(phi_rad, psi_rad, weights=None, n_boot=200, seed=0, blocks=10):
    """Weighted populations of the four basins of :data:`nnforce.demo.measure.BASINS`, with 95% bootstrap intervals.

    Parameters
    ----------
    phi_rad, psi_rad, weights : array [R, T]
        Per replica and frame (the bootstrap resamples whole replicas, which are independent); 1-D arrays are
        split into ``blocks`` contiguous blocks instead. Weights from :func:`frame_weights` (one normalisation for
        all frames: a static bias makes every replica's weights comparable).
    n_boot : int
    seed : int

    Returns
    -------
    dict
        basin name -> (population, 2.5th percentile, 97.5th percentile).
    """
    from ..demo.measure import BASINS, basin_indices

    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive whole number, got {n_boot!r}")
    units = _replica_units(phi, psi, w, blocks)
    sums = np.zeros((len(units), len(BASINS)))
    for u, (a, b, weight) in enumerate(units):
        sums[u] = np.bincount(basin_indices(a, b), weights=weight, minlength=len(BASINS))
    if not sums.sum() > 0:
        raise ValueError("the weights sum to zero")
    value = sums.sum(axis=0) / sums.sum()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(units), size=(n_boot, len(units)))
    boot = sums[draws].sum(axis=1)
    boot = boot / np.maximum(boot.sum(axis=1, keepdims=True), 1e-300)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {name: (float(value[i]), float(low[i]), float(high[i])) for i, name in enumerate(BASINS)}


def fes_noise(phi_rad, psi_rad, weights, temperature_k=300.0, bins=36, within_kt=4.0, n_boot=50, seed=0,
              blocks=10):
    """How noisy a reweighted free energy is, from its own frames: (1) the bootstrap over replicas (or blocks) --
    the RMS over bins within ``within_kt`` of the per-bin standard deviation of the bootstrap surfaces; (2) a split
    into two halves (even/odd replicas) -- their :func:`fes_rms_difference` / 2, the noise of the whole (each half
    has sqrt(2) x the noise of the whole, their difference sqrt(2) x a half's).

    Returns
    -------
    dict
        ``bootstrap_rms_kt``, ``half_split_rms_kt``, ``half_split_difference_kt``, ``bins``.
    """
    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    units = _replica_units(phi, psi, w, blocks)
    full = reweighted_fes(phi, psi, w, temperature_k, bins)["fes_kt"]
    mask = np.isfinite(full) & (full <= within_kt)
    rng = np.random.default_rng(seed)
    surfaces = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), size=len(units))
        a = np.concatenate([units[k][0] for k in pick])
        b = np.concatenate([units[k][1] for k in pick])
        c = np.concatenate([units[k][2] for k in pick])
        surfaces.append(reweighted_fes(a, b, c, temperature_k, bins)["fes_kt"])
    surfaces = np.array(surfaces)
    # per-bin std of the bootstrap surfaces, each aligned to the full one by its mean offset over the mask
    aligned = []
    for s in surfaces:
        ok = mask & np.isfinite(s)
        aligned.append(s - np.mean(s[ok] - full[ok]) if ok.any() else s)
    aligned = np.array(aligned)
    with np.errstate(invalid="ignore"):
        std = np.nanstd(aligned, axis=0)
    with np.errstate(invalid="ignore"):
        boot = float(np.sqrt(np.nanmean(std[mask] ** 2))) if np.isfinite(std[mask]).any() else float("nan")
    halves = [[u for k, u in enumerate(units) if k % 2 == h] for h in (0, 1)]
    half_fes = [reweighted_fes(np.concatenate([u[0] for u in half]), np.concatenate([u[1] for u in half]),
                               np.concatenate([u[2] for u in half]), temperature_k, bins) for half in halves]
    try:
        split = fes_rms_difference(half_fes[0], half_fes[1], within_kt)
    except ValueError:  # too few frames: the halves share no low bin
        split = float("nan")
    return {"bootstrap_rms_kt": boot, "half_split_difference_kt": split, "half_split_rms_kt": split / 2.0,
            "bins": int(mask.sum())}


def reweight_stationary(stationary_biased, bias_kj_mol, assignments, temperature_k):
    """The unbiased stationary distribution of a Markov model built on biased (static-bias) trajectories:
    ``pi_i ~ pi_b,i <exp(V/kT)>_i``, the average over the frames assigned to state i.

    Parameters
    ----------
    stationary_biased : array [S]
        The MSM's stationary distribution (of the biased dynamics).
    bias_kj_mol : array
        V of every frame.
    assignments : int array, the shape of ``bias_kj_mol``
        The state of every frame (index into ``stationary_biased``; negative = not in the active set, ignored).
    temperature_k : float

    Returns
    -------
    numpy.ndarray [S], summing to 1
    """
    pi = np.asarray(stationary_biased, dtype=np.float64)
    v = np.asarray(bias_kj_mol, dtype=np.float64).ravel()
    s = np.asarray(assignments).ravel()
    if v.shape != s.shape:
        raise ValueError(f"one state per frame: {s.shape} assignments for {v.shape} bias values")
    x = v / (MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k)
    shift = x.max()
    keep = (s >= 0) & (s < len(pi))
    sums = np.bincount(s[keep], weights=np.exp(x[keep] - shift), minlength=len(pi))
    counts = np.bincount(s[keep], minlength=len(pi))
    if (counts[pi > 0] == 0).any():
        raise ValueError("a state with stationary weight has no frame assigned: cannot average its bias")
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    out = pi * mean
    return out / out.sum()
