"""Export: contract checks, metadata in the TorchScript extra files, atomic writes, and the exported model inside
NNForce giving the same energies and forces as in Python."""
import os
from typing import Optional

import numpy as np
import pytest
import torch

from nnforce.export import check_model, export_model, read_metadata
from nnforce.models import ANIModel, SchNetModel
from test_train_data_helpers import ETHANOL_NM, ETHANOL_Z

torch.set_num_threads(1)
# float() of an energy computed from trainable parameters: harmless here, and noisy
pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def _trained_like(model):
    """Non-trivial self energies and scale, as after fit()."""
    with torch.no_grad():
        model.self_energies.copy_(torch.tensor([-1300.0, -99000.0, -197000.0]))
        model.energy_scale.fill_(20.0)
    return model


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = _trained_like(SchNetModel([1, 6, 8], features=16, interactions=2, cutoff=0.5, seed=3))
    path = tmp_path_factory.mktemp("export") / "schnet.pt"
    info = export_model(model, path, {"data_hash": "abc123", "metrics": {"energy_mae_kcal_mol": 0.5}},
                        structure=(ETHANOL_Z, ETHANOL_NM))
    return model, path, info


def test_export_writes_metadata_and_same_energies(exported):
    model, path, info = exported
    meta = read_metadata(path)
    assert meta["elements"] == [1, 6, 8] and meta["cutoff_nm"] == 0.5
    assert meta["units"]["energy"] == "kJ/mol" and meta["data_hash"] == "abc123"
    assert meta["metrics"]["energy_mae_kcal_mol"] == 0.5
    assert meta["checks"]["force_fd_max_error_kj_mol_nm"] < 1e-2
    assert meta["checks"]["unknown_element_rejected"] is True
    assert not [f for f in os.listdir(path.parent) if f.endswith(".tmp")]  # atomic: no temporary left behind
    loaded = torch.jit.load(str(path))
    x = torch.tensor(ETHANOL_NM, dtype=torch.float32)
    z = torch.tensor(ETHANOL_Z)
    assert float(loaded(x, z)) == pytest.approx(float(model.float()(x, z)), abs=1e-3)


class IgnoresShifts(torch.nn.Module):
    """A broken model: uses the neighbor list but forgets the periodic shifts."""

    def __init__(self):
        super().__init__()
        self.elements = [1, 6, 8]
        self.cutoff = 0.5

    def forward(self, positions: torch.Tensor, atomic_numbers: torch.Tensor,
                neighbors: Optional[torch.Tensor] = None, shifts: Optional[torch.Tensor] = None,
                box: Optional[torch.Tensor] = None):
        n = positions.shape[0]
        pairs = torch.triu_indices(n, n, 1) if neighbors is None else neighbors
        if bool((atomic_numbers > 8).any()):
            raise ValueError("unknown element")
        d = positions[pairs[1]] - positions[pairs[0]]
        if box is not None:
            d = d - torch.round(d / box.diagonal()) * box.diagonal()
        return torch.exp(-((d * d).sum(1)) / 0.01).sum()


def test_checks_reject_a_model_that_ignores_shifts(tmp_path):
    with pytest.raises(ValueError, match="neighbor_list_shifts"):
        export_model(IgnoresShifts(), tmp_path / "bad.pt", structure=(ETHANOL_Z, ETHANOL_NM))
    assert not os.path.exists(tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=r"metadata elements \[9\]"):
        check_model(_trained_like(ANIModel([1, 6, 8], hidden=[8])), [1, 6, 8, 9], 0.52,
                    structure=(ETHANOL_Z, ETHANOL_NM))


def test_exported_model_in_nnforce_matches_python(exported):
    nnforce = pytest.importorskip("nnforce")
    import openmm

    try:
        NNForce = nnforce.NNForce
    except ImportError as error:
        pytest.skip(f"the NNForce plugin is not built: {error}")
    model, path, _ = exported
    reference = model.double()
    x = torch.tensor(ETHANOL_NM, requires_grad=True)
    energy = reference(x, torch.tensor(ETHANOL_Z))
    (gradient,) = torch.autograd.grad(energy, x)
    for neighbor_list in (False, True):
        force = NNForce(str(path))
        force.setAtomicNumbers([int(z) for z in ETHANOL_Z])
        system = openmm.System()
        for _ in ETHANOL_Z:
            system.addParticle(1.0)
        if neighbor_list:
            force.setNeighborList(0.5)
            force.setUsesPeriodicBoundaryConditions(True)
            system.setDefaultPeriodicBoxVectors(openmm.Vec3(2.5, 0, 0), openmm.Vec3(0, 2.5, 0), openmm.Vec3(0, 0, 2.5))
        system.addForce(force)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
        shift = np.array([0.0, 2.5, 0.0]) if neighbor_list else 0.0  # a periodic image changes nothing
        context.setPositions(ETHANOL_NM + shift)
        state = context.getState(getEnergy=True, getForces=True)
        e = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
        f = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
        # the file holds the float32 model: agree to float32 precision of a ~3e5 kJ/mol total
        assert e == pytest.approx(float(energy), abs=0.05)
        np.testing.assert_allclose(np.asarray(f), -gradient.numpy(), rtol=1e-3, atol=0.05)


def test_cli_export_from_checkpoint(tmp_path):
    from nnforce.cli import main
    from nnforce.data import Dataset, split
    from nnforce.train import TrainConfig, fit

    rng = np.random.default_rng(0)
    frames = [ETHANOL_NM + rng.normal(scale=0.003, size=ETHANOL_NM.shape) for _ in range(12)]
    reference = _trained_like(ANIModel([1, 6, 8], hidden=[8], seed=5)).double()
    energies = [float(reference(torch.tensor(f), torch.tensor(ETHANOL_Z))) for f in frames]
    train, val = split(Dataset.from_frames(ETHANOL_Z, frames, energies), (8, 4), seed=0)
    spec = {"type": "ani", "elements": [1, 6, 8], "hidden": [8], "seed": 1}
    from nnforce.train import build_model

    fit(build_model(spec), train, val, TrainConfig(epochs=1, log_dir=str(tmp_path / "run")), model_spec=spec,
        metadata={"data_hash": "h"})
    out = tmp_path / "model.pt"
    assert main(["export", str(tmp_path / "run" / "best.ckpt"), "-o", str(out)]) == 0
    meta = read_metadata(out)
    assert meta["model_spec"]["type"] == "ani" and meta["data_hash"] == "h" and meta["elements"] == [1, 6, 8]
    assert main(["export", str(tmp_path / "missing.ckpt"), "-o", str(out)]) == 2
