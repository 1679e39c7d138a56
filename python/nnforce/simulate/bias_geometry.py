"""The geometry under issue 25's (phi, psi) bias (:mod:`nnforce.simulate.metadynamics`): backbone torsions,
dihedral angles, hydrogen mass repartitioning, and the periodic bias grid -- its OpenMM force (a ``CustomCVForce``
over a periodic ``Continuous2DFunction``) and the same spline in numpy (:func:`bias_at`)."""
import math
import os
import time
from typing import List, Tuple

import numpy as np

from ..units import MOLAR_GAS_CONSTANT_KJ_MOL_K

__all__ = ["backbone_torsions", "dihedrals", "repartition_hydrogen_mass", "bias_at", "biased_replica_systems"]



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
    ([4, 6, 8, 10], [6, 8, 10, 16])
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


def biased_replica_systems(system, topology, starts_nm, bias, hydrogen_mass_amu=None, groups=1):
    """The Systems phase 2 runs: R replicas of ``system`` (copied, hydrogen masses repartitioned), each replica
    with its own ``CustomCVForce`` ``table(phi, psi)`` on its own atoms.

    Returns
    -------
    tuple
        ``(batches, batched)``: a list of :class:`nnforce.simulate.replicas.ReplicaSystem`: ``groups`` of them
        (default one) holding consecutive replicas (``batched``, when the potential is one NNForce: one model call
        per step and group), or one per replica.
    """
    from .replicas import ReplicaSystem, replicate

    n = system.getNumParticles()
    starts = _positions(starts_nm, n, "starts_nm")
    if starts.ndim != 3:
        raise ValueError(f"starts_nm: expected [R, {n}, 3], got shape {starts.shape}")
    grid = _check_bias_grid(bias)
    phi_atoms, psi_atoms = backbone_torsions(topology)
    work = repartition_hydrogen_mass(_copy_system(system), topology, hydrogen_mass_amu)
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"groups must be a whole number >= 1, got {groups!r}")
    if _is_single_nnforce(work):
        batches = []
        for part in np.array_split(np.arange(len(starts)), min(int(groups), len(starts))):
            batch = replicate(work, topology, list(starts[part]))
            for k in range(len(part)):
                batch.system.addForce(_bias_force(grid, phi_atoms, psi_atoms, offset=k * n))
            batches.append(batch)
        return batches, True
    batches = []
    for start in starts:
        single = _copy_system(work)
        single.addForce(_bias_force(grid, phi_atoms, psi_atoms))
        batches.append(ReplicaSystem(system=single, topology=topology, positions=start, replica_topology=topology,
                                     num_replicas=1, atoms_per_replica=n))
    return batches, False


def _open_writers(out_dir, batches, topology, protocol):
    """One list of started DCD writers per batch (``replica_0000.dcd`` ... in ``out_dir``), or empty lists."""
    from .replicas import replica_writers

    writers, first = [[] for _ in batches], 0
    if out_dir is None:
        return writers
    os.makedirs(out_dir, exist_ok=True)
    for g, batch in enumerate(batches):
        writers[g] = replica_writers(out_dir, range(first, first + batch.num_replicas), topology,
                                     protocol.timestep_fs / 1000.0, protocol.report_interval_steps)
        first += batch.num_replicas
        for writer in writers[g]:
            writer.start()
    return writers


def step_replica_groups(contexts, batches, writers, observer, steps, interval, threaded=False, progress=None,
                        max_wall_s=None):
    """Step every replica group's Context ``steps`` steps, ``interval`` at a time (a frame each: ``writers[g]`` and
    ``observer(g)``, :func:`nnforce.simulate.replicas.run_replica_steps`), the groups at once in threads when
    ``threaded`` (OpenMM releases the GIL while it steps; never on the Reference platform, whose random numbers
    come from one process-wide generator), until done or past ``max_wall_s``. Returns (steps done, wall s, CPU s)."""
    from concurrent.futures import ThreadPoolExecutor

    from .replicas import run_replica_steps

    clock, done = _Clock(), 0
    pool = ThreadPoolExecutor(len(contexts)) if threaded and len(contexts) > 1 else None
    groups = range(len(contexts))
    try:
        while done < steps and not (max_wall_s is not None and clock.read()[0] > max_wall_s):
            end = min(steps, (done // interval + 1) * interval)

            def advance(g, start=done, stop=end):
                run_replica_steps(contexts[g], batches[g], start, stop, interval, writers[g], observer(g), energy=True)

            list(map(advance, groups) if pool is None else pool.map(advance, groups))  # raises what a group raised
            done = end
            if progress is not None and done % interval == 0:
                progress(done, steps)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    return (done, *clock.read())
