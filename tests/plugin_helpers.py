"""Shared helpers for the plugin tests: build Systems around a model and evaluate the model directly in torch."""
import numpy as np
import openmm
import torch

import nnforce


def make_system(n, force, box=None):
    system = openmm.System()
    for _ in range(n):
        system.addParticle(1.0)
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*[openmm.Vec3(*row) for row in box])
    system.addForce(force)
    return system


def context_for(system, platform="Reference", properties=None):
    integrator = openmm.VerletIntegrator(0.001)
    platform = openmm.Platform.getPlatformByName(platform)
    if properties:
        return openmm.Context(system, integrator, platform, properties)
    return openmm.Context(system, integrator, platform)


def energy_forces(context, positions, groups=-1):
    context.setPositions(positions)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
    return energy, np.asarray(forces)


def torch_energy_forces(model, positions, **inputs):
    """Energy and forces (-dE/dx) of a model evaluated directly in torch, float64."""
    model = model.double()
    pos = torch.tensor(np.asarray(positions), dtype=torch.float64, requires_grad=True)
    energy = model(pos, **inputs)
    (grad,) = torch.autograd.grad(energy, pos)
    return energy.item(), -grad.numpy()


def random_positions(n, size, seed, min_distance=0.0):
    """Uniform random positions in a cube, redrawing atoms closer than min_distance to an earlier one."""
    rng = np.random.default_rng(seed)
    points = []
    while len(points) < n:
        p = rng.random(3) * size
        if all(np.linalg.norm(p - q) >= min_distance for q in points):
            points.append(p)
    return np.array(points)


def rel_err(a, b):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300)
