"""The ``ase`` potential: any ASE calculator, called from OpenMM through a Python callback (openmm.PythonForce).

An ASE calculator is arbitrary Python (it may call another program), so it cannot run inside NNForce's C++ step;
a Python callback per step is the right tool. As in openmm-ml: ``createSystem(topology, calculator=calc)`` (an
Atoms object is built from the topology's elements, ``info`` entries added to ``atoms.info``) or
``createSystem(topology, aseAtoms=atoms)`` (an Atoms object with its calculator, same atoms in the same order).
Units: ASE's eV and Angstrom, converted with nnforce.units' constants.
"""
import numpy as np
import openmm
import openmm.unit as unit

from ..units import ANGSTROM_PER_NM, KJ_MOL_PER_EV


class ASEPotential:
    """The ``ase`` family for :class:`nnforce.potentials.MLPotential` (adds an openmm.PythonForce)."""

    ml_long_range = None

    def __init__(self, name):
        try:
            import ase  # noqa: F401
        except ImportError as error:
            raise ImportError(f"the 'ase' potential needs ase, which failed to import ({error}); "
                              "`pip install ase`") from error

    def add_forces(self, topology, system, atoms, forceGroup, periodic=False, calculator=None, aseAtoms=None,
                   info=None, **args):
        import ase

        unknown = sorted(set(args) - {"charge", "precision", "device", "mlLongRange", "platformProperties"})
        if unknown:
            raise ValueError(f"the 'ase' potential does not take {', '.join(unknown)}; it takes calculator, "
                             "aseAtoms, info")
        chosen = list(topology.atoms())
        if atoms is not None:
            chosen = [chosen[i] for i in atoms]
        if any(atom.element is None for atom in chosen):
            raise ValueError("every atom the 'ase' potential describes needs an element (no virtual sites)")
        numbers = [atom.element.atomic_number for atom in chosen]
        if aseAtoms is not None:
            if len(aseAtoms) != len(chosen):
                raise ValueError(f"aseAtoms has {len(aseAtoms)} atoms but the potential describes {len(chosen)}")
            if list(aseAtoms.numbers) != numbers:
                raise ValueError("aseAtoms' elements differ from the topology's (same atoms in the same order)")
        else:
            if calculator is None:
                raise ValueError("the 'ase' potential needs calculator=<ASE calculator> or aseAtoms=<ase.Atoms with "
                                 "a calculator>")
            aseAtoms = ase.Atoms(numbers=numbers, pbc=topology.getPeriodicBoxVectors() is not None,
                                 calculator=calculator)
        for key, value in (info or {}).items():
            aseAtoms.info[key] = value
        indices = None if atoms is None else np.asarray(list(atoms), dtype=int)
        force = openmm.PythonForce(_Callback(aseAtoms, indices))
        force.setForceGroup(forceGroup)
        force.setUsesPeriodicBoundaryConditions(bool(any(aseAtoms.get_pbc())))
        force.setName("MLPotential ase")
        system.addForce(force)


class _Callback:
    def __init__(self, atoms, indices):
        self.atoms = atoms
        self.indices = indices

    def __call__(self, state):
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        n = positions.shape[0]
        if self.indices is not None:
            positions = positions[self.indices]
        self.atoms.set_positions(positions * ANGSTROM_PER_NM)
        if any(self.atoms.get_pbc()):
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            self.atoms.set_cell(box * ANGSTROM_PER_NM)
        energy = float(self.atoms.get_potential_energy(apply_constraint=False)) * KJ_MOL_PER_EV
        forces = np.asarray(self.atoms.get_forces(apply_constraint=False), dtype=np.float64) \
            * (KJ_MOL_PER_EV * ANGSTROM_PER_NM)
        if self.indices is not None:
            full = np.zeros((n, 3))
            full[self.indices] = forces
            forces = full
        return energy, forces
