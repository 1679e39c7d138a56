"""nnforce.simulate rejects bad input with clear messages before any dynamics runs."""
import json

import numpy as np
import pytest
import torch

from nnforce.simulate import SimulationConfig, check_elements, inspect_model, parse_atom_selection, run

openmm = pytest.importorskip("openmm")
from openmm import app  # noqa: E402


def methyl_chloride():
    topology = app.Topology()
    residue = topology.addResidue("MCL", topology.addChain())
    for name, symbol in (("C1", "C"), ("CL1", "Cl"), ("H1", "H"), ("H2", "H"), ("H3", "H")):
        topology.addAtom(name, app.element.Element.getBySymbol(symbol), residue)
    positions = np.array([[0, 0, 0], [0.178, 0, 0], [-0.036, 0.1, 0], [-0.036, -0.05, 0.087],
                          [-0.036, -0.05, -0.087]])
    return topology, positions


@pytest.fixture(scope="module")
def lj_with_metadata(tmp_path_factory):
    """A Lennard-Jones model exported with the metadata extra file, declaring argon only."""
    from nnforce.models import LennardJones

    path = tmp_path_factory.mktemp("models") / "argon.pt"
    torch.jit.save(torch.jit.script(LennardJones()), str(path),
                   _extra_files={"nnforce_metadata.json": json.dumps({"elements": [18], "cutoff_nm": 0.85})})
    return str(path)


def test_model_lacking_an_element_is_rejected(tmp_path, lj_with_metadata):
    info = inspect_model(lj_with_metadata)
    assert info["elements"] == [18] and info["cutoff_nm"] == 0.85
    assert info["arguments"] == ["positions", "neighbors", "shifts", "box"]
    topology, positions = methyl_chloride()
    config = SimulationConfig(model=lj_with_metadata, topology=topology, positions=positions,
                              output_dir=str(tmp_path), platform="Reference", progress=False)
    expected = r"contains H \(Z=1\), C \(Z=6\), Cl \(Z=17\), which the model does not know.*Ar \(Z=18\)"
    with pytest.raises(ValueError, match=expected):
        run(config)


def test_ani1x_elements_come_from_the_model_itself(tmp_path):
    """No metadata file: the scripted ANI-1x module's own `elements` attribute is used (H, C, N, O)."""
    from nnforce.models.ani1x import ani1x

    path = tmp_path / "ani.pt"
    torch.jit.script(ani1x(members=[0])).save(str(path))
    info = inspect_model(str(path))
    assert info["elements"] == [1, 6, 7, 8] and info["cutoff_nm"] == pytest.approx(0.52)
    assert "atomic_numbers" in info["arguments"]
    with pytest.raises(ValueError, match=r"Cl \(Z=17\)"):
        check_elements(info["elements"], [6, 17, 1, 1, 1])
    check_elements(info["elements"], [6, 1, 1, 1, 1])  # fine
    check_elements(None, [92])  # a model without metadata skips the check


def test_missing_files(tmp_path, lj_with_metadata):
    topology, positions = methyl_chloride()
    with pytest.raises(FileNotFoundError, match="model file not found"):
        run(SimulationConfig(model=str(tmp_path / "nope.pt"), topology=topology, positions=positions,
                             output_dir=str(tmp_path), platform="Reference"))
    with pytest.raises(FileNotFoundError, match="structure file not found"):
        run(SimulationConfig(model=lj_with_metadata, pdb=str(tmp_path / "nope.pdb"), output_dir=str(tmp_path),
                             platform="Reference"))
    not_a_model = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, str(not_a_model))
    with pytest.raises(ValueError, match="not a TorchScript model"):
        inspect_model(str(not_a_model))


def test_bad_platform_lists_the_available_ones(tmp_path, lj_with_metadata):
    topology, positions = methyl_chloride()
    with pytest.raises(ValueError, match=r"unknown OpenMM platform 'Cuda9'.*Reference"):
        run(SimulationConfig(model=lj_with_metadata, topology=topology, positions=positions,
                             output_dir=str(tmp_path), platform="Cuda9"))


def test_bad_settings():
    topology, positions = methyl_chloride()
    with pytest.raises(ValueError, match="unknown integrator"):
        SimulationConfig(model="m.pt", topology=topology, positions=positions, integrator="leapfrog")
    with pytest.raises(ValueError, match="trajectory must end"):
        SimulationConfig(model="m.pt", topology=topology, positions=positions, trajectory="out.nc")
    with pytest.raises(ValueError, match="both forcefield"):
        SimulationConfig(model="m.pt", topology=topology, positions=positions, ml_atoms="0-3")
    with pytest.raises(ValueError, match="give a structure"):
        SimulationConfig(model="m.pt")
    config = SimulationConfig(model="m.pt", topology=topology, positions=positions, integrator="NVE")
    assert config.integrator == "verlet"


def test_atom_selections():
    topology, _ = methyl_chloride()
    assert parse_atom_selection("0-2,4", topology) == [0, 1, 2, 4]
    assert parse_atom_selection("element H", topology) == [2, 3, 4]
    assert parse_atom_selection([1, 0], topology) == [0, 1]
    with pytest.raises(ValueError, match="out of range"):
        parse_atom_selection("3-7", topology)
    with pytest.raises(ValueError, match="matches no atom"):
        parse_atom_selection("resname XYZ", topology)


def test_cli_reports_errors_with_exit_code_2(tmp_path, lj_with_metadata, capsys):
    from nnforce.cli import main

    topology, positions = methyl_chloride()
    pdb = tmp_path / "mcl.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions * 10.0 * openmm.unit.angstrom, handle)
    assert main(["simulate", str(pdb), lj_with_metadata, "-o", str(tmp_path / "o"), "--platform", "Reference"]) == 2
    assert "does not know" in capsys.readouterr().err
    assert main(["simulate", str(pdb), str(tmp_path / "missing.pt"), "--platform", "Reference"]) == 2
    assert "model file not found" in capsys.readouterr().err
    assert main(["simulate", str(pdb), lj_with_metadata, "--platform", "Nope"]) == 2
    assert "unknown OpenMM platform" in capsys.readouterr().err


def test_the_verified_force_of_inspect_model_reaches_the_system(lj_with_metadata):
    """One verification on the way to the kernel: the NNForce inspect_model built while verifying the bytes is the
    one build_ml_system puts on the System (taken once), and it computes what an NNForce of the file computes."""
    import openmm
    from openmm import app, unit

    import nnforce
    from nnforce.force import build_ml_system

    info = inspect_model(lj_with_metadata)
    assert info["format"] == "torchscript" and len(info["verified_force"]) == 1
    built = info["verified_force"][0]
    topology = app.Topology()
    residue = topology.addResidue("AR", topology.addChain())
    for _ in range(3):
        topology.addAtom("Ar", app.element.argon, residue)
    system = build_ml_system(info, topology)
    assert int(system.getForce(0).this) == int(built.this) and info["verified_force"] == []
    again = build_ml_system(info, topology)  # taken: a second System gets an NNForce of its own from the bytes
    assert int(again.getForce(0).this) != int(built.this)
    reference = openmm.System()
    for _ in range(3):
        reference.addParticle(39.9)
    reference.addForce(nnforce.NNForce(lj_with_metadata))
    positions = [[0.0, 0.0, 0.0], [0.36, 0.0, 0.0], [0.0, 0.41, 0.05]] * unit.nanometer
    energies = []
    for candidate in (system, again, reference):
        context = openmm.Context(candidate, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        context.setPositions(positions)
        energies.append(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))
    assert energies[0] != 0.0 and energies[0] == energies[1] == energies[2]
