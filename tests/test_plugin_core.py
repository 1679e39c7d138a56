"""NNForce on the Reference and CPU platforms against direct torch evaluation, finite differences and OpenMM rules."""
import copy
import io
import math
import os
import pickle
import subprocess
import sys
import threading

import numpy as np
import openmm
import pytest
import torch
from torch import Tensor

import nnforce
from nnforce.models import LennardJones, RadialMLP
from plugin_helpers import context_for, energy_forces, make_system, random_positions, rel_err, torch_energy_forces

N = 24


@pytest.fixture(scope="module")
def positions():
    return random_positions(N, 1.6, seed=3, min_distance=0.28)


@pytest.mark.parametrize("make_model", [lambda: LennardJones(cutoff=10.0), lambda: RadialMLP(elements=[1], cutoff=0.6)])
def test_reference_matches_torch(make_model, positions):
    model = torch.jit.script(make_model())
    context = context_for(make_system(N, nnforce.NNForce(model)))
    energy, forces = energy_forces(context, positions)
    expected_energy, expected_forces = torch_energy_forces(make_model(), positions)
    assert energy == pytest.approx(expected_energy, rel=1e-10)
    assert rel_err(forces, expected_forces) < 1e-10


def test_forces_match_finite_differences(positions):
    model = torch.jit.script(RadialMLP(elements=[1], cutoff=0.6, seed=2))
    context = context_for(make_system(N, nnforce.NNForce(model)))
    _, forces = energy_forces(context, positions)
    h = 1e-5
    for atom, axis in [(0, 0), (5, 1), (17, 2)]:
        plus, minus = positions.copy(), positions.copy()
        plus[atom, axis] += h
        minus[atom, axis] -= h
        numeric = -(energy_forces(context, plus)[0] - energy_forces(context, minus)[0]) / (2 * h)
        assert forces[atom, axis] == pytest.approx(numeric, rel=1e-6, abs=1e-6)


def test_cpu_platform_float32_agrees_with_reference(positions):
    model = torch.jit.script(LennardJones(cutoff=10.0))
    system = make_system(N, nnforce.NNForce(model))
    e_ref, f_ref = energy_forces(context_for(system, "Reference"), positions)
    e_cpu, f_cpu = energy_forces(context_for(system, "CPU"), positions)
    assert e_cpu == pytest.approx(e_ref, rel=1e-5)
    assert rel_err(f_cpu, f_ref) < 1e-5
    assert e_cpu != e_ref  # float32 really was used
    # the precision property asks for float64 on CPU
    force = nnforce.NNForce(model)
    force.setProperty("precision", "double")
    e_cpu64, f_cpu64 = energy_forces(context_for(make_system(N, force), "CPU"), positions)
    assert e_cpu64 == pytest.approx(e_ref, rel=1e-12)
    assert rel_err(f_cpu64, f_ref) < 1e-12


class TriclinicMinimumImage(torch.nn.Module):
    def forward(self, positions: Tensor, box: Tensor) -> Tensor:
        d = positions[1:] - positions[0]
        d = d - torch.outer(torch.round(d[:, 2] / box[2, 2]), box[2])
        d = d - torch.outer(torch.round(d[:, 1] / box[1, 1]), box[1])
        d = d - torch.outer(torch.round(d[:, 0] / box[0, 0]), box[0])
        return (d * d).sum() + 0.1 * box[1, 0] * positions.sum()


def test_triclinic_periodic_model():
    box = np.array([[2.0, 0, 0], [0.7, 2.1, 0], [-0.6, 0.5, 1.9]])
    pos = random_positions(10, 4.0, seed=4) - 1.0  # many atoms outside the primary cell
    force = nnforce.NNForce(torch.jit.script(TriclinicMinimumImage()))
    force.setUsesPeriodicBoundaryConditions(True)
    context = context_for(make_system(10, force, box=box))
    energy, forces = energy_forces(context, pos)
    expected, expected_forces = torch_energy_forces(TriclinicMinimumImage(), pos, box=torch.tensor(box))
    assert energy == pytest.approx(expected, rel=1e-10)
    assert rel_err(forces, expected_forces) < 1e-10
    # the box really reaches the model: change it in the Context
    box2 = box * 1.1
    context.setPeriodicBoxVectors(*box2)
    energy2, _ = energy_forces(context, pos)
    assert energy2 == pytest.approx(torch_energy_forces(TriclinicMinimumImage(), pos, box=torch.tensor(box2))[0], rel=1e-10)


