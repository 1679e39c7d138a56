"""The smallest useful NNForce script: liquid argon in OpenMM with a TorchScript Lennard-Jones model.

    python examples/minimal_openmm.py [model.pt] [--smoke]

Without a model file it scripts nnforce.models.LennardJones (which takes the plugin's neighbor list).
The OpenMM part below is all a user writes: load the model into NNForce, add it to a System, run.
"""
import argparse
import os
import tempfile

import numpy as np
import torch

parser = argparse.ArgumentParser(description="Liquid argon with NNForce")
parser.add_argument("model", nargs="?", help="TorchScript model taking positions (nm) and returning kJ/mol")
parser.add_argument("--smoke", action="store_true", help="a few steps only")
args = parser.parse_args()
model_file = args.model
if model_file is None:
    from nnforce.models import LennardJones
    model_file = os.path.join(tempfile.mkdtemp(), "argon_lj.pt")
    torch.jit.script(LennardJones(epsilon=0.996, sigma=0.34, cutoff=0.85)).save(model_file)
lattice = 0.38 * np.array([[x, y, z] for x in range(6) for y in range(6) for z in range(6)])  # 216 atoms, nm
box_nm = 6 * 0.38

# --- the OpenMM part ---------------------------------------------------------------------------------------
import openmm
from openmm import unit
from nnforce import NNForce

system = openmm.System()
for _ in lattice:
    system.addParticle(39.948 * unit.amu)
system.setDefaultPeriodicBoxVectors(*(np.eye(3) * box_nm))
force = NNForce(model_file)                      # any TorchScript model following the model contract
force.setUsesPeriodicBoundaryConditions(True)
force.setNeighborList(0.85)                      # the model receives `neighbors` and `shifts`
system.addForce(force)
integrator = openmm.LangevinMiddleIntegrator(120 * unit.kelvin, 1 / unit.picosecond, 5 * unit.femtoseconds)
context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"))
context.setPositions(lattice)
openmm.LocalEnergyMinimizer.minimize(context)
for block in range(2 if args.smoke else 10):
    integrator.step(10 if args.smoke else 500)
    state = context.getState(getEnergy=True)
    print(f"t = {state.getTime().value_in_unit(unit.picosecond):7.2f} ps  "
          f"E_pot = {state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole):10.3f} kJ/mol")
