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


# ---- TensorNet on nnforce's neighbor list: the adapter's own forward vs torchmd-net's forward -------------------

@pytest.fixture(scope="module")
def own_model_pure_torch(checkpoint):
    """torchmd-net's own forward on its pure-torch path (the one it takes without warp-lang), float64.

    Its warp kernels (the default path, used by ``own_model``) compute TensorNet's output norms with float32-sized
    rounding even in float64 (``fn_tensor_norm3`` differs from ``cat(3 I^2, |A|^2, |S|^2)`` by ~1e-8 relative), so
    the 1e-10 comparison is made against the pure-torch path; the warp path is compared at 1e-6 above.
    """
    import torchmdnet.models.tensornet as tensornet
    from torchmdnet.models.model import load_model

    model = load_model(checkpoint, derivative=True, max_num_neighbors=128)
    saved = {name: getattr(tensornet, name) for name in ("compose_tensor", "decompose_tensor", "tensor_matmul_o3",
                                                          "tensor_matmul_so3")}
    for name in saved:
        setattr(tensornet, name, getattr(tensornet, "_" + name))
    for module in model.modules():
        if hasattr(module, "opt"):
            module.opt = False
    yield model
    for name, function in saved.items():
        setattr(tensornet, name, function)


def _pairs(positions_nm, box=None, within_nm=None):
    """All pairs i < j with minimum-image shifts (nm), optionally only those closer than ``within_nm``."""
    from nnforce.models._geometry import minimum_image

    x = torch.tensor(positions_nm)
    n = x.shape[0]
    pairs = torch.triu_indices(n, n, 1)
    raw = x[pairs[1]] - x[pairs[0]]
    shifts = torch.zeros_like(raw) if box is None else minimum_image(raw, torch.tensor(box)) - raw
    if within_nm is not None:
        keep = (raw + shifts).norm(dim=1) < within_nm
        pairs, shifts = pairs[:, keep], shifts[keep]
    return pairs, shifts


def _adapter_energy_forces(module, numbers, positions_nm, pairs, shifts, box=None):
    x = torch.tensor(positions_nm, requires_grad=True)
    energy = module(x, torch.tensor(numbers), pairs, shifts, None if box is None else torch.tensor(box))
    (gradient,) = torch.autograd.grad(energy, x)
    return float(energy.detach()), -gradient.numpy()


def _system(periodic):
    """(atomic numbers, positions, box nm or None): the shared triclinic water box, or the molecule in vacuum."""
    if periodic:
        topology, positions, _, _ = ps.triclinic_box()
        return ps.atomic_numbers(topology), positions, ps.box_nm(topology)
    topology, positions = ps.molecule()
    return ps.atomic_numbers(topology), positions, None


@pytest.mark.parametrize("periodic", [False, True], ids=["vacuum", "triclinic"])
def test_tensornet_adapter_equals_torchmdnet_forward(periodic, potential, own_model_pure_torch, one_torch_thread):
    numbers, positions, box = _system(periodic)
    assert potential._impl.family.cutoff_nm == pytest.approx(0.5)  # TensorNet asks the plugin for its pairs
    module = potential._impl.family.module(numbers)  # the TorchScript module NNForce runs
    pairs, shifts = _pairs(positions, box, within_nm=0.5)
    energy, forces = _adapter_energy_forces(module, numbers, positions, pairs, shifts, box)
    ref_e, ref_f = reference(own_model_pure_torch, numbers, positions, box)
    ps.assert_close(energy, forces, ref_e, ref_f, rtol=1e-10)
    assert abs(ref_e) > 1.0 and np.abs(ref_f).max() > 1.0  # a real model's numbers, not zeros


@pytest.mark.parametrize("periodic", [False, True], ids=["vacuum", "triclinic"])
def test_tensornet_pairs_beyond_cutoff_change_nothing(periodic, potential, checkpoint, one_torch_thread):
    """A Verlet list's skin pairs, far periodic images and far-away padding entries add nothing."""
    numbers, positions, box = _system(periodic)
    module = potential._impl.family.module(numbers)
    pairs, shifts = _pairs(positions, box, within_nm=0.5)
    energy, forces = _adapter_energy_forces(module, numbers, positions, pairs, shifts, box)
    every, every_shifts = _pairs(positions, box)  # all pairs, most beyond 0.5 nm
    assert every.shape[1] > pairs.shape[1] + 50  # pairs beyond the cutoff
    far = torch.tensor([[0, 1], [1, 2]]).T
    padded = torch.cat([every, far], dim=1)
    padded_shifts = torch.cat([every_shifts, torch.full((2, 3), 10.0, dtype=every_shifts.dtype)])
    if periodic:  # the pairs again through a neighbouring image: 1.2+ nm apart
        padded = torch.cat([padded, pairs], dim=1)
        padded_shifts = torch.cat([padded_shifts, shifts + torch.tensor(box[0])])
    extra_e, extra_f = _adapter_energy_forces(module, numbers, positions, padded, padded_shifts, box)
    ps.assert_close(extra_e, extra_f, energy, forces, rtol=1e-12)
    # what makes dropping them exact: TensorNet's own cutoff functions are exactly zero from the cutoff on
    from torchmdnet.models.model import load_model

    rep = load_model(checkpoint).representation_model
    beyond = torch.tensor([5.0, 5.5, 12.0, 100.0], dtype=torch.float64)
    for cutoff in [rep.tensor_embedding.cutoff] + [layer.cutoff for layer in rep.layers]:
        assert torch.all(cutoff(beyond) == 0.0)
    assert torch.all(rep.distance_expansion(beyond) == 0.0)


