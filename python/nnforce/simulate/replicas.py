"""Many copies of one molecule in one OpenMM Context, evaluated by one model call.

:func:`replicate` turns a single-molecule System whose potential is an ``NNForce`` into one System holding R
non-interacting replicas: the particles are repeated R times and one ``NNForce`` acts on all of them, with
``setAtomReplicas`` telling the plugin which replica each atom belongs to, so that its neighbor list never pairs
atoms of different replicas (periodic images included; each replica sees the box as if it were alone). For
small molecules most of a model call is fixed overhead, so R replicas in one call cost little more than one.

:class:`ReplicaReporter` writes one trajectory file per replica (for an ``app.Simulation``);
:func:`run_replica_steps` is the one replica MD loop (Dask batches and the demo), writing with
:func:`replica_writers`.

Examples
--------
>>> batch = replicate(system, topology, [pos0, pos1, pos2])  # doctest: +SKIP
>>> context = openmm.Context(batch.system, integrator)  # doctest: +SKIP
>>> context.setPositions(batch.positions)  # doctest: +SKIP
>>> forces = batch.split(context.getState(getForces=True).getForces(asNumpy=True))  # [3, n, 3]  # doctest: +SKIP
"""
import os
from dataclasses import dataclass
from typing import Any, List, Sequence

__all__ = ["ReplicaSystem", "replicate", "ReplicaReporter", "replica_file_name", "replica_writers", "run_replica_steps"]


def replica_file_name(index, suffix=".dcd", prefix="replica"):
    """The file name of replica ``index``: ``replica_0007.dcd`` (sorted names follow the replica order).

    Examples
    --------
    >>> replica_file_name(7)
    'replica_0007.dcd'
    """
    return f"{prefix}_{int(index):04d}{suffix}"


@dataclass
class ReplicaSystem:
    """R copies of one molecule in one System (made by :func:`replicate`).

    Attributes
    ----------
    system : openmm.System
        R x n particles, replica k holding particles ``k*n ... k*n + n - 1``; one ``NNForce`` for all.
    topology : openmm.app.Topology
        The R copies, one set of chains per replica.
    positions : openmm.unit.Quantity
        [R*n, 3] nm, the replicas' positions one after the other.
    replica_topology : openmm.app.Topology
        The topology of one replica (for per-replica trajectories).
    num_replicas, atoms_per_replica : int
    """

    system: Any
    topology: Any
    positions: Any
    replica_topology: Any
    num_replicas: int
    atoms_per_replica: int

    def atoms_of(self, replica):
        """The particle indices of ``replica`` (a ``range``)."""
        if not 0 <= replica < self.num_replicas:
            raise IndexError(f"replica {replica} out of range: there are {self.num_replicas}")
        n = self.atoms_per_replica
        return range(replica * n, (replica + 1) * n)

    def split(self, values):
        """Per-particle values ([R*n, ...], a Quantity keeps its unit) as an array [R, n, ...]."""
        import numpy as np
        from openmm import unit

        if unit.is_quantity(values):
            return unit.Quantity(self.split(values.value_in_unit(values.unit)), values.unit)
        array = np.asarray(values)
        if array.shape[0] != self.num_replicas * self.atoms_per_replica:
            raise ValueError(f"{array.shape[0]} rows for {self.num_replicas} replicas of {self.atoms_per_replica} atoms")
        return array.reshape((self.num_replicas, self.atoms_per_replica) + array.shape[1:])

    def join(self, per_replica):
        """The inverse of :meth:`split`: R arrays of n rows (nm when Quantities) as one [R*n, ...] Quantity in nm."""
        return _join(per_replica, self.atoms_per_replica)


def _as_nm(positions, what):
    import numpy as np
    from openmm import unit

    if unit.is_quantity(positions):
        positions = positions.value_in_unit(unit.nanometer)
    array = np.asarray([[float(c) for c in p] for p in positions] if not hasattr(positions, "shape") else positions,
                       dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"{what}: expected positions of shape [n, 3], got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{what}: the positions are not all finite")
    return array


def _join(per_replica, atoms_per_replica):
    import numpy as np
    from openmm import unit

    arrays = []
    for k, positions in enumerate(per_replica):
        array = _as_nm(positions, f"replica {k}")
        if array.shape[0] != atoms_per_replica:
            raise ValueError(f"replica {k} has {array.shape[0]} atoms but the molecule has {atoms_per_replica}; every "
                             "replica must be a copy of the same molecule (same atoms, same order)")
        arrays.append(array)
    return unit.Quantity(np.concatenate(arrays, axis=0), unit.nanometer)


