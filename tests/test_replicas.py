"""Replicas in one Context (issue 14): R copies of a molecule, one NNForce, one model call.

Every check compares the batched Context with R separate single-molecule Contexts (Reference platform, float64),
which share no code with the replica path beyond the model itself.
"""
import numpy as np
import openmm
import pytest
import torch
from openmm import unit
from torch import Tensor
from typing import Optional

import nnforce
from nnforce.demo import alanine_dipeptide
from nnforce.force import build_nnforce
from nnforce.models import ANIModel
from nnforce.simulate.replicas import ReplicaReporter, replicate

# (phi, psi) of C7eq, alphaR, alphaL: three different conformations
CONFORMATIONS = [(-80.0, 150.0), (-70.0, -40.0), (60.0, 40.0)]
BOX_NM = 1.1  # > 2 x 0.52 nm cutoff (heights >= 1.06 nm with the skew), small enough that a replica meets its own images


@pytest.fixture(scope="module")
def ani_bytes():
    model = torch.jit.script(ANIModel([1, 6, 7, 8], hidden=[16, 8], seed=3))
    import io

    buffer = io.BytesIO()
    torch.jit.save(model, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def molecules():
    """Topology and three conformations, each translated by a different offset (so replicas overlap in space)."""
    rng = np.random.default_rng(7)
    topology = None
    positions = []
    for phi, psi in CONFORMATIONS:
        topology, pos = alanine_dipeptide(phi, psi)
        positions.append(np.asarray(pos.value_in_unit(unit.nanometer)) + rng.uniform(-0.3, 0.3, 3))
    return topology, positions


def single_system(topology, model_bytes, periodic, neighbor_cutoff=0.52):
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    if periodic:
        box = [openmm.Vec3(BOX_NM, 0, 0), openmm.Vec3(0.2, BOX_NM, 0), openmm.Vec3(-0.1, 0.3, BOX_NM)]  # triclinic
        system.setDefaultPeriodicBoxVectors(*box)
    force = build_nnforce(model_bytes, topology, neighbor_cutoff_nm=neighbor_cutoff, periodic=periodic)
    system.addForce(force)
    return system


def evaluate(system, positions):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions * unit.nanometer if not unit.is_quantity(positions) else positions)
    state = context.getState(getEnergy=True, getForces=True)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


@pytest.mark.parametrize("periodic", [False, True], ids=["vacuum", "periodic"])
def test_replicas_equal_separate_contexts(ani_bytes, molecules, periodic, one_torch_thread):
    topology, positions = molecules
    system = single_system(topology, ani_bytes, periodic)
    batch = replicate(system, topology, positions)
    assert batch.num_replicas == 3 and batch.system.getNumParticles() == 3 * 22
    energy, forces = evaluate(batch.system, batch.positions)
    forces = batch.split(forces)
    separate = [evaluate(system, p) for p in positions]
    total = sum(e for e, _ in separate)
    assert abs(energy - total) <= 1e-10 * max(1.0, abs(total))
    for k, (_, f) in enumerate(separate):
        scale = np.abs(f).max()
        assert np.abs(forces[k] - f).max() <= 1e-10 * scale, f"replica {k}"
    # the replicas really differ (different conformations), and a joint, unseparated evaluation would differ:
    assert len({round(e, 6) for e, _ in separate}) == 3
    force = nnforce.NNForce.cast(batch.system.getForce(0))
    joint = openmm.System()
    for i in range(batch.system.getNumParticles()):
        joint.addParticle(batch.system.getParticleMass(i))
    joint.setDefaultPeriodicBoxVectors(*batch.system.getDefaultPeriodicBoxVectors())
    unseparated = build_nnforce(force.getModelBytes(), batch.topology, neighbor_cutoff_nm=0.52, periodic=periodic)
    joint.addForce(unseparated)
    assert abs(evaluate(joint, batch.positions)[0] - total) > 1e-3  # the overlapping replicas would interact


@pytest.mark.parametrize("periodic", [False, True], ids=["vacuum", "periodic"])
def test_no_neighbor_pair_crosses_replicas(molecules, periodic):
    topology, positions = molecules
    box = None
    if periodic:
        box = np.array([[BOX_NM, 0, 0], [0.2, BOX_NM, 0], [-0.1, 0.3, BOX_NM]])
    joined = np.concatenate(positions)
    replicas = np.repeat(np.arange(3), 22)
    pairs, shifts = nnforce.neighbor_pairs(joined, 0.52, box, replicas=replicas)
    assert (replicas[pairs[0]] == replicas[pairs[1]]).all()
    # exactly each replica's own list (periodic images of its own atoms included), offset by 22 k
    expected = set()
    for k, p in enumerate(positions):
        own, own_shifts = nnforce.neighbor_pairs(p, 0.52, box)
        for (i, j), s in zip(own.T, own_shifts):
            expected.add((int(i) + 22 * k, int(j) + 22 * k) + tuple(np.round(s * 1e6).astype(int)))
    found = {(int(i), int(j)) + tuple(np.round(s * 1e6).astype(int)) for (i, j), s in zip(pairs.T, shifts)}
    assert found == expected and len(found) == pairs.shape[1]
    if periodic:
        assert np.abs(shifts).max() > 0  # images were found (the box is small)
    all_pairs, _ = nnforce.neighbor_pairs(joined, 0.52, box)
    crossing = replicas[all_pairs[0]] != replicas[all_pairs[1]]
    assert crossing.any()  # without the replica index the overlapping copies would be paired


