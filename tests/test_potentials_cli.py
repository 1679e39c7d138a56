"""``nnforce simulate --potential NAME [--model-path FILE]``: the System comes from nnforce.potentials.MLPotential."""
import json

import numpy as np
import openmm.app as app
import openmm.unit as unit
import pytest

import potentials_systems as ps
from nnforce.cli import main
from nnforce.potentials import MLPotential


def test_simulate_with_a_potential_name(tmp_path, one_torch_thread):
    """0 production steps without minimisation: the final potential is the potential's energy of the input."""
    topology, positions = ps.molecule()
    pdb = tmp_path / "ala2.pdb"
    with open(pdb, "w") as handle:
        app.PDBFile.writeFile(topology, positions * unit.nanometer, handle)
    out = tmp_path / "run"
    code = main(["simulate", str(pdb), "--potential", "nnforce-ani1x", "--steps", "0", "--equilibration-steps", "0", "--no-minimize",
                 "--platform", "Reference", "--trajectory", "none", "-o", str(out), "--no-progress"])
    assert code == 0
    with open(out / "result.json") as handle:
        result = json.load(handle)
    reread = app.PDBFile(str(pdb))
    expected, _ = ps.openmm_energy_forces(MLPotential("nnforce-ani1x").createSystem(reread.topology),
                                          np.array(reread.positions.value_in_unit(unit.nanometer)))
    assert result["final_potential_kj_mol"] == pytest.approx(expected, rel=1e-9)


def test_simulate_refuses_model_and_potential_together(tmp_path, capsys):
    assert main(["simulate", "mol.pdb", "model.pt", "--potential", "mace", "-o", str(tmp_path)]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["simulate", "mol.pdb", "model.pt", "--model-path", "x.model", "-o", str(tmp_path)]) == 2
    assert "goes with --potential" in capsys.readouterr().err
    assert main(["simulate", "mol.pdb", "--potential", "mace-huge", "-o", str(tmp_path)]) == 2
    assert "known names" in capsys.readouterr().err
