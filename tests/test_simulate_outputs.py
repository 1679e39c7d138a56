"""nnforce.simulate's trajectory files on resume: the frames kept are rewritten with OpenMM's own writers, so a
periodic run interrupted and resumed gives the same coordinates and boxes as an uninterrupted one."""
import mdtraj
import numpy as np
import openmm
import openmm.app as app
import pytest

from nnforce.simulate import SimulationConfig, TrajectoryWriter, run


def periodic_argon(n_side=3, spacing_nm=0.4, box_nm=(1.25, 1.3, 1.4)):
    """27 argon atoms in a rectangular (non-cubic) box with a periodic OpenMM Lennard-Jones System."""
    topology = app.Topology()
    chain = topology.addChain()
    positions = []
    for x in range(n_side):
        for y in range(n_side):
            for z in range(n_side):
                topology.addAtom("AR", app.element.argon, topology.addResidue("AR", chain))
                positions.append([0.1 + x * spacing_nm, 0.1 + y * spacing_nm, 0.1 + z * spacing_nm])
    vectors = [openmm.Vec3(box_nm[0], 0, 0), openmm.Vec3(0, box_nm[1], 0), openmm.Vec3(0, 0, box_nm[2])]
    topology.setPeriodicBoxVectors(vectors * openmm.unit.nanometer)
    system = openmm.System()
    system.setDefaultPeriodicBoxVectors(*vectors)
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.CutoffPeriodic)
    force.setCutoffDistance(0.6)
    for _ in range(len(positions)):
        system.addParticle(39.948)
        force.addParticle(0.0, 0.34, 0.996)
    system.addForce(force)
    return topology, np.array(positions), system


@pytest.mark.parametrize("trajectory", ["trajectory.dcd", "trajectory.xtc"])
def test_periodic_resume_rewrites_the_kept_frames_exactly(tmp_path, trajectory):
    topology, positions, system = periodic_argon()

    def go(out, **overrides):
        values = dict(model=None, topology=topology, positions=positions, output_dir=str(tmp_path / out),
                      steps=300, checkpoint_interval=100, trajectory_interval=50, report_interval=50,
                      platform="Reference", progress=False, timestep_fs=4.0, temperature_k=90.0,
                      friction_per_ps=5.0, seed=3, trajectory=trajectory)
        values.update(overrides)
        return run(SimulationConfig(**values), system=openmm.XmlSerializer.clone(system))

    go("whole")
    go("split", steps=100)
    saved = {name: (tmp_path / "split" / name).read_bytes() for name in ("checkpoint.chk", "checkpoint.json")}
    go("split", steps=200, resume=True)  # frames 3 and 4 written after the step-100 checkpoint ...
    for name, data in saved.items():  # ... then lost, as in a crash right after that checkpoint
        (tmp_path / "split" / name).write_bytes(data)
    go("split", resume=True)

    top = mdtraj.Topology.from_openmm(topology)
    whole = mdtraj.load(str(tmp_path / "whole" / trajectory), top=top)
    split = mdtraj.load(str(tmp_path / "split" / trajectory), top=top)
    assert whole.n_frames == split.n_frames == 6
    assert np.array_equal(split.xyz, whole.xyz)  # bitwise: float32 coordinates round-trip exactly
    np.testing.assert_allclose(split.unitcell_lengths, whole.unitcell_lengths, rtol=1e-6)
    np.testing.assert_allclose(whole.unitcell_lengths[0], [1.25, 1.3, 1.4], rtol=1e-6)
    np.testing.assert_allclose(split.unitcell_angles, 90.0, atol=1e-4)


def test_resume_with_fewer_frames_than_the_checkpoint_says_is_an_error(tmp_path):
    topology, positions, system = periodic_argon()
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    path = str(tmp_path / "t.dcd")
    writer = TrajectoryWriter(path, topology, 0.001, 10, 0)
    writer.start()
    writer.write(context.getState(getPositions=True))
    writer.close()
    with pytest.raises(ValueError, match="has 1 frames but the checkpoint expects 2"):
        TrajectoryWriter(path, topology, 0.001, 10, 0).start(frames_kept=2)
