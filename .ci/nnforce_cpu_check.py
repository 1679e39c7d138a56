"""An NNForce on the CPU platform gives a harmonic model's energy and forces (run after an install).

    python .ci/nnforce_cpu_check.py [--no-cuda-plugin]

E = k * sum(x^2) has the forces -2 k x: compared with OpenMM's CPU-platform result, then 10 steps of dynamics.
--no-cuda-plugin also checks that no libNNForceCUDA.so was installed (the no-toolkit build).
"""
import os
import sys

import numpy as np
import openmm
import torch

import nnforce


class Harmonic(torch.nn.Module):
    def __init__(self, k: float):
        super().__init__()
        self.k = k

    def forward(self, positions):
        return self.k * (positions ** 2).sum()


k = 3.5
rng = np.random.default_rng(7)
xyz = rng.uniform(-1.0, 1.0, size=(5, 3))
system = openmm.System()
for _ in range(len(xyz)):
    system.addParticle(12.0)
system.addForce(nnforce.NNForce(torch.jit.script(Harmonic(k))))
context = openmm.Context(system, openmm.VerletIntegrator(0.0005), openmm.Platform.getPlatformByName("CPU"))
context.setPositions(xyz)
state = context.getState(getEnergy=True, getForces=True)
energy = state.getPotentialEnergy().value_in_unit(openmm.unit.kilojoule_per_mole)
forces = state.getForces(asNumpy=True).value_in_unit(openmm.unit.kilojoule_per_mole / openmm.unit.nanometer)
assert abs(energy - k * (xyz ** 2).sum()) < 1e-4 * abs(energy), (energy, k * (xyz ** 2).sum())
assert np.allclose(forces, -2 * k * xyz, rtol=1e-4, atol=1e-5), forces
context.getIntegrator().step(10)
assert np.isfinite(context.getState(getPositions=True).getPositions(asNumpy=True)._value).all()
plugin = os.path.join(os.path.dirname(nnforce.__file__), "lib", "plugins", "libNNForceCUDA.so")
if "--no-cuda-plugin" in sys.argv[1:]:
    assert not os.path.exists(plugin), f"{plugin} exists: the build found a CUDA toolkit"
print(f"nnforce_cpu_check: OK: NNForce on the CPU platform, E = {energy:.6f} kJ/mol (expected "
      f"{k * (xyz ** 2).sum():.6f}), torch {torch.__version__}, OpenMM {openmm.__version__}, "
      f"CUDA plugin installed: {os.path.exists(plugin)}")
