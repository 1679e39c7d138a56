"""TorchMD-Net through NNForce equals TorchMD-Net's own model (load_model(..., derivative=True), float64,
1e-6 relative), vacuum and triclinic box, through MLPotential.createSystem and createMixedSystem.

The model is a randomly initialised TensorNet (128 channels, 2 layers, 32 RBFs, 5 A cutoff; seeded) made by
TorchMD-Net's own create_model from torchmd-train's default hyperparameters, saved as the checkpoint layout
torchmd-train writes ({"hyper_parameters", "state_dict"}). torchmd-net must be installed
(requirements-potentials.txt): no skip. The first run compiles TorchMD-Net's warp kernels (about a minute; cached).
"""
import numpy as np
import pytest
import torch

import potentials_systems as ps
from nnforce.potentials import MLPotential


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    args = vars(get_argparse().parse_args([
        "--model", "tensornet", "--embedding-dimension", "128", "--num-layers", "2", "--num-rbf", "32",
        "--cutoff-upper", "5.0", "--precision", "64", "--max-num-neighbors", "64"]))
    torch.manual_seed(2026)
    model = create_model(dict(args))
    path = tmp_path_factory.mktemp("torchmdnet") / "tensornet.ckpt"
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}},
               path)
    return str(path)


@pytest.fixture(scope="module")
def potential(checkpoint):
    return MLPotential("torchmdnet", modelPath=checkpoint)


@pytest.fixture(scope="module")
def own_model(checkpoint):
    from torchmdnet.models.model import load_model

    return load_model(checkpoint, derivative=True, max_num_neighbors=128)


def reference(model, numbers, positions_nm, box=None):
    box_t = None if box is None else torch.tensor(box * 10.0)
    energy, neg_dy = model(torch.tensor(numbers), torch.tensor(positions_nm * 10.0), box=box_t)
    return energy.item() * ps.KJ_MOL_PER_EV, neg_dy.detach().numpy() * ps.KJ_MOL_PER_EV * 10.0


def test_create_system_vacuum(potential, own_model, one_torch_thread):
    topology, positions = ps.molecule()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(own_model, ps.atomic_numbers(topology), positions)
    ps.assert_close(energy, forces, ref_e, ref_f)


def test_create_system_triclinic_box(potential, own_model, one_torch_thread):
    topology, positions, _, _ = ps.triclinic_box()
    energy, forces = ps.openmm_energy_forces(potential.createSystem(topology), positions)
    ref_e, ref_f = reference(own_model, ps.atomic_numbers(topology), positions, ps.box_nm(topology))
    ps.assert_close(energy, forces, ref_e, ref_f)


@pytest.mark.parametrize("make", [ps.vacuum_peptide, ps.triclinic_box], ids=["vacuum", "triclinic"])
def test_create_mixed_system(make, potential, own_model, one_torch_thread):
    topology, positions, mm_system, peptide = make()
    mixed = potential.createMixedSystem(topology, mm_system, peptide, forceGroup=1)
    energy, forces = ps.openmm_energy_forces(mixed, positions, groups={1})
    box = ps.box_nm(topology) if topology.getPeriodicBoxVectors() is not None else None
    ref_e, ref_f = reference(own_model, ps.atomic_numbers(topology, peptide), positions[peptide], box)
    ps.assert_close(energy, forces[peptide], ref_e, ref_f)
    others = np.setdiff1d(np.arange(len(positions)), peptide)
    assert np.abs(forces[others]).max() == 0.0