class Scaled(torch.nn.Module):
    def forward(self, positions: Tensor, scale: Tensor, offset: Tensor) -> Tensor:
        return scale * scale * (positions * positions).sum() + offset


def test_global_parameters_and_exact_derivatives(positions):
    force = nnforce.NNForce(torch.jit.script(Scaled()))
    force.addGlobalParameter("offset", 1.5)
    force.addGlobalParameter("scale", 2.0)  # bound by name, not by position
    force.addEnergyParameterDerivative("scale")
    assert force.getNumGlobalParameters() == 2 and force.getGlobalParameterName(1) == "scale"
    assert force.getGlobalParameterDefaultValue(1) == 2.0
    context = context_for(make_system(N, force))
    context.setPositions(positions)
    s2 = float((positions ** 2).sum())
    assert context.getState(getEnergy=True).getPotentialEnergy()._value == pytest.approx(4 * s2 + 1.5, rel=1e-12)

    def energy_at(scale):
        context.setParameter("scale", scale)
        return context.getState(getEnergy=True).getPotentialEnergy()._value

    context.setParameter("scale", 3.0)
    state = context.getState(getParameterDerivatives=True, getForces=True)
    derivative = state.getEnergyParameterDerivatives()["scale"]
    h = 1e-4
    numeric = (energy_at(3.0 + h) - energy_at(3.0 - h)) / (2 * h)
    assert derivative == pytest.approx(2 * 3.0 * s2, rel=1e-12)  # exact autograd value
    assert derivative == pytest.approx(numeric, rel=1e-7)


class TorchForceStyle(torch.nn.Module):
    """openmm-torch's positional convention: forward(positions, box, *globals) with arbitrary names."""

    def forward(self, pos: Tensor, boxvectors: Tensor, k: Tensor) -> Tensor:
        return k * (pos * pos).sum() + boxvectors[0, 0]


def test_torchforce_positional_convention():
    pos = random_positions(5, 1.0, seed=5)
    force = nnforce.NNForce(torch.jit.script(TorchForceStyle()))
    force.setUsesPeriodicBoundaryConditions(True)
    force.addGlobalParameter("strength", 3.0)
    context = context_for(make_system(5, force, box=np.eye(3) * 3.0))
    energy, _ = energy_forces(context, pos)
    assert energy == pytest.approx(3.0 * (pos ** 2).sum() + 3.0, rel=1e-12)


class WithForces(torch.nn.Module):
    def forward(self, positions: Tensor):
        energy = (positions ** 4).sum()
        return energy, -4 * positions ** 3


def test_outputs_forces_model(positions):
    force = nnforce.NNForce(torch.jit.script(WithForces()))
    force.setOutputsForces(True)
    assert force.getOutputsForces()
    energy, forces = energy_forces(context_for(make_system(N, force)), positions)
    assert energy == pytest.approx((positions ** 4).sum(), rel=1e-12)
    assert rel_err(forces, -4 * positions ** 3) < 1e-12


def test_force_groups_and_several_forces(positions):
    lj = nnforce.NNForce(torch.jit.script(LennardJones(cutoff=10.0)))
    lj.setForceGroup(1)
    quartic = nnforce.NNForce(torch.jit.script(WithForces()))
    quartic.setOutputsForces(True)
    quartic.setForceGroup(2)
    system = make_system(N, lj)
    system.addForce(quartic)
    context = context_for(system)
    e1, f1 = energy_forces(context, positions, groups={1})
    e2, f2 = energy_forces(context, positions, groups={2})
    e12, f12 = energy_forces(context, positions)
    assert e1 == pytest.approx(torch_energy_forces(LennardJones(cutoff=10.0), positions)[0], rel=1e-10)
    assert e2 == pytest.approx((positions ** 4).sum(), rel=1e-12)
    assert e12 == pytest.approx(e1 + e2, rel=1e-12)
    assert rel_err(f12, f1 + f2) < 1e-12


def test_constructors_and_get_module(tmp_path, positions):
    scripted = torch.jit.script(LennardJones(cutoff=10.0))
    path = tmp_path / "lj.pt"
    scripted.save(str(path))
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    energies = []
    for source in (str(path), path, scripted, buffer.getvalue()):
        force = nnforce.NNForce(source)
        module = force.getModule()
        assert isinstance(module, torch.jit.ScriptModule)
        energies.append(energy_forces(context_for(make_system(N, force)), positions)[0])
    assert energies[0] == energies[1] == energies[2] == energies[3]
    assert nnforce.NNForce(str(path)).getFile() == str(path)
    with pytest.raises(TypeError, match="torch.jit.script"):
        nnforce.NNForce(LennardJones())


