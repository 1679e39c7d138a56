"""The demo's NNForce probes (single point and timing) on the checked-in alanine dipeptide, with a tiny model."""
import math

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def lj_model(tmp_path_factory):
    from nnforce.models import LennardJones

    path = tmp_path_factory.mktemp("models") / "lj.pt"
    torch.jit.script(LennardJones(epsilon=0.5, sigma=0.25, cutoff=1.0)).save(str(path))
    return str(path)


def test_single_point_equals_the_model_and_the_timing_probe_runs(lj_model):
    from nnforce.demo import alanine_dipeptide
    from nnforce.demo.measure import nnforce_energy, nnforce_ms_per_step
    from nnforce.models import LennardJones

    topology, positions = alanine_dipeptide()
    x = np.asarray(positions.value_in_unit(positions.unit))
    energy, forces = nnforce_energy(lj_model, topology, x)
    positions_t = torch.tensor(x, requires_grad=True)
    expected = LennardJones(epsilon=0.5, sigma=0.25, cutoff=1.0).double()(positions_t)
    (gradient,) = torch.autograd.grad(expected, positions_t)
    assert energy == pytest.approx(float(expected), rel=1e-9)
    np.testing.assert_allclose(forces, -gradient.numpy(), rtol=1e-7, atol=1e-7)
    ms = nnforce_ms_per_step(lj_model, topology, x, steps=3, platform_name="Reference")
    assert math.isfinite(ms) and ms > 0
