"""Energy precision (issue 11): ANI-1x on a 132-atom system (six alanine dipeptides) through NNForce on the CPU
platform. In float32 the networks run in float32 but the atomic energies are summed, and the large per-element self
energies added, in float64, so the float32 total agrees with float64 to ~1e-6 of the interaction energy (before,
the float32 sum rounded the total to ~1 kJ/mol)."""
import os

import numpy as np
import openmm
import openmm.app as app
import pytest
import torch

import nnforce
from nnforce.models.ani1x import HARTREE_IN_KJ_PER_MOL, ani1x

PDB = os.path.join(os.path.dirname(nnforce.__file__), "demo", "alanine_dipeptide.pdb")


def _six_dipeptides():
    pdb = app.PDBFile(PDB)
    x = np.asarray(pdb.getPositions(asNumpy=True).value_in_unit(openmm.unit.nanometer))
    z = [atom.element.atomic_number for atom in pdb.topology.atoms()]
    offsets = [(a, b, 0.0) for a in (0.0, 0.7, 1.4) for b in (0.0, 0.7)]
    return np.concatenate([x + np.array(o) for o in offsets]), z * len(offsets)


def test_float32_energy_agrees_with_float64_to_the_interaction_energy(tmp_path, one_torch_thread):
    positions, z = _six_dipeptides()
    assert len(z) >= 100
    model = ani1x()
    path = tmp_path / "ani1x.pt"
    torch.jit.save(torch.jit.script(model), str(path))
    energies = {}
    for precision in ("single", "double"):
        force = nnforce.NNForce(str(path), {"precision": precision})
        force.setAtomicNumbers(z)
        system = openmm.System()
        for _ in z:
            system.addParticle(12.0)
        system.addForce(force)
        context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("CPU"),
                                 {"Threads": "1"})
        context.setPositions(positions)
        energies[precision] = context.getState(getEnergy=True).getPotentialEnergy()._value
    species = model.species(torch.tensor(z))
    self_energy = float(model.self_energies.index_select(0, species).sum()) * HARTREE_IN_KJ_PER_MOL
    interaction = energies["double"] - self_energy
    with torch.no_grad():
        eager = float(model(torch.tensor(positions), torch.tensor(z)))
    assert energies["double"] == pytest.approx(eager, rel=1e-12)
    assert abs(self_energy) > 1e6 and abs(interaction) > 100.0  # a total ~1e4 times the interaction energy
    relative = abs(energies["single"] - energies["double"]) / abs(interaction)
    print(f"float32 vs float64: {relative:.2e} of the interaction energy ({interaction:.1f} kJ/mol)")
    assert relative < 3e-6
