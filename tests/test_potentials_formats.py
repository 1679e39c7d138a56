"""MLPotential's ``modelFormat`` (TorchScript or .pt2): the eager module a family hands the .pt2 compiler is the
same model as its TorchScript module, and bad requests are ValueErrors before any Context exists.

Compiling a .pt2 takes minutes, so the compiled packages are checked by bench/vs_openmmml.py (energies against
openmm-ml and against the TorchScript path), not here.
"""
import openmm.app as app
import pytest
import torch

from nnforce.potentials import MLPotential
from nnforce.potentials._formats import example_inputs


def _topology(symbols):
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, symbol in enumerate(symbols):
        topology.addAtom(f"{symbol}{k}", app.Element.getBySymbol(symbol), residue)
    return topology


def test_eager_ani_module_equals_its_torchscript_module():
    family = MLPotential("ani1x")._impl.family
    numbers = [1, 6, 7, 8]
    eager = family.module(numbers, precision="double", _eager=True)
    scripted = family.module(numbers, precision="double")
    assert not isinstance(eager, torch.jit.ScriptModule) and isinstance(scripted, torch.jit.ScriptModule)
    example = example_inputs(numbers, family.cutoff_nm, False, torch.float64)
    inputs = {k: example[k] for k in ("positions", "atomic_numbers")}
    e_eager, e_script = float(eager(**inputs)), float(scripted(**inputs))
    assert abs(e_eager - e_script) <= 1e-9 * abs(e_script)
    assert abs(e_script) > 1e4  # ANI-1x's total energy of a C/H/N/O cluster (kJ/mol), not a zero


def test_example_inputs_follow_what_nnforce_passes():
    example = example_inputs([8, 1, 1], 0.5, True, torch.float32)
    assert set(example) == {"positions", "atomic_numbers", "box", "neighbors", "shifts"}
    assert sorted(set(example["atomic_numbers"].tolist())) == [1, 8]
    n = example["positions"].shape[0]
    assert example["neighbors"].shape == (2, n * (n - 1) // 2) and example["positions"].dtype == torch.float32
    distances = torch.cdist(example["positions"].double(), example["positions"].double())
    assert distances[~torch.eye(n, dtype=torch.bool)].min() > 0.1  # no overlapping atoms (nm)
    assert set(example_inputs([1, 6], None, False, torch.float64)) == {"positions", "atomic_numbers"}


def test_unknown_model_format_is_a_value_error():
    with pytest.raises(ValueError, match="modelFormat must be one of torchscript, pt2, got 'onnx'"):
        MLPotential("ani1x").createSystem(_topology(["O", "H", "H"]), modelFormat="onnx")


def test_private_eager_flag_is_not_an_option():
    with pytest.raises(ValueError, match="does not take the argument"):
        MLPotential("ani1x").createSystem(_topology(["O", "H", "H"]), _eager=True)


def test_torchmdnet_tensornet_pt2_is_accepted_and_its_eager_module_equals_torchscript(tmp_path):
    """TensorNet runs on the plugin's neighbor list, so its .pt2 is no longer refused (other TorchMD-Net models still
    are: tests/test_potentials_torchmdnet.py); the eager module the compiler gets equals the TorchScript module."""
    from nnforce.potentials._formats import check_format
    from torchmdnet.models.model import create_model
    from torchmdnet.scripts.train import get_argparse

    args = vars(get_argparse().parse_args(["--model", "tensornet", "--embedding-dimension", "16", "--num-layers", "1",
                                           "--num-rbf", "8", "--precision", "64"]))
    torch.manual_seed(5)
    model = create_model(dict(args))
    path = tmp_path / "tensornet.ckpt"
    torch.save({"hyper_parameters": args, "state_dict": {"model." + k: v for k, v in model.state_dict().items()}},
               path)
    family = MLPotential("torchmdnet", modelPath=str(path))._impl.family
    check_format("pt2", family, "torchmdnet", periodic=False)
    check_format("pt2", family, "torchmdnet", periodic=True)
    numbers = [1, 6, 7, 8]
    eager = family.module(numbers, precision="double", _eager=True)
    scripted = family.module(numbers, precision="double")
    example = example_inputs(numbers, family.cutoff_nm, True, torch.float64)
    e_eager, e_script = float(eager(**example)), float(scripted(**example))
    assert abs(e_eager - e_script) <= 1e-12 * abs(e_script) and abs(e_script) > 1e-3


def test_nequip_periodic_pt2_is_refused_vacuum_is_not():
    from nnforce.potentials._formats import check_format
    from nnforce.potentials.nequip import NequIPPotential

    with pytest.raises(ValueError, match="refused for the 'nequip' potential: its periodic .pt2"):
        check_format("pt2", NequIPPotential, "nequip", periodic=True)
    check_format("pt2", NequIPPotential, "nequip", periodic=False)
