"""openmm-torch parity (issue 23): a TorchScript *file* without nnforce metadata and without the precision property
runs as TorchForce runs it — float64 positions on Reference and CPU, its own parameter/buffer dtypes kept — while
the same module handed over in memory, or with the property, keeps nnforce's rules (float32 on CPU, converted)."""
import numpy as np
import openmm
import openmm.unit as unit
import pytest
import torch

import nnforce
from nnforce.contract import metadata_extra_files, model_metadata


class DtypeProbe(torch.nn.Module):
    """Energy = 10 * [positions are float64] + [its float32 buffer is still float32] + 0 * sum(positions)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("scale", torch.ones(1, dtype=torch.float32))

    def forward(self, positions):
        a = 10.0 if positions.dtype == torch.float64 else 0.0
        b = 1.0 if self.scale.dtype == torch.float32 else 0.0
        return (positions * 0.0).sum() + a + b


def probe(force, platform):
    system = openmm.System()
    for _ in range(3):
        system.addParticle(1.0)
    system.addForce(force)
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName(platform))
    context.setPositions(np.random.default_rng(1).random((3, 3)) * unit.nanometer)
    return round(context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole))


@pytest.mark.parametrize("platform", ["Reference", "CPU"])
def test_plain_file_runs_like_torchforce(tmp_path, platform):
    path = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.script(DtypeProbe()), str(path))
    assert probe(nnforce.NNForce(str(path)), platform) == 11  # float64 positions, float32 buffer kept


def test_other_models_keep_nnforce_rules(tmp_path):
    scripted = torch.jit.script(DtypeProbe())
    # in memory: CPU runs float32 (buffer already float32), Reference float64 with the buffer converted
    assert probe(nnforce.NNForce(scripted), "CPU") == 1
    assert probe(nnforce.NNForce(scripted), "Reference") == 10
    # a file with the precision property: the property decides, the buffer is converted
    path = tmp_path / "plain.pt"
    torch.jit.save(scripted, str(path))
    assert probe(nnforce.NNForce(str(path), {"precision": "single"}), "Reference") == 1
    assert probe(nnforce.NNForce(str(path), {"precision": "double"}), "CPU") == 10
    # a file with nnforce's metadata: nnforce's rules (CPU float32)
    exported = tmp_path / "exported.pt"
    torch.jit.save(scripted, str(exported), _extra_files=metadata_extra_files(model_metadata(scripted)))
    assert probe(nnforce.NNForce(str(exported)), "CPU") == 1
