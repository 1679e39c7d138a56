"""ML/MM Systems: the model replaces the MM terms inside the ML region; lambda interpolates with exact dE/dlambda."""
import os

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch

import nnforce
from nnforce.mlmm import create_mlmm_system
from nnforce.models import RadialMLP

ELEMENTS = [1, 6, 7, 8, 16]


@pytest.fixture(scope="module")
def solvated_protein():
    """OpenMM's test.pdb protein with its first five waters, amber14 + flexible TIP3P, no cutoff."""
    pdb = app.PDBFile(os.path.join(os.path.dirname(app.__file__), "data", "test.pdb"))
    modeller = app.Modeller(pdb.topology, pdb.positions)
    waters = [r for r in modeller.topology.residues() if r.name == "HOH"]
    modeller.delete(waters[5:])
    forcefield = app.ForceField("amber14-all.xml", "amber14/tip3p.xml")
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    return forcefield, modeller.topology, modeller.positions, system


def energy(system, positions, parameters=None):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getParameterDerivatives=bool(parameters))
    return state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole), state


def model():
    return torch.jit.script(RadialMLP(elements=ELEMENTS, cutoff=0.5, seed=1))


def direct_model_energy(positions_nm, numbers):
    m = RadialMLP(elements=ELEMENTS, cutoff=0.5, seed=1).double()
    return m(torch.tensor(positions_nm, dtype=torch.float64), torch.tensor(numbers)).item()


def test_whole_molecule_region_replaces_exactly_its_mm_energy(solvated_protein):
    forcefield, topology, positions, system = solvated_protein
    water = [r for r in topology.residues() if r.name == "HOH"][2]
    ml_atoms = [a.index for a in water.atoms()]
    mlmm = create_mlmm_system(system, topology, ml_atoms, model())
    pos_nm = np.array(positions.value_in_unit(openmm.unit.nanometer))
    # The water alone, built independently by OpenMM: its MM energy is exactly what the ML region loses.
    alone = app.Modeller(topology, positions)
    alone.delete([r for r in alone.topology.residues() if r.index != water.index])
    water_system = forcefield.createSystem(alone.topology, nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    e_water_mm, _ = energy(water_system, alone.positions)
    e_full, _ = energy(system, positions)
    e_model = direct_model_energy(pos_nm[ml_atoms], [8, 1, 1])
    e_mlmm, _ = energy(mlmm, positions)
    assert e_mlmm == pytest.approx(e_full - e_water_mm + e_model, rel=1e-9, abs=1e-7)
    assert abs(e_water_mm) > 0.01 and abs(e_model) > 1e-3


def test_lambda_interpolates_with_exact_derivative(solvated_protein):
    _, topology, positions, system = solvated_protein
    residue = list(topology.residues())[3]  # a residue inside the chain: the region cuts covalent bonds
    ml_atoms = [a.index for a in residue.atoms()]
    mlmm = create_mlmm_system(system, topology, ml_atoms, model(), lambda_ml=0.0)
    e_full, _ = energy(system, positions)
    e0, _ = energy(mlmm, positions, {"lambda_ml": 0.0})
    e1, _ = energy(mlmm, positions, {"lambda_ml": 1.0})
    assert e0 == pytest.approx(e_full, rel=1e-10)  # lambda = 0 is the MM System
    lam, h = 0.3, 1e-4
    _, state = energy(mlmm, positions, {"lambda_ml": lam})
    derivative = state.getEnergyParameterDerivatives()["lambda_ml"]
    numeric = (energy(mlmm, positions, {"lambda_ml": lam + h})[0] - energy(mlmm, positions, {"lambda_ml": lam - h})[0]) / (2 * h)
    assert derivative == pytest.approx(numeric, rel=1e-6)
    assert derivative == pytest.approx(e1 - e0, rel=1e-9)
    # and lambda = 1 equals the plain ML/MM System
    plain = create_mlmm_system(system, topology, ml_atoms, model())
    assert energy(plain, positions)[0] == pytest.approx(e1, rel=1e-10)


def test_input_system_is_not_modified(solvated_protein):
    _, topology, positions, system = solvated_protein
    before = openmm.XmlSerializer.serialize(system)
    create_mlmm_system(system, topology, [0, 1, 2], model())
    assert openmm.XmlSerializer.serialize(system) == before


def test_bad_input(solvated_protein):
    forcefield, topology, positions, system = solvated_protein
    n = system.getNumParticles()
    with pytest.raises(ValueError, match="ml_atoms is empty"):
        create_mlmm_system(system, topology, [], model())
    with pytest.raises(ValueError, match="outside"):
        create_mlmm_system(system, topology, [0, n + 5], model())
    with pytest.raises(ValueError, match="duplicate"):
        create_mlmm_system(system, topology, [1, 1], model())
    other = app.Modeller(topology, positions)
    other.delete(list(other.topology.residues())[:1])
    with pytest.raises(ValueError, match="the topology has"):
        create_mlmm_system(system, other.topology, [0], model())
    rigid = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds)
    with pytest.raises(ValueError, match="constraints inside the ML region"):
        create_mlmm_system(rigid, topology, list(range(20)), model())
    with pytest.raises(NotImplementedError, match="electrostatic"):
        create_mlmm_system(system, topology, [0], model(), embedding="electrostatic")