def _copy_topology(topology, copies):
    from openmm.app import Topology

    combined = Topology()
    combined.setPeriodicBoxVectors(topology.getPeriodicBoxVectors())
    for _ in range(copies):
        mapping = {}
        for chain in topology.chains():
            new_chain = combined.addChain(chain.id)
            for residue in chain.residues():
                new_residue = combined.addResidue(residue.name, new_chain, residue.id, residue.insertionCode)
                for atom in residue.atoms():
                    mapping[atom] = combined.addAtom(atom.name, atom.element, new_residue, atom.id)
        for bond in topology.bonds():
            combined.addBond(mapping[bond[0]], mapping[bond[1]], bond.type, bond.order)
    return combined


def _tile(values, copies):
    """``values`` repeated ``copies`` times (per-atom lists of every replica, one after the other)."""
    return [v for _ in range(copies) for v in values]


def _replicated_nnforce(source, copies, num_particles):
    """One NNForce acting on ``copies`` replicas of ``source``'s atoms (atom replicas set)."""
    import nnforce

    if source.getNumReplicas() > 1 or len(source.getAtomReplicas()):
        raise ValueError("the NNForce already has atom replicas set; replicate a single-molecule System")
    force = nnforce.NNForce(source.getModelBytes())
    force.setForceGroup(source.getForceGroup())
    force.setName(source.getName())
    force.setUsesPeriodicBoundaryConditions(source.usesPeriodicBoundaryConditions())
    force.setOutputsForces(source.getOutputsForces())
    force.setNeighborList(source.getNeighborListCutoff(), source.getNeighborListSkin(),
                          copies * source.getNeighborListCapacity())
    atoms = list(source.getAtoms())
    model_atoms = len(atoms) if atoms else num_particles
    if atoms:
        force.setAtoms([a + k * num_particles for k in range(copies) for a in atoms])
    force.setAtomicNumbers(_tile(list(source.getAtomicNumbers()), copies))
    force.setAtomReplicas([k for k in range(copies) for _ in range(model_atoms)])
    for i in range(source.getNumGlobalParameters()):
        force.addGlobalParameter(source.getGlobalParameterName(i), source.getGlobalParameterDefaultValue(i))
    for i in range(source.getNumEnergyParameterDerivatives()):
        force.addEnergyParameterDerivative(source.getEnergyParameterDerivativeName(i))
    for name, value in source.getProperties().items():
        force.setProperty(name, value)
    for i in range(source.getNumPerAtomInputs()):
        force.addPerAtomInput(source.getPerAtomInputName(i), _tile(list(source.getPerAtomInputValues(i)), copies),
                              source.getPerAtomInputWidth(i))
    return force


def replicate(system, topology, positions_list: Sequence[Any]) -> ReplicaSystem:
    """One System holding ``len(positions_list)`` non-interacting copies of a molecule, one model call for all.

    Parameters
    ----------
    system : openmm.System
        One molecule whose potential is a single ``NNForce`` (the pure-ML systems of :mod:`nnforce.simulate`).
        Other forces are refused: a copied MM force would make the replicas interact or need its own
        exclusions. Constraints are copied per replica.
    topology : openmm.app.Topology
        The molecule (its box, if any, is every replica's box).
    positions_list : sequence of positions
        One [n, 3] set of positions (nm, or a Quantity) per replica; their number is R >= 1.

    Returns
    -------
    ReplicaSystem

    Raises
    ------
    ValueError
        R < 1, a replica whose atom count differs from the molecule's, a System without exactly one NNForce or
        with other forces or virtual sites.
    """
    import nnforce
    import openmm

    positions_list = list(positions_list)
    copies = len(positions_list)
    if copies < 1:
        raise ValueError("replicate needs at least one replica (R >= 1): give a list of positions, one per replica")
    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System {n} particles")
    positions = _join(positions_list, n)
    nn_forces, others = [], []
    for i in range(system.getNumForces()):
        force = system.getForce(i)
        (nn_forces if nnforce.NNForce.isinstance(force) else others).append(force)
    if len(nn_forces) != 1 or others:
        names = ", ".join(type(f).__name__ for f in others) or "none"
        raise ValueError(f"replicate needs a System whose only force is one NNForce; it has {len(nn_forces)} NNForce(s) "
                         f"and other forces: {names}. Build the molecule's System with nnforce.simulate.build_system "
                         "(pure ML) and replicate that.")
    combined = openmm.System()
    combined.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
    for k in range(copies):
        for i in range(n):
            if system.isVirtualSite(i):
                raise ValueError(f"particle {i} is a virtual site; replicate does not copy virtual sites")
            combined.addParticle(system.getParticleMass(i))
        for c in range(system.getNumConstraints()):
            p, q, distance = system.getConstraintParameters(c)
            combined.addConstraint(p + k * n, q + k * n, distance)
    combined.addForce(_replicated_nnforce(nnforce.NNForce.cast(nn_forces[0]), copies, n))
    return ReplicaSystem(system=combined, topology=_copy_topology(topology, copies), positions=positions,
                         replica_topology=topology, num_replicas=copies, atoms_per_replica=n)


