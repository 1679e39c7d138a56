"""TorchANI through NNForce equals torchani's own ASE calculator (float64, 1e-6 relative), vacuum and triclinic
box, through MLPotential.createSystem and createMixedSystem.

The model is the real ANI-1x ensemble (8 networks) from the NeuroChem files in the torchani 2.1.1 wheel, built
with torchani's own constructors (``ani1x``), and the same networks read by nnforce's own reader
(``nnforce-ani1x``, which uses the plugin's neighbor list instead of torchani's pair search).
torchani must be installed (requirements-potentials.txt): no skip.
"""
import numpy as np
import pytest

import potentials_systems as ps
from nnforce.potentials import MLPotential
from nnforce.potentials import ani as ani_adapter


@pytest.fixture(scope="module")
def calculator():
    import ase.units
    import torchani

    model = ani_adapter.torchani_ani1x().double()
    calc = torchani.ase.Calculator(model.species, model)
    calc.hartree_in_ev = ase.units.Hartree
    return calc


@pytest.fixture(scope="module", params=["ani1x", "nnforce-ani1x"])
def potential(request):
    return MLPotential(request.param)


def reference(calculator, numbers, positions_nm, box=None, name="ani1x"):
    """The family's own model: torchani's ASE calculator (``ani1x``) or nnforce's eager ANI-1x (``nnforce-ani1x``).

    torchani's calculator returns eV via ASE's Hartree; undo that to get Hartree, then our kJ/mol per Hartree.
    """
    from nnforce.potentials._common import KJ_MOL_PER_HARTREE

    if name == "nnforce-ani1x":
        return nnforce_reference(numbers, positions_nm, box)
    atoms = ps.ase_atoms(numbers, positions_nm, box)
    atoms.calc = calculator
    to_kj = KJ_MOL_PER_HARTREE / calculator.hartree_in_ev
    return atoms.get_potential_energy() * to_kj, atoms.get_forces() * to_kj * 10.0


def nnforce_reference(numbers, positions_nm, box=None):
    import torch
    from nnforce.models.ani1x import ani1x

    model = ani1x(dtype=torch.float64)
    positions = torch.tensor(positions_nm, dtype=torch.float64, requires_grad=True)
    box_t = None if box is None else torch.tensor(box, dtype=torch.float64)
    energy = model(positions, torch.tensor(numbers), box=box_t)
    forces = -torch.autograd.grad(energy, positions)[0]
    return energy.item(), forces.numpy()


def test_nnforce_reader_matches_torchani(calculator):
    """nnforce's own NeuroChem reader and torchani's agree to 1e-5 relative (torchani parses the AEV constants
    in float32, nnforce in float64: that rounding is the difference)."""
    topology, positions = ps.molecule()
    numbers = ps.atomic_numbers(topology)
    e1, f1 = nnforce_reference(numbers, positions)
    e2, f2 = reference(calculator, numbers, positions)
    ps.assert_close(e1, f1, e2, f2, rtol=1e-5)


def test_create_system_vacuum(potential, calculator, one_torch_thread):
    topology, positions = ps.molecule()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(calculator, ps.atomic_numbers(topology), positions, name=potential.name)
    ps.assert_close(energy, forces, ref_e, ref_f)
    # absolute agreement too: the self energies make the total large, so 1e-6 relative alone would be loose
    assert abs(energy - ref_e) < 1e-6


def test_create_system_triclinic_box(potential, calculator, one_torch_thread):
    topology, positions, _, _ = ps.triclinic_box()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(calculator, ps.atomic_numbers(topology), positions, ps.box_nm(topology), potential.name)
    ps.assert_close(energy, forces, ref_e, ref_f)
    assert abs(energy - ref_e) < 1e-5


@pytest.mark.parametrize("make", [ps.vacuum_peptide, ps.triclinic_box], ids=["vacuum", "triclinic"])
def test_create_mixed_system(make, potential, calculator, one_torch_thread):
    topology, positions, mm_system, peptide = make()
    mixed = potential.createMixedSystem(topology, mm_system, peptide, forceGroup=1)
    energy, forces = ps.openmm_energy_forces(mixed, positions, groups={1})
    box = ps.box_nm(topology) if topology.getPeriodicBoxVectors() is not None else None
    ref_e, ref_f = reference(calculator, ps.atomic_numbers(topology, peptide), positions[peptide], box, potential.name)
    ps.assert_close(energy, forces[peptide], ref_e, ref_f)
    others = np.setdiff1d(np.arange(len(positions)), peptide)
    assert np.abs(forces[others]).max() == 0.0