def test_tensornet_torchscript_calls_no_torchmdnet_operator(potential):
    """The module NNForce runs uses only torch's own operators (no torchmd-net neighbor search or warp kernels), so
    a serialized System runs in a process that never imported torchmdnet and compiles to a .pt2 with dynamic
    atom and pair counts."""
    module = potential._impl.family.module([1, 6, 7, 8])
    graph = str(module.inlined_graph)
    assert "aten::index_add" in graph  # the message passing is in the graph
    for namespace in ("torchmdnet::", "tensornet::", "nvtnet::"):
        assert namespace not in graph


def test_other_torchmdnet_models_keep_their_forward_and_refuse_pt2(tmp_path):
    from nnforce.potentials._formats import check_format
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    args = vars(get_argparse().parse_args(["--model", "equivariant-transformer", "--embedding-dimension", "16",
                                           "--num-layers", "1", "--num-rbf", "8", "--precision", "64"]))
    model = create_model(dict(args))
    path = tmp_path / "et.ckpt"
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}},
               path)
    et = MLPotential("torchmdnet", modelPath=str(path))._impl.family
    assert et.cutoff_nm is None  # finds its own pairs
    with pytest.raises(ValueError, match="refused for the 'torchmdnet' potential: this TorchMD-Net model runs its "
                                         "own neighbor search \\(its representation is 'equivariant-transformer'"):
        check_format("pt2", et, "torchmdnet")
    check_format("torchscript", et, "torchmdnet")


def test_tensornet_charge_atomref_and_lower_cutoff_equal_torchmdnet(tmp_path, monkeypatch, one_torch_thread):
    """A TensorNet with a total-charge input, an Atomref prior (random references) and cutoff_lower > 0 (pairs closer
    than it are dropped, self loops kept): the adapter equals torchmd-net's own forward (pure-torch path, float64)."""
    import torchmdnet.models.tensornet as tensornet
    from torchmdnet.models.model import create_model, load_model
    from torchmdnet.scripts.train import get_argparse

    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "32", "--num-layers", "2",
                                           "--num-rbf", "16", "--precision", "64", "--charge", "true",
                                           "--prior-model", "Atomref", "--cutoff-lower", "0.3"]))
    args["prior_args"] = {"max_z": 100}
    torch.manual_seed(7)
    model = create_model(dict(args))
    with torch.no_grad():
        for parameter in model.prior_model.parameters():
            parameter.normal_()
    path = tmp_path / "charged.ckpt"
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}},
               path)
    family = MLPotential("torchmdnet", modelPath=str(path))._impl.family
    assert family.own_forward_reason is None and family.supports_charge
    own = load_model(str(path), derivative=True)
    for name in ("compose_tensor", "decompose_tensor", "tensor_matmul_o3", "tensor_matmul_so3"):
        monkeypatch.setattr(tensornet, name, getattr(tensornet, "_" + name))
    for module in own.modules():
        if hasattr(module, "opt"):
            monkeypatch.setattr(module, "opt", False)
    generator = torch.Generator().manual_seed(2)
    positions = torch.rand(12, 3, generator=generator, dtype=torch.float64) * 0.6
    numbers = [1, 6, 7, 8] * 3
    ref_e, ref_neg_dy = own(torch.tensor(numbers), positions * 10.0, q=torch.tensor([1.0], dtype=torch.float64))
    module = family.module(numbers, charge=1)
    pairs = torch.triu_indices(12, 12, 1)
    energy, forces = _adapter_energy_forces(module, numbers, positions.numpy(), pairs,
                                            torch.zeros(pairs.shape[1], 3, dtype=torch.float64))
    ps.assert_close(energy, forces, ref_e.item() * ps.KJ_MOL_PER_EV, ref_neg_dy.detach().numpy() * ps.KJ_MOL_PER_EV * 10.0,
                    rtol=1e-10)
    neutral, _ = _adapter_energy_forces(family.module(numbers, charge=0), numbers, positions.numpy(), pairs,
                                        torch.zeros(pairs.shape[1], 3, dtype=torch.float64))
    assert abs(neutral - energy) > 1e-4  # kJ/mol: the charge reaches the model (rounding is ~1e-13 here)