class ReplicaReporter:
    """An OpenMM reporter writing one trajectory per replica (``replica_0000.dcd`` ... in ``directory``).

    Parameters
    ----------
    directory : str
        Where the files go (created if missing).
    report_interval : int
        Steps between frames.
    replicas : ReplicaSystem
    suffix : {".dcd", ".xtc"}
    indices : sequence of int, optional
        The file index of each replica (default 0 ... R-1), e.g. their places in a larger ensemble.

    Examples
    --------
    >>> simulation.reporters.append(ReplicaReporter("out", 100, batch))  # doctest: +SKIP
    """

    def __init__(self, directory, report_interval, replicas: ReplicaSystem, suffix=".dcd", indices=None):
        if int(report_interval) <= 0:
            raise ValueError(f"report_interval must be a positive number of steps, got {report_interval}")
        if suffix not in (".dcd", ".xtc"):
            raise ValueError(f"suffix must be .dcd or .xtc, got {suffix!r}")
        os.makedirs(directory, exist_ok=True)
        self.interval = int(report_interval)
        self.replicas = replicas
        indices = list(range(replicas.num_replicas)) if indices is None else [int(i) for i in indices]
        if len(indices) != replicas.num_replicas:
            raise ValueError(f"{len(indices)} file indices for {replicas.num_replicas} replicas")
        self.paths: List[str] = [os.path.join(directory, replica_file_name(i, suffix)) for i in indices]
        self._writers = []

    def _open(self, simulation):
        """One :class:`nnforce.simulate.outputs.TrajectoryWriter` per replica (the writer ``nnforce simulate`` uses)."""
        from openmm import unit

        from .outputs import TrajectoryWriter

        dt_ps = simulation.integrator.getStepSize().value_in_unit(unit.picoseconds)
        for path in self.paths:
            writer = TrajectoryWriter(path, self.replicas.replica_topology, dt_ps, self.interval, simulation.currentStep)
            writer.start()
            self._writers.append(writer)

    def describeNextReport(self, simulation):
        """OpenMM's reporter protocol: positions every ``report_interval`` steps, molecules kept whole."""
        steps = self.interval - simulation.currentStep % self.interval
        return {"steps": steps, "periodic": False, "include": ["positions"]}

    def report(self, simulation, state):
        """Write one frame to each replica's file."""
        if not self._writers:
            self._open(simulation)
        positions = self.replicas.split(state.getPositions(asNumpy=True))
        box = state.getPeriodicBoxVectors() if self.replicas.replica_topology.getPeriodicBoxVectors() else None
        for writer, frame in zip(self._writers, positions):
            writer.write_positions(frame, box)

    def close(self):
        """Close the files."""
        for writer in self._writers:
            writer.close()
        self._writers = []

    def __del__(self):
        self.close()


def replica_writers(directory, indices, topology, dt_ps, interval, suffix=".dcd", first_step=0):
    """One :class:`nnforce.simulate.outputs.TrajectoryWriter` per replica index (``replica_0007.dcd`` ... in
    ``directory``), not started yet (``start(frames_kept=...)`` opens each); ``first_step`` goes to the files'
    headers as with :class:`ReplicaReporter` (the step its first frame is written at)."""
    from .outputs import TrajectoryWriter

    return [TrajectoryWriter(os.path.join(directory, replica_file_name(k, suffix)), topology, dt_ps, interval,
                             first_step) for k in indices]


def run_replica_steps(context, batch: ReplicaSystem, start, end, interval, writers=(), observe=None, energy=False):
    """The one replica MD loop (the Dask batches' and the demo's): step ``context``, a Context of ``batch``, from
    step ``start`` to step ``end``, stopping at every multiple of ``interval``.

    At each stop the State is read (positions, velocities, and the energy when ``energy``); at a multiple of
    ``interval`` each replica's frame goes to its writer in ``writers`` (one per replica, in replica order) and
    ``observe(step, state)`` is called.

    Returns
    -------
    openmm.State or None
        The State at ``end`` (None when ``start >= end``).

    Examples
    --------
    >>> state = run_replica_steps(context, batch, 0, 1000, 10, writers)  # doctest: +SKIP
    """
    interval = int(interval)
    if interval <= 0:
        raise ValueError(f"interval must be a positive number of steps, got {interval}")
    periodic = batch.replica_topology.getPeriodicBoxVectors() is not None
    integrator = context.getIntegrator()
    step, state = int(start), None
    while step < end:
        stop = min(int(end), (step // interval + 1) * interval)
        integrator.step(stop - step)
        step = stop
        state = context.getState(getPositions=True, getVelocities=True, getEnergy=bool(energy))
        if step % interval == 0:
            box = state.getPeriodicBoxVectors() if periodic else None
            for writer, frame in zip(writers, batch.split(state.getPositions(asNumpy=True))):
                writer.write_positions(frame, box)
            if observe is not None:
                observe(step, state)
    return state
