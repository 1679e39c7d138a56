"""Every bad input gives an openmm.OpenMMException with a message that says what is wrong; none crashes the process."""
import numpy as np
import openmm
import pytest
import torch
from torch import Tensor

import nnforce
from plugin_helpers import context_for, make_system, random_positions

POS = random_positions(4, 1.0, seed=1)


def evaluate(force, n=4, box=None, forces=True):
    context = context_for(make_system(n, force, box=box))
    context.setPositions(POS[:n])
    return context.getState(getEnergy=True, getForces=forces)


def scripted(cls):
    return nnforce.NNForce(torch.jit.script(cls()))


def test_missing_file():
    with pytest.raises(openmm.OpenMMException, match="no model file"):
        nnforce.NNForce("/no/such/model.pt")
    with pytest.raises(FileNotFoundError):
        nnforce.NNForce("/no/such/model.pt")


def test_file_that_is_not_torchscript(tmp_path):
    text = tmp_path / "model.pt"
    text.write_text("hello")
    with pytest.raises(openmm.OpenMMException, match="not a TorchScript archive"):
        nnforce.NNForce(str(text))
    weights = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), weights)
    with pytest.raises(openmm.OpenMMException, match="torch.save"):
        nnforce.NNForce(str(weights))


class WrongShape(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions ** 2).sum(1)


class WrongDtype(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return (positions.sum() > 0).long()


class NotATensor(torch.nn.Module):
    def forward(self, positions: Tensor) -> float:
        return 1.0


class ReturnsTuple(torch.nn.Module):
    def forward(self, positions: Tensor):
        return positions.sum(), positions


class WrongForceShape(torch.nn.Module):
    def forward(self, positions: Tensor):
        return positions.sum(), positions[:2]


@pytest.mark.parametrize("cls,message", [
    (WrongShape, "scalar energy"), (WrongDtype, "floating-point scalar"), (NotATensor, "must return the energy as a Tensor"),
    (ReturnsTuple, "setOutputsForces"),
])
def test_bad_outputs(cls, message):
    with pytest.raises(openmm.OpenMMException, match=message):
        evaluate(scripted(cls))


def test_bad_forces_output():
    force = scripted(WrongForceShape)
    force.setOutputsForces(True)
    with pytest.raises(openmm.OpenMMException, match=r"forces of shape \[2, 3\]"):
        evaluate(force)
    force = scripted(WrongShape)
    force.setOutputsForces(True)
    with pytest.raises(openmm.OpenMMException, match=r"tuple \(energy, forces\)"):
        evaluate(force)


class NaNEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return positions.sum() * float("nan")


class InfEnergy(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        return 1.0 / (positions.sum() - positions.sum())


@pytest.mark.parametrize("cls", [NaNEnergy, InfEnergy])
def test_non_finite_energy(cls):
    with pytest.raises(openmm.OpenMMException, match="non-finite energy"):
        evaluate(scripted(cls), forces=False)


class Raises(torch.nn.Module):
    def forward(self, positions: Tensor) -> Tensor:
        if positions.shape[0] > 0:
            raise ValueError("the model refuses these positions: 42")
        return positions.sum()


def test_exception_in_forward_is_propagated():
    with pytest.raises(openmm.OpenMMException, match="the model refuses these positions: 42"):
        evaluate(scripted(Raises))


def test_unknown_property():
    force = scripted(WrongShape)
    with pytest.raises(openmm.OpenMMException, match="unknown property 'useGraphs'.*useCUDAGraphs"):
        force.setProperty("useGraphs", "true")
    with pytest.raises(openmm.OpenMMException, match="unknown property"):
        nnforce.NNForce(torch.jit.script(WrongShape()), {"bogus": "1"})


class TwoGlobals(torch.nn.Module):
    def forward(self, positions: Tensor, a: Tensor, b: Tensor) -> Tensor:
        return a * b * positions.sum()


def test_wrong_number_of_global_parameters():
    force = scripted(TwoGlobals)
    force.addGlobalParameter("a", 1.0)
    with pytest.raises(openmm.OpenMMException, match="needs the argument 'b'.*takes 3 arguments|needs the argument 'b'.*exactly 2"):
        evaluate(force)


class NeedsBox(torch.nn.Module):
    def forward(self, positions: Tensor, box: Tensor) -> Tensor:
        return box.sum() * positions.sum()


def test_periodic_model_in_non_periodic_system():
    with pytest.raises(openmm.OpenMMException, match="needs the argument 'box'.*setUsesPeriodicBoundaryConditions"):
        evaluate(scripted(NeedsBox))


def test_derivative_of_unknown_parameter():
    force = scripted(TwoGlobals)
    force.addGlobalParameter("a", 1.0)
    force.addGlobalParameter("b", 1.0)
    force.addEnergyParameterDerivative("c")
    with pytest.raises(openmm.OpenMMException, match="names no global parameter"):
        evaluate(force)


def test_process_survives_all_of_the_above():
    force = scripted(TwoGlobals)
    force.addGlobalParameter("a", 2.0)
    force.addGlobalParameter("b", 3.0)
    state = evaluate(force)
    assert state.getPotentialEnergy()._value == pytest.approx(6.0 * POS.sum())
