"""AIMNet2 (the aimnet package) through MLPotential (issue 23).

The model is a small seeded AIMNet2 built from the architecture file bundled in the aimnet wheel (nothing is
downloaded). The adapter module that MLPotential compiles to ``.pt2`` equals aimnet's own ``AIMNet2Calculator`` on
the same structure (energy and autograd forces, neutral and charged). Compiling the ``.pt2`` takes minutes here, so
the compiled package running in NNForce is checked by bench/aimnet_vs_calculator.py (bench/results/aimnet.md), as
tests/test_potentials_formats.py does for the other families. aimnet must be installed (requirements-potentials.txt).
"""
import os

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch

from nnforce.potentials import MLPotential
from nnforce.units import ANGSTROM_PER_NM, KJ_MOL_PER_EV

pytestmark = pytest.mark.slow  # importing aimnet defines its Warp kernels: ~20 s of CPU on this machine

NUMBERS = [8, 1, 1, 8, 1, 1, 6, 1]
POSITIONS_NM = np.array([[0.0, 0.0, 0.0], [0.096, 0.0, 0.0], [-0.024, 0.093, 0.0], [0.28, 0.01, 0.02],
                         [0.33, 0.09, 0.01], [0.31, -0.06, 0.07], [0.10, 0.30, 0.10], [0.15, 0.38, 0.12]])


def small_aimnet2(seed=0):
    """A seeded AIMNet2 from aimnet's bundled models/aimnet2.yaml, with narrower layers (same architecture)."""
    import aimnet
    from aimnet.config import build_module, load_yaml

    config = load_yaml(os.path.join(os.path.dirname(aimnet.__file__), "models", "aimnet2.yaml"))
    kwargs = config["kwargs"]
    kwargs["hidden"] = [[32, 16], [32, 16], [32, 16, 16]]
    kwargs["aim_size"] = 16
    kwargs["outputs"]["energy_mlp"]["kwargs"]["n_in"] = 16
    kwargs["outputs"]["energy_mlp"]["kwargs"]["mlp"]["hidden"] = [16]
    torch.manual_seed(seed)
    return build_module(config).eval()


def topology_of(numbers):
    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for k, z in enumerate(numbers):
        topology.addAtom(f"A{k}", app.Element.getByAtomicNumber(z), residue)
    return topology


#: DFT-D3(BJ) parameters of wB97M-D3 (s6, s8, a1, a2), what a registry model's metadata carries
D3_PARAMS = {"s6": 1.0, "s8": 0.3908, "a1": 0.5660, "a2": 3.1280}


def make_calculator(model, externals=False):
    """aimnet's AIMNet2Calculator; ``externals``: with its external Coulomb and DFT-D3 modules, as the registry
    models (v2 artifacts with needs_coulomb/needs_dispersion) are run."""
    from aimnet.calculators import AIMNet2Calculator

    if externals:
        object.__setattr__(model, "_metadata", {"d3_params": dict(D3_PARAMS)})  # how aimnet stores loaded metadata
        return AIMNet2Calculator(model, device="cpu", needs_coulomb=True, needs_dispersion=True)
    return AIMNet2Calculator(model, device="cpu")


def calculator_reference(model, numbers, positions_nm, charge=0.0, externals=False):
    calculator = make_calculator(model, externals)
    result = calculator({"coord": torch.tensor(positions_nm * ANGSTROM_PER_NM, dtype=torch.float32).unsqueeze(0),
                         "numbers": torch.tensor([numbers]), "charge": torch.tensor([float(charge)])}, forces=True)
    energy = float(result["energy"].detach().sum()) * KJ_MOL_PER_EV
    forces = result["forces"][0].detach().double().numpy() * KJ_MOL_PER_EV * ANGSTROM_PER_NM
    return energy, forces


@pytest.fixture(scope="module")
def model():
    pytest.importorskip("aimnet", reason="aimnet is in requirements-potentials.txt")
    return small_aimnet2()


