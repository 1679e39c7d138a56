"""nnforce.simulate end to end: checkpoint/resume is exact, NVE conserves energy, outputs are consistent."""
import csv
import os
import shutil

import numpy as np
import pytest
import torch

from nnforce.simulate import SimulationConfig, energy_drift, run

openmm = pytest.importorskip("openmm")
from openmm import app  # noqa: E402






pytestmark = pytest.mark.usefixtures("one_torch_thread")


def argon_cluster(n_side=3, spacing_nm=0.38):
    topology = app.Topology()
    chain = topology.addChain()
    positions = []
    for x in range(n_side):
        for y in range(n_side):
            for z in range(n_side):
                residue = topology.addResidue("AR", chain)
                topology.addAtom("AR", app.element.argon, residue)
                positions.append([x * spacing_nm, y * spacing_nm, z * spacing_nm])
    return topology, np.array(positions)


def argon_openmm_system(topology):
    """The same Lennard-Jones cluster as a plain OpenMM System (runs without the plugin)."""
    system = openmm.System()
    force = openmm.NonbondedForce()
    force.setNonbondedMethod(openmm.NonbondedForce.NoCutoff)
    for _ in topology.atoms():
        system.addParticle(39.948)
        force.addParticle(0.0, 0.34, 0.996)
    system.addForce(force)
    return system


def ethanol():
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    topology = app.Topology()
    residue = topology.addResidue("ETH", topology.addChain())
    for symbol in atoms.get_chemical_symbols():
        topology.addAtom(symbol, app.element.Element.getBySymbol(symbol), residue)
    return topology, atoms.positions / 10.0


@pytest.fixture(scope="module")
def lj_model_file(tmp_path_factory):
    from nnforce.models import LennardJones

    path = tmp_path_factory.mktemp("models") / "lj.pt"
    torch.jit.script(LennardJones(epsilon=0.996, sigma=0.34, cutoff=2.0)).save(str(path))
    return str(path)


@pytest.fixture(scope="module")
def ani_model_file(tmp_path_factory):
    from nnforce.models.ani1x import ani1x

    path = tmp_path_factory.mktemp("models") / "ani1x_member0.pt"
    torch.jit.script(ani1x(members=[0])).save(str(path))  # one network of the ensemble: as smooth, 8x cheaper
    return str(path)


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def dcd_frames(path, topology):  # DCD or XTC
    import mdtraj

    return mdtraj.load(path, top=mdtraj.Topology.from_openmm(topology)).xyz


def _config(out, topology, positions, model, **overrides):
    values = dict(model=model, topology=topology, positions=positions, output_dir=str(out), steps=300,
                  checkpoint_interval=100, trajectory_interval=50, report_interval=25, platform="Reference",
                  progress=False, timestep_fs=4.0, temperature_k=90.0, friction_per_ps=5.0, seed=5)
    values.update(overrides)
    return SimulationConfig(**values)


@pytest.mark.parametrize("engine,trajectory", [("openmm-system", "trajectory.dcd"), ("openmm-system", "trajectory.xtc"),
                                               pytest.param("nnforce", "trajectory.dcd")])
def test_resume_reproduces_uninterrupted_run(tmp_path, engine, trajectory, request):
    topology, positions = argon_cluster()
    model = request.getfixturevalue("lj_model_file") if engine == "nnforce" else None

    def go(out, **overrides):
        system = argon_openmm_system(topology) if engine == "openmm-system" else None
        return run(_config(tmp_path / out, topology, positions, model, trajectory=trajectory, **overrides),
                   system=system)

    whole = go("whole")
    # interrupted: stop at 100 (checkpoint), go on to 200 (frames and rows past the checkpoint), then lose that
    # progress as a crash right after the step-100 checkpoint would, and resume to the end
    go("split", steps=100)
    saved = {name: (tmp_path / "split" / name).read_bytes() for name in ("checkpoint.chk", "checkpoint.json")}
    go("split", steps=200, resume=True)
    assert len(dcd_frames(tmp_path / "split" / trajectory, topology)) == 4
    for name, data in saved.items():
        (tmp_path / "split" / name).write_bytes(data)
    resumed = go("split", resume=True)

    assert resumed["resumed_from_step"] == 100 and resumed["final_step"] == 300
    assert np.array_equal(resumed["positions_nm"], whole["positions_nm"])  # bitwise
    whole_frames = dcd_frames(tmp_path / "whole" / trajectory, topology)
    assert len(whole_frames) == 6
    assert np.array_equal(dcd_frames(tmp_path / "split" / trajectory, topology), whole_frames)
    columns = ("step", "potential_kj_mol", "kinetic_kj_mol", "temperature_k")
    rows = [[r[c] for c in columns] for r in read_csv(tmp_path / "split" / "energies.csv")]
    assert rows == [[r[c] for c in columns] for r in read_csv(tmp_path / "whole" / "energies.csv")]
    assert [int(r[0]) for r in rows] == list(range(0, 301, 25))