class ScaledCharged(torch.nn.Module):
    """Scaled plus a per-atom charge term: every name the round trip restores is an argument (binding is strict)."""

    def forward(self, positions: Tensor, scale: Tensor, offset: Tensor, charges: Tensor) -> Tensor:
        return scale * scale * (positions * positions).sum() + offset + (charges * positions[:, 0]).sum()


def test_xml_round_trip_restores_every_setting(positions):
    force = nnforce.NNForce(torch.jit.script(ScaledCharged()))
    force.addGlobalParameter("scale", 1.25)
    force.addGlobalParameter("offset", -2.0)
    force.addEnergyParameterDerivative("offset")
    force.setForceGroup(4)
    force.setProperty("precision", "double")
    force.setAtoms(list(range(3, N)))
    force.setAtomicNumbers([6] * (N - 3))
    force.addPerAtomInput("charges", np.linspace(-1, 1, N - 3).tolist())
    system = make_system(N, force)
    xml = openmm.XmlSerializer.serialize(system)
    assert "<Force" in xml and 'type="NNForce"' in xml
    restored = openmm.XmlSerializer.deserialize(xml)
    copy_ = nnforce.NNForce.cast(restored.getForce(0))
    assert copy_.getModelBytes() == force.getModelBytes()
    assert copy_.getForceGroup() == 4 and dict(copy_.getProperties()) == {"precision": "double"}
    assert list(copy_.getAtoms()) == list(range(3, N)) and list(copy_.getAtomicNumbers()) == [6] * (N - 3)
    assert list(copy_.getPerAtomInputValues(0)) == np.linspace(-1, 1, N - 3).tolist()
    assert copy_.getEnergyParameterDerivativeName(0) == "offset"
    e_original = energy_forces(context_for(system), positions)[0]
    e_restored = energy_forces(context_for(restored), positions)[0]
    assert e_restored == e_original
    # pickling and deep copies go through the same serialization
    assert pickle.loads(pickle.dumps(force)).getModelBytes() == force.getModelBytes()
    clone = copy.deepcopy(force)
    assert clone.getNumGlobalParameters() == 2 and list(clone.getAtoms()) == list(range(3, N))


def test_two_contexts_in_two_threads_match_serial(positions):
    system = make_system(N, nnforce.NNForce(torch.jit.script(RadialMLP(elements=[1], cutoff=0.6))))
    shifted = [positions, positions * 1.02]

    def work(context, k, results):
        for _ in range(10):  # past TorchScript's profiling runs, so both runs end on the same optimized graph
            results[k] = energy_forces(context, shifted[k])

    serial = [None, None]
    for k in range(2):
        work(context_for(system, "CPU"), k, serial)
    threaded = [None, None]
    contexts = [context_for(system, "CPU"), context_for(system, "CPU")]
    threads = [threading.Thread(target=work, args=(contexts[k], k, threaded)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in range(2):
        assert threaded[k][0] == serial[k][0]
        assert np.array_equal(threaded[k][1], serial[k][1])
    assert serial[0][0] != serial[1][0]


def test_energy_only_request_skips_backward(positions):
    class KnowsIfGradNeeded(torch.nn.Module):
        def forward(self, positions: Tensor) -> Tensor:
            # positions require grad exactly when the plugin will run the backward pass
            if positions.requires_grad:
                return (positions * positions).sum()
            return (positions * positions).sum() + 1000.0

    system = make_system(N, nnforce.NNForce(torch.jit.script(KnowsIfGradNeeded())))
    # a CustomIntegrator's "energy" asks OpenMM for the energy alone, as Monte Carlo barostats do
    integrator = openmm.CustomIntegrator(0.001)
    integrator.addGlobalVariable("e", 0.0)
    integrator.addComputeGlobal("e", "energy")
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions)
    s2 = (positions ** 2).sum()
    integrator.step(1)
    assert integrator.getGlobalVariableByName("e") == pytest.approx(s2 + 1000.0, rel=1e-12)
    state = context.getState(getEnergy=True, getForces=True)
    assert state.getPotentialEnergy()._value == pytest.approx(s2, rel=1e-12)
    assert rel_err(state.getForces(asNumpy=True)._value, -2 * positions) < 1e-12


def test_import_refuses_another_torch_version():
    code = "import torch; torch.__version__ = '1.0.0'; import nnforce"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "built against torch" in result.stderr and "Rebuild" in result.stderr