@pytest.mark.parametrize("charge,externals", [(0, False), (1, False), (0, True)],
                         ids=["neutral", "charged", "coulomb+dftd3"])
def test_adapter_equals_aimnet_calculator(model, charge, externals, one_torch_thread):
    potential = MLPotential("aimnet", model=make_calculator(small_aimnet2(), externals))
    adapter = potential._impl.family.module(NUMBERS, charge=charge, precision="double", _eager=True)
    positions = torch.tensor(POSITIONS_NM, dtype=torch.float64, requires_grad=True)
    energy = adapter(positions, torch.tensor(NUMBERS))
    forces = -torch.autograd.grad(energy, positions)[0].numpy()
    ref_e, ref_f = calculator_reference(small_aimnet2(), NUMBERS, POSITIONS_NM, charge, externals)
    # the calculator runs in float32 (its coordinates are cast), the adapter in float64
    assert abs(energy.item() - ref_e) <= 1e-6 * abs(ref_e), (energy.item(), ref_e)
    assert np.abs(forces - ref_f).max() <= 1e-5 * np.abs(ref_f).max()
    assert np.abs(ref_f).max() > 1.0  # a real force field, not zeros


def test_charge_changes_the_energy(model, one_torch_thread):
    family = MLPotential("aimnet", model=model)._impl.family
    positions = torch.tensor(POSITIONS_NM, dtype=torch.float64)
    e0 = float(family.module(NUMBERS, charge=0, _eager=True)(positions, torch.tensor(NUMBERS)))
    e1 = float(family.module(NUMBERS, charge=1, _eager=True)(positions, torch.tensor(NUMBERS)))
    assert abs(e1 - e0) > 1e-3  # the total charge reaches the model (its charge equilibration)


def test_bad_requests(model, tmp_path):
    topology = topology_of(NUMBERS)
    potential = MLPotential("aimnet", model=model)
    with pytest.raises(ValueError, match="modelFormat='torchscript' is refused .*not TorchScript-able"):
        potential.createSystem(topology, modelFormat="torchscript")
    periodic = topology_of(NUMBERS)
    periodic.setPeriodicBoxVectors([openmm.Vec3(3.0, 0, 0), openmm.Vec3(0, 3.0, 0), openmm.Vec3(0, 0, 3.0)])
    with pytest.raises(ValueError, match="cannot handle periodic"):
        potential.createSystem(periodic)
    with pytest.raises(ValueError, match="modelIndex must be 0 for a local AIMNet2 model"):
        potential.createSystem(topology, modelIndex=2)
    with pytest.raises(ValueError, match="needs modelPath="):
        MLPotential("aimnet")
    with pytest.raises(FileNotFoundError, match="AIMNet2 model file not found"):
        MLPotential("aimnet", modelPath=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="loads its own pretrained model"):
        MLPotential("aimnet2", modelPath=str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="modelIndex must be 0, 1, 2 or 3"):
        MLPotential("aimnet2")._impl.family.calculator(modelIndex=4)


def test_pt2_cache_key_sees_the_charge(model):
    """The charge is a constant of the compiled package: two charges must not share a cached .pt2 (they did when the
    key held only the state dict and sources)."""
    from nnforce._pt2 import _cache_key
    from nnforce.potentials._formats import example_inputs

    family = MLPotential("aimnet", model=model)._impl.family
    example = example_inputs(NUMBERS, None, False, torch.float64)
    names, tensors = list(example), list(example.values())
    keys = {_cache_key(family.module(NUMBERS, charge=charge, _eager=True), names, tensors, "double", (), (10, 10),
                       "cpu") for charge in (0, 1, 0)}
    assert len(keys) == 2
    with pytest.raises(ValueError, match="pass charge= and multiplicity= to createSystem"):
        MLPotential("aimnet", model=model, charge=1)
    MLPotential("aimnet", model=model, charge=0, multiplicity=1)  # openmm-ml's tests pass the defaults here