def test_resume_refuses_changed_settings(tmp_path):
    topology, positions = argon_cluster(2)
    system = argon_openmm_system(topology)
    run(_config(tmp_path, topology, positions, None, steps=50, checkpoint_interval=0), system=system)
    with pytest.raises(ValueError, match="timestep_fs"):
        run(_config(tmp_path, topology, positions, None, steps=100, timestep_fs=2.0, resume=True), system=system)


def test_equilibration_then_xtc_production(tmp_path):
    topology, positions = argon_cluster(2)
    result = run(_config(tmp_path, topology, positions, None, steps=100, equilibration_steps=60,
                         trajectory="traj.xtc", trajectory_interval=20, report_interval=20),
                 system=argon_openmm_system(topology))
    import mdtraj

    traj = mdtraj.load(str(tmp_path / "traj.xtc"), top=mdtraj.Topology.from_openmm(topology))
    assert len(traj) == 5  # production steps 80, 100, ..., 160
    np.testing.assert_allclose(traj.xyz[-1], result["positions_nm"], atol=2e-3)  # xtc keeps 3 decimals
    assert [int(r["step"]) for r in read_csv(tmp_path / "energies.csv")] == [60, 80, 100, 120, 140, 160]


def test_energy_drift_is_a_least_squares_slope_per_atom():
    times = np.linspace(0.0, 2.0, 41)
    energies = 3.0 + 0.6 * times + 0.01 * np.sin(37 * times)
    assert energy_drift(times, energies, 3) == pytest.approx(np.polyfit(times, energies, 1)[0] / 3, rel=1e-12)
    assert energy_drift(times, energies, 3) == pytest.approx(0.2, rel=0.02)


def test_nve_ani1x_conserves_energy(tmp_path, ani_model_file):
    from nnforce.models.ani1x import ani1x

    topology, positions = ethanol()
    result = run(SimulationConfig(
        model=ani_model_file, topology=topology, positions=positions, output_dir=str(tmp_path), steps=800,
        integrator="verlet", timestep_fs=0.25, temperature_k=300.0, minimize=False, report_interval=5,
        checkpoint_interval=0, trajectory=None, platform="Reference", progress=False, seed=2))
    drift = result["energy_drift_kj_mol_ps_atom"]
    assert abs(drift) < 0.01, f"NVE drift {drift} kJ/mol/ps per atom"
    rows = read_csv(tmp_path / "energies.csv")
    totals = np.array([float(r["total_kj_mol"]) for r in rows])
    assert np.ptp(totals) < 0.5  # kJ/mol over 0.2 ps; the kinetic energy itself swings by ~20 kJ/mol
    kinetic = np.array([float(r["kinetic_kj_mol"]) for r in rows])
    assert np.ptp(kinetic) > 5.0
    # temperature column = 2 KE / (3N k_B) for 9 unconstrained atoms
    row = rows[-1]
    assert float(row["temperature_k"]) == pytest.approx(2 * float(row["kinetic_kj_mol"]) / (27 * 0.00831446261815324),
                                                        abs=1e-3)
    # the energy OpenMM reports through NNForce equals the model evaluated directly on the final positions
    order = [a.element.atomic_number for a in topology.atoms()]
    direct = ani1x(members=[0])(torch.tensor(result["positions_nm"]), torch.tensor(order)).item()
    assert result["final_potential_kj_mol"] == pytest.approx(direct, abs=1e-6)


def test_cli_runs_and_resumes(tmp_path, lj_model_file, capsys):
    from nnforce.cli import main

    topology, positions = argon_cluster(2)
    pdb = tmp_path / "argon.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions * 10.0 * openmm.unit.angstrom, handle)
    args = ["simulate", str(pdb), lj_model_file, "-o", str(tmp_path / "run"), "--steps", "40", "--platform",
            "Reference", "--timestep-fs", "2", "--temperature", "80", "--report-interval", "10",
            "--trajectory-interval", "20", "--checkpoint-interval", "20", "--no-progress", "--threads", "1",
            "--equilibration-steps", "0"]  # the CLI's default equilibration (0.5 ps) would shift the rows
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "40 steps" in out and "ns/day" in out
    assert main(args[:6] + ["80"] + args[7:] + ["--resume"]) == 0
    rows = read_csv(tmp_path / "run" / "energies.csv")
    assert [int(r["step"]) for r in rows] == list(range(0, 81, 10))
    assert len(dcd_frames(tmp_path / "run" / "trajectory.dcd", topology)) == 4
    assert os.path.isfile(tmp_path / "run" / "final.pdb")
    shutil.rmtree(tmp_path / "run")
