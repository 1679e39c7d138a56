"""Test systems and reference helpers shared by tests/test_potentials*.py.

* ``vacuum_peptide()``: alanine dipeptide (ACE-ALA-NME, 22 atoms) in vacuum, built by tests/fixtures/make_alanine.py,
  plus five waters for the ML/MM tests (amber14 + flexible TIP3P, no cutoff).
* ``triclinic_box()``: the dipeptide solvated in a triclinic box (OpenMM's reduced form, heights 1.2-1.35 nm),
  amber14 + flexible TIP3P with PME.
* ``openmm_energy_forces``: energy and forces of a System (or one force group) on the Reference platform.
"""
import functools
import os
import sys
import tempfile

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))

KJ_MOL_PER_EV = 1.602176634e-19 * 6.02214076e23 / 1000.0
TRICLINIC_BOX_NM = ((1.30, 0.0, 0.0), (0.40, 1.25, 0.0), (-0.35, 0.45, 1.20))


@functools.lru_cache(maxsize=None)
def _peptide_pdb():
    import make_alanine

    path = os.path.join(tempfile.mkdtemp(prefix="nnforce-potentials-"), "ala2.pdb")
    make_alanine.alanine_dipeptide_pdb(path)
    return app.PDBFile(path)


def _forcefield():
    return app.ForceField("amber14-all.xml", "amber14/tip3p.xml")


@functools.lru_cache(maxsize=None)
def _solvated():
    pdb = _peptide_pdb()
    modeller = app.Modeller(pdb.topology, pdb.positions)
    vectors = [openmm.Vec3(*row) for row in TRICLINIC_BOX_NM] * unit.nanometer
    modeller.addSolvent(_forcefield(), boxVectors=vectors, model="tip3p")
    return modeller


def molecule():
    """(topology, positions_nm) of alanine dipeptide alone in vacuum."""
    import copy

    pdb = _peptide_pdb()
    return copy.deepcopy(pdb.topology), np.array(pdb.positions.value_in_unit(unit.nanometer))


def vacuum_peptide():
    """(topology, positions_nm, mm_system, peptide_atoms): dipeptide + 5 waters, no box, amber14 NoCutoff."""
    solvated = _solvated()
    modeller = app.Modeller(solvated.topology, solvated.positions)
    waters = [r for r in modeller.topology.residues() if r.name == "HOH"]
    modeller.delete(waters[5:])
    modeller.topology.setPeriodicBoxVectors(None)
    system = _forcefield().createSystem(modeller.topology, nonbondedMethod=app.NoCutoff, constraints=None,
                                        rigidWater=False)
    peptide = [a.index for a in modeller.topology.atoms() if a.residue.name != "HOH"]
    return modeller.topology, np.array(modeller.positions.value_in_unit(unit.nanometer)), system, peptide


def triclinic_box():
    """(topology, positions_nm, mm_system, peptide_atoms) of the solvated dipeptide in the triclinic box (PME)."""
    solvated = _solvated()
    topology = solvated.topology
    system = _forcefield().createSystem(topology, nonbondedMethod=app.PME, nonbondedCutoff=0.6 * unit.nanometer,
                                        constraints=None, rigidWater=False)
    peptide = [a.index for a in topology.atoms() if a.residue.name != "HOH"]
    return topology, np.array(solvated.positions.value_in_unit(unit.nanometer)), system, peptide


def box_nm(topology):
    return np.array([[v[k] for k in range(3)] for v in topology.getPeriodicBoxVectors().value_in_unit(unit.nanometer)])


def openmm_energy_forces(system, positions_nm, groups=-1, parameters=None):
    """(energy kJ/mol, forces kJ/mol/nm) on the Reference platform (float64)."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions_nm * unit.nanometer)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.array(forces)


def ase_atoms(numbers, positions_nm, box=None):
    import ase

    atoms = ase.Atoms(numbers=numbers, positions=positions_nm * 10.0)
    if box is not None:
        atoms.set_cell(box * 10.0)
        atoms.set_pbc(True)
    return atoms


def atomic_numbers(topology, atoms=None):
    all_atoms = list(topology.atoms())
    chosen = all_atoms if atoms is None else [all_atoms[i] for i in atoms]
    return [a.element.atomic_number for a in chosen]


def assert_close(energy, forces, ref_energy, ref_forces, rtol=1e-6):
    """Energy to ``rtol`` relative; forces to ``rtol`` relative to the largest reference force component."""
    assert abs(energy - ref_energy) <= rtol * abs(ref_energy), (energy, ref_energy, energy - ref_energy)
    scale = np.abs(ref_forces).max()
    diff = np.abs(np.asarray(forces) - np.asarray(ref_forces)).max()
    assert diff <= rtol * scale, (diff, scale)
