"""Extra model outputs: forward() returning a Dict[str, Tensor], read back with NNForce.getOutput after an evaluation.

Every value read through the plugin is compared with the same model evaluated directly in torch at the same
positions (Reference in float64, CPU in float32), and the model counts its own calls, so a second evaluation
behind getOutput would show.
"""
from typing import Dict

import numpy as np
import openmm
import pytest
import torch
from torch import Tensor

import nnforce
from plugin_helpers import context_for, energy_forces, make_system, random_positions, rel_err

N = 7


class PairWithExtras(torch.nn.Module):
    """A soft pair potential returning its energy and named extras: per-atom energies, charges, a dipole, a count of calls."""

    def __init__(self, return_forces: bool = False):
        super().__init__()
        self.return_forces = return_forces
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))
        self.register_buffer("q0", torch.linspace(-0.4, 0.4, N, dtype=torch.float64))

    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        self.calls.add_(1)
        if self.return_forces:  # the model differentiates itself: NNForce passes positions without gradients
            positions = positions.detach().requires_grad_(True)
        d = positions.unsqueeze(0) - positions.unsqueeze(1)
        r2 = (d * d).sum(-1) + torch.eye(positions.shape[0], dtype=positions.dtype)
        pair = torch.exp(-r2 / 0.05) * (1 - torch.eye(positions.shape[0], dtype=positions.dtype))
        atomic = 0.5 * 10.0 * pair.sum(1)
        energy = atomic.sum()
        charges = self.q0.to(positions.dtype) * torch.tanh(atomic)
        out = {"energy": energy, "atomic_energies": atomic, "charges": charges,
               "dipole": (charges.unsqueeze(1) * positions).sum(0), "calls": self.calls.clone()}
        if self.return_forces:
            grad = torch.autograd.grad([energy], [positions])[0]
            assert grad is not None
            out["forces"] = -grad
        return out


def direct(model, positions, dtype):
    """The model's outputs evaluated in torch at these positions (positions with gradients, as the plugin passes them)."""
    pos = torch.tensor(positions, dtype=dtype, requires_grad=True)
    out = model.to(dtype)(pos)
    return {k: v.detach().to(torch.float64).numpy() for k, v in out.items()}


@pytest.fixture(scope="module")
def positions():
    return random_positions(N, 0.7, seed=11, min_distance=0.12)


def force_for(model, outputs_forces=False):
    force = nnforce.NNForce(torch.jit.script(model))
    force.setOutputsForces(outputs_forces)
    return force


@pytest.mark.parametrize("platform,dtype,tol", [("Reference", torch.float64, 1e-12), ("CPU", torch.float32, 2e-6)])
@pytest.mark.parametrize("outputs_forces", [False, True])
def test_outputs_match_direct_torch(platform, dtype, tol, outputs_forces, positions, one_torch_thread):
    force = force_for(PairWithExtras(outputs_forces), outputs_forces)
    context = context_for(make_system(N, force), platform)
    energy, forces = energy_forces(context, positions)
    expected = direct(PairWithExtras(outputs_forces), positions, dtype)
    names = list(force.getOutputNames(context))
    assert sorted(names) == sorted(expected)
    for name, value in expected.items():
        got = force.getOutput(context, name)
        assert got.shape == value.shape, name
        if name == "calls":
            assert got == 1.0  # one evaluation for getState(energy, forces) and none for the reads
        else:
            assert rel_err(got, value) < tol, name
    assert energy == pytest.approx(float(expected["energy"]), rel=tol)
    if outputs_forces:
        assert rel_err(forces, expected["forces"]) < tol
    # The values follow the last evaluation; reading them again does not call the model.
    moved = positions + 0.01 * np.arange(3 * N).reshape(N, 3) / (3 * N)
    energy_forces(context, moved)
    again = direct(PairWithExtras(outputs_forces), moved, dtype)
    assert rel_err(force.getOutput(context, "charges"), again["charges"]) < tol
    assert rel_err(force.getOutput(context, "charges"), expected["charges"]) > 1e-4  # really changed
    assert force.getOutput(context, "calls") == 2.0
    assert force.getOutput(context, "calls") == 2.0


def test_outputs_follow_integrator_steps(positions, one_torch_thread):
    force = force_for(PairWithExtras())
    context = context_for(make_system(N, force))
    context.setPositions(positions)
    context.getIntegrator().step(3)
    calls = force.getOutput(context, "calls")
    assert calls >= 3  # the steps evaluated the model; their outputs are readable without another call
    state = context.getState(getPositions=True, getEnergy=True)  # one more evaluation, at the current positions
    current = state.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer)
    expected = direct(PairWithExtras(), np.asarray(current), torch.float64)
    assert force.getOutput(context, "calls") == calls + 1
    assert rel_err(force.getOutput(context, "atomic_energies"), expected["atomic_energies"]) < 1e-12


def test_plain_models_report_energy_and_forces(positions, one_torch_thread):
    class Plain(torch.nn.Module):
        def forward(self, positions: Tensor) -> Tensor:
            return (positions ** 2).sum()

    force = nnforce.NNForce(torch.jit.script(Plain()))
    context = context_for(make_system(N, force))
    energy, _ = energy_forces(context, positions)
    assert list(force.getOutputNames(context)) == ["energy"]
    value = force.getOutput(context, "energy")
    assert value.shape == () and float(value) == pytest.approx(energy, rel=1e-14)


class NoEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        return {"total": positions.sum()}


class VectorEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        return {"energy": (positions ** 2).sum(1)}


class IntegerEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        return {"energy": torch.ones((), dtype=torch.int64)}


class BadForces(torch.nn.Module):
    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        return {"energy": positions.sum(), "forces": positions[:, :2]}


class ComplexExtra(torch.nn.Module):
    def forward(self, positions: Tensor) -> Dict[str, Tensor]:
        return {"energy": positions.sum(), "phase": torch.complex(positions, positions)}


@pytest.mark.parametrize("model,outputs_forces,message", [
    (NoEnergy(), False, "without \"energy\" (its keys: total)"),
    (VectorEnergy(), False, "returned \"energy\" of shape [7]"),
    (IntegerEnergy(), False, "dtype Long"),
    (BadForces(), True, "\"forces\" of shape [7, 2]"),
    (BadForces(), False, "call setOutputsForces(True)"),
    (PairWithExtras(), True, "requires the dict returned by forward() to hold \"forces\""),
    (ComplexExtra(), False, "'phase' as a complex tensor"),
])
def test_bad_dict_outputs(model, outputs_forces, message, positions, one_torch_thread):
    force = force_for(model, outputs_forces)
    context = context_for(make_system(N, force))
    context.setPositions(positions)
    with pytest.raises(openmm.OpenMMException, match=None) as error:
        context.getState(getEnergy=True, getForces=True)
    assert message in str(error.value)


def test_unknown_name_and_before_evaluation(positions, one_torch_thread):
    force = force_for(PairWithExtras())
    context = context_for(make_system(N, force))
    context.setPositions(positions)
    for call in (lambda: force.getOutput(context, "charges"), lambda: force.getOutputNames(context)):
        with pytest.raises(openmm.OpenMMException, match="not been evaluated in this Context yet"):
            call()
    context.getState(getEnergy=True)
    with pytest.raises(openmm.OpenMMException) as error:
        force.getOutput(context, "charge")
    assert "no output named 'charge'; its outputs are: energy, atomic_energies, charges, dipole, calls" in str(error.value)
    # A force not in this Context's System: OpenMM's own error, not a crash.
    other = force_for(PairWithExtras())
    with pytest.raises(openmm.OpenMMException):
        other.getOutput(context, "energy")
