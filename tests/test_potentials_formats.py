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


def test_nequip_pt2_is_offered_vacuum_and_periodic():
    """Periodic NequIP .pt2 was refused after a bench row showed its forces off openmm-ml's; the cause was the bench's
    openmm-ml shim (it handed the water box a float64 model with other weights), and the compiled package's forces
    equal the eager module's (bench/results/vs_openmmml_nequip.md), so both are offered again."""
    from nnforce.potentials._formats import check_format
    from nnforce.potentials.nequip import NequIPPotential

    assert getattr(NequIPPotential, "pt2_refused_periodic", None) is None
    check_format("pt2", NequIPPotential, "nequip", periodic=True)
    check_format("pt2", NequIPPotential, "nequip", periodic=False)


def test_torchani_export_stand_ins_compute_what_torchani_computes():
    """The four functions swapped in while torchani's ANI is traced for .pt2 give torchani's own results: the same
    pairs (in torchani's order), the same set of neighbour-pair triples with their signs, the same angular terms, and
    the same energies and forces of the whole ANI-1x chain (torchani's code vs the stand-ins, float64)."""
    import torchani.aev as aev

    from nnforce.potentials import _torchani_export as ex

    generator = torch.Generator().manual_seed(7)
    coordinates = torch.rand(1, 14, 3, generator=generator, dtype=torch.float64) * 6.0
    padding = torch.zeros(1, 14, dtype=torch.bool)
    padding[0, -2:] = True
    pairs = aev.neighbor_pairs_nopbc(padding, coordinates, 3.5)
    assert torch.equal(ex.neighbor_pairs_nopbc(padding, coordinates, 3.5), pairs) and pairs.shape[1] > 10

    def triples(result):
        centre, index, sign = result
        return sorted((int(centre[k]), tuple(sorted([(int(index[0, k]), int(sign[0, k])),
                                                     (int(index[1, k]), int(sign[1, k]))])))
                      for k in range(centre.shape[0]))

    reference = triples(aev.triple_by_molecule(pairs))
    assert triples(ex.triple_by_molecule(pairs)) == reference and len(reference) > 10

    family = MLPotential("ani1x")._impl.family
    Rcr, EtaR, ShfR, Rca, ShfZ, EtaA, Zeta, ShfA = family.model.aev_computer.constants()
    vectors = torch.randn(2, 40, 3, generator=generator, dtype=torch.float64) * 1.5
    constants = [c.double() for c in (ShfZ, EtaA, Zeta, ShfA)]
    theirs = aev.angular_terms(Rca, *constants, vectors)
    assert torch.allclose(ex.angular_terms(Rca, *constants, vectors), theirs, rtol=1e-12, atol=0)

    numbers = [1, 6, 7, 8]
    module = family.module(numbers, precision="double", _eager=True)
    z = torch.tensor([6, 1, 1, 1, 1, 8, 1])  # no nitrogen: the species-skip branch is taken by torchani
    x = (torch.rand(7, 3, generator=generator, dtype=torch.float64) * 0.3).requires_grad_(True)
    energy = module(x, z)
    forces = torch.autograd.grad(energy, x)[0]
    from nnforce.potentials.ani import TorchANIAdapter, TorchANIExportAdapter

    assert isinstance(module, TorchANIExportAdapter)
    x2 = x.detach().clone().requires_grad_(True)
    energy2 = TorchANIAdapter.forward(module, x2, z)  # the same chain through torchani's own functions
    forces2 = torch.autograd.grad(energy2, x2)[0]
    assert abs(float(energy) - float(energy2)) <= 1e-12 * abs(float(energy2))
    assert torch.allclose(forces, forces2, rtol=1e-9, atol=1e-9 * float(forces2.abs().max()))
