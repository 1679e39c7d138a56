"""MACE through NNForce equals MACE's own ASE calculator (float64, 1e-6 relative), vacuum and triclinic box,
through MLPotential.createSystem and createMixedSystem.

The model is a randomly initialised ScaleShiftMACE of MACE-OFF23-small's shape (2 interactions, 96x0e, l_max 3,
r_max 5 A, correlation 3; 274k parameters), seeded, built with mace-torch's own constructor and saved with
torch.save as mace_run_train does. mace-torch must be installed (requirements-potentials.txt): no skip.
"""
import numpy as np
import pytest
import torch

import potentials_systems as ps
from nnforce.potentials import MLPotential
from nnforce.potentials import mace as mace_adapter

E0_EV = {1: -13.57, 6: -1029.41, 7: -1484.82, 8: -2041.85}


@pytest.fixture(scope="module")
def mace_file(tmp_path_factory):
    modules = mace_adapter.import_mace()
    from e3nn import o3

    torch.manual_seed(2026)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as mace_run_train --default_dtype float64: E0s and r_max in float64
    model = modules.ScaleShiftMACE(
        atomic_inter_scale=0.6, atomic_inter_shift=0.0, r_max=5.0, num_bessel=8, num_polynomial_cutoff=5,
        max_ell=3, interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        num_interactions=2, num_elements=4, hidden_irreps=o3.Irreps("96x0e"), MLP_irreps=o3.Irreps("16x0e"),
        gate=torch.nn.functional.silu, atomic_energies=np.array([E0_EV[z] for z in (1, 6, 7, 8)]),
        avg_num_neighbors=12.0, atomic_numbers=[1, 6, 7, 8], correlation=3, radial_type="bessel")
    torch.set_default_dtype(default)
    path = tmp_path_factory.mktemp("mace") / "random_off_small.model"
    torch.save(model, path)
    return str(path)


@pytest.fixture(scope="module")
def potential(mace_file):
    return MLPotential("mace", modelPath=mace_file)


@pytest.fixture(scope="module")
def calculator(mace_file):
    from mace.calculators import MACECalculator

    return MACECalculator(model_paths=mace_file, device="cpu", default_dtype="float64")


def reference(calculator, numbers, positions_nm, box=None):
    atoms = ps.ase_atoms(numbers, positions_nm, box)
    atoms.calc = calculator
    energy = atoms.get_potential_energy() * ps.KJ_MOL_PER_EV
    forces = atoms.get_forces() * ps.KJ_MOL_PER_EV * 10.0  # eV/A -> kJ/mol/nm
    e0 = sum(E0_EV[z] for z in numbers) * ps.KJ_MOL_PER_EV  # the isolated-atom energies the model was built with
    return energy, forces, energy - e0


def test_create_system_vacuum(potential, calculator, one_torch_thread):
    topology, positions = ps.molecule()
    system = potential.createSystem(topology, returnEnergyType="energy")
    energy, forces = ps.openmm_energy_forces(system, positions)
    ref_e, ref_f, _ = reference(calculator, ps.atomic_numbers(topology), positions)
    ps.assert_close(energy, forces, ref_e, ref_f)
    inter = potential.createSystem(topology)  # openmm-ml's default returnEnergyType: "interaction_energy"
    e_inter, _ = ps.openmm_energy_forces(inter, positions)
    _, _, ref_inter = reference(calculator, ps.atomic_numbers(topology), positions)
    assert abs(e_inter - ref_inter) <= 1e-6 * abs(ref_inter)


def test_create_system_triclinic_box(potential, calculator, one_torch_thread):
    topology, positions, _, _ = ps.triclinic_box()
    system = potential.createSystem(topology, returnEnergyType="energy")
    energy, forces = ps.openmm_energy_forces(system, positions)
    ref_e, ref_f, _ = reference(calculator, ps.atomic_numbers(topology), positions, ps.box_nm(topology))
    ps.assert_close(energy, forces, ref_e, ref_f)
    # translating one water by a lattice vector changes nothing (the plugin's images reach the model)
    moved = positions.copy()
    moved[-3:] += ps.box_nm(topology)[1] - ps.box_nm(topology)[2]
    energy2, forces2 = ps.openmm_energy_forces(system, moved)
    ps.assert_close(energy2, forces2, ref_e, ref_f)


@pytest.mark.parametrize("make", [ps.vacuum_peptide, ps.triclinic_box], ids=["vacuum", "triclinic"])
def test_create_mixed_system(make, potential, calculator, one_torch_thread):
    topology, positions, mm_system, peptide = make()
    mixed = potential.createMixedSystem(topology, mm_system, peptide, forceGroup=1, returnEnergyType="energy")
    energy, forces = ps.openmm_energy_forces(mixed, positions, groups={1})
    box = ps.box_nm(topology) if topology.getPeriodicBoxVectors() is not None else None
    ref_e, ref_f, _ = reference(calculator, ps.atomic_numbers(topology, peptide), positions[peptide], box)
    ps.assert_close(energy, forces[peptide], ref_e, ref_f)
    others = np.setdiff1d(np.arange(len(positions)), peptide)
    assert np.abs(forces[others]).max() == 0.0
    # interpolate: lambda_interpolate = 1 is the mixed System, 0 the force field alone
    lam = potential.createMixedSystem(topology, mm_system, peptide, interpolate=True, returnEnergyType="energy")
    e_mixed, _ = ps.openmm_energy_forces(mixed, positions)
    e_mm, _ = ps.openmm_energy_forces(mm_system, positions)
    e_one, _ = ps.openmm_energy_forces(lam, positions, parameters={"lambda_interpolate": 1.0})
    e_zero, _ = ps.openmm_energy_forces(lam, positions, parameters={"lambda_interpolate": 0.0})
    assert e_one == pytest.approx(e_mixed, rel=1e-9, abs=1e-6)
    if box is None:  # with PME the region's removed MM pairs are restored as plain Coulomb (nnforce.mlmm), not PME
        assert e_zero == pytest.approx(e_mm, rel=1e-9, abs=1e-6)


def test_single_precision_on_cpu_platform(potential, calculator, one_torch_thread):
    """precision='single' (openmm-ml's option) runs float32 on the CPU platform: 1e-4 relative of float64 MACE."""
    import openmm
    import openmm.unit as unit

    topology, positions = ps.molecule()
    system = potential.createSystem(topology, precision="single", returnEnergyType="energy")
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"))
    context.setPositions(positions * unit.nanometer)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    ref_e, _, _ = reference(calculator, ps.atomic_numbers(topology), positions)
    assert abs(energy - ref_e) <= 1e-4 * abs(ref_e)
