"""NequIP and Allegro through NNForce equal the NequIP framework's own model evaluated on nequip's own graph
(from_ase + NeighborListTransform; float64, 1e-6 relative), vacuum and triclinic box, through
MLPotential.createSystem and createMixedSystem.

Models: randomly initialised, seeded, built with the packages' own constructors: NequIPGNNModel (3 layers,
l_max 1, 32 features, r_max 5 A; 224k parameters) and AllegroModel (2 layers, l_max 1, 32 tensor features,
r_max 5 A). nequip and nequip-allegro must be installed (requirements-potentials.txt): no skip.
"""
import contextlib

import numpy as np
import pytest
import torch

import potentials_systems as ps
from nnforce.potentials import MLPotential
from nnforce.potentials import nequip as nequip_adapter

TYPES = ["H", "C", "N", "O"]


def build(family):
    nequip_adapter.import_nequip()
    common = dict(seed=2026, model_dtype="float64", r_max=5.0, type_names=TYPES, avg_num_neighbors=12.0,
                  per_type_energy_shifts={"H": -13.57, "C": -1029.41, "N": -1484.82, "O": -2041.85},
                  per_type_energy_scales={"H": 0.5, "C": 0.5, "N": 0.5, "O": 0.5})
    if family == "nequip":
        from nequip.model import NequIPGNNModel

        return NequIPGNNModel(num_layers=3, l_max=1, num_features=32, **common)
    from allegro.model import AllegroModel

    return AllegroModel(num_layers=2, l_max=1, num_scalar_features=32, num_tensor_features=32,
                        radial_chemical_embed=dict(_target_="allegro.nn.TwoBodyBesselScalarEmbed", num_bessels=8),
                        **common)


@pytest.fixture(scope="module", params=["nequip", "allegro"])
def family(request):
    with nequip_default_dtype():
        model = build(request.param)
    return request.param, model, MLPotential(request.param, model=model)


@contextlib.contextmanager
def nequip_default_dtype():
    """nequip's workflows run with torch's default dtype float64 (its global state); nnforce.potentials restores the
    caller's default after initialising nequip, so the reference evaluation sets it as nequip's own tools do."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def reference(model, numbers, positions_nm, box=None):
    from nequip.data import from_ase
    from nequip.data.transforms import ChemicalSpeciesToAtomTypeMapper, NeighborListTransform

    with nequip_default_dtype():
        data = from_ase(ps.ase_atoms(numbers, positions_nm, box))
        data = NeighborListTransform(r_max=5.0)(ChemicalSpeciesToAtomTypeMapper(TYPES)(data))
        out = model(data)
    return out["total_energy"].item() * ps.KJ_MOL_PER_EV, out["forces"].detach().numpy() * ps.KJ_MOL_PER_EV * 10.0


def test_create_system_vacuum(family, one_torch_thread):
    name, model, potential = family
    topology, positions = ps.molecule()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(model, ps.atomic_numbers(topology), positions)
    ps.assert_close(energy, forces, ref_e, ref_f)


def test_create_system_triclinic_box(family, one_torch_thread):
    name, model, potential = family
    topology, positions, _, _ = ps.triclinic_box()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(model, ps.atomic_numbers(topology), positions, ps.box_nm(topology))
    ps.assert_close(energy, forces, ref_e, ref_f)


@pytest.mark.parametrize("make", [ps.vacuum_peptide, ps.triclinic_box], ids=["vacuum", "triclinic"])
def test_create_mixed_system(make, family, one_torch_thread):
    name, model, potential = family
    topology, positions, mm_system, peptide = make()
    mixed = potential.createMixedSystem(topology, mm_system, peptide, forceGroup=1)
    energy, forces = ps.openmm_energy_forces(mixed, positions, groups={1})
    box = ps.box_nm(topology) if topology.getPeriodicBoxVectors() is not None else None
    ref_e, ref_f = reference(model, ps.atomic_numbers(topology, peptide), positions[peptide], box)
    ps.assert_close(energy, forces[peptide], ref_e, ref_f)
    others = np.setdiff1d(np.arange(len(positions)), peptide)
    assert np.abs(forces[others]).max() == 0.0