class MaskedPairModel(torch.nn.Module):
    """All-pairs model that keeps to a replica by the "replica" input (a soft repulsion plus attraction)."""

    def forward(self, positions: Tensor, replica: Optional[Tensor] = None) -> Tensor:
        n = positions.shape[0]
        ij = torch.triu_indices(n, n, 1)
        v = positions[ij[1]] - positions[ij[0]]
        d = torch.sqrt((v * v).sum(dim=1))
        e = 0.01 / d ** 6 - 0.1 / d ** 2
        if replica is not None:
            e = e * (replica[ij[0]] == replica[ij[1]]).to(e.dtype)
        return e.sum()


class AllPairsModel(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        d = torch.pdist(positions)
        return (1.0 / d).sum()


def scripted_bytes(module):
    import io

    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    return buffer.getvalue()


def test_all_pairs_model_uses_replica_input(molecules):
    topology, positions = molecules
    system = single_system(topology, scripted_bytes(MaskedPairModel()), periodic=False, neighbor_cutoff=None)
    batch = replicate(system, topology, positions)
    energy, forces = evaluate(batch.system, batch.positions)
    separate = [evaluate(system, p) for p in positions]
    assert abs(energy - sum(e for e, _ in separate)) <= 1e-10 * abs(energy)
    for k, (_, f) in enumerate(separate):
        assert np.abs(batch.split(forces)[k] - f).max() <= 1e-10 * np.abs(f).max()


def test_all_pairs_model_without_replica_input_is_refused(molecules):
    topology, positions = molecules
    system = single_system(topology, scripted_bytes(AllPairsModel()), periodic=False, neighbor_cutoff=None)
    evaluate(system, positions[0])  # fine for one molecule
    batch = replicate(system, topology, positions)
    with pytest.raises(openmm.OpenMMException, match="neither 'neighbors'.*nor 'replica'"):
        evaluate(batch.system, batch.positions)
    one = replicate(system, topology, positions[:1])  # one replica: nothing to keep apart
    assert abs(evaluate(one.system, one.positions)[0] - evaluate(system, positions[0])[0]) < 1e-12


def test_replicas_survive_serialization(ani_bytes, molecules):
    topology, positions = molecules
    batch = replicate(single_system(topology, ani_bytes, periodic=True), topology, positions)
    xml = openmm.XmlSerializer.serialize(batch.system)
    assert "atomReplicas" in xml
    restored = openmm.XmlSerializer.deserialize(xml)
    force = nnforce.NNForce.cast(restored.getForce(0))
    assert list(force.getAtomReplicas()) == [k for k in range(3) for _ in range(22)]
    assert force.getNumReplicas() == 3
    e1, f1 = evaluate(batch.system, batch.positions)
    e2, f2 = evaluate(restored, batch.positions)
    assert e1 == e2 and np.array_equal(f1, f2)
    copy = nnforce.NNForce.cast(batch.system.getForce(0)).__deepcopy__(None)
    assert list(copy.getAtomReplicas()) == list(force.getAtomReplicas())


def test_bad_input(ani_bytes, molecules):
    topology, positions = molecules
    system = single_system(topology, ani_bytes, periodic=False)
    with pytest.raises(ValueError, match="at least one replica"):
        replicate(system, topology, [])
    with pytest.raises(ValueError, match="replica 1 has 21 atoms but the molecule has 22"):
        replicate(system, topology, [positions[0], positions[1][:21]])
    extra = single_system(topology, ani_bytes, periodic=False)
    extra.addForce(openmm.HarmonicBondForce())
    with pytest.raises(ValueError, match="only force is one NNForce.*HarmonicBondForce"):
        replicate(extra, topology, positions)
    force = nnforce.NNForce(ani_bytes)
    with pytest.raises(openmm.OpenMMException, match="negative"):
        force.setAtomReplicas([0, -1])
    bad = single_system(topology, ani_bytes, periodic=False)
    nnforce.NNForce.cast(bad.getForce(0)).setAtomReplicas([0] * 21)
    with pytest.raises(openmm.OpenMMException, match="21 replica indices but the model sees 22 atoms"):
        evaluate(bad, positions[0])


def test_reporter_writes_one_trajectory_per_replica(ani_bytes, molecules, tmp_path, one_torch_thread):
    import mdtraj

    topology, positions = molecules
    batch = replicate(single_system(topology, ani_bytes, periodic=True), topology, positions)
    integrator = openmm.LangevinMiddleIntegrator(300, 1.0, 0.0005)
    integrator.setRandomNumberSeed(5)
    simulation = openmm.app.Simulation(batch.topology, batch.system, integrator,
                                       openmm.Platform.getPlatformByName("Reference"))
    simulation.context.setPositions(batch.positions)
    reporter = ReplicaReporter(str(tmp_path), 2, batch, indices=[10, 11, 12])
    simulation.reporters.append(reporter)
    simulation.step(6)
    reporter.close()
    final = batch.split(simulation.context.getState(getPositions=True).getPositions(asNumpy=True)
                        .value_in_unit(unit.nanometer))
    for k, path in enumerate(reporter.paths):
        assert path.endswith(f"replica_{10 + k:04d}.dcd")
        traj = mdtraj.load(path, top=mdtraj.Topology.from_openmm(topology))
        assert traj.n_frames == 3 and traj.n_atoms == 22
        assert np.abs(traj.xyz[-1] - final[k]).max() < 1e-5  # float32 DCD, the replica's own atoms
