"""Run molecular dynamics with a machine-learned potential: :func:`run` (and ``nnforce simulate``).

From a PDB (or an OpenMM Topology + positions) and an exported TorchScript model this builds an OpenMM System
whose potential is an ``NNForce`` (pure ML), or, given an MM force field and the ML atoms, an ML/MM System
through :func:`nnforce.mlmm.create_mlmm_system`; then it minimises, equilibrates and runs production with
Langevin (middle) or velocity-Verlet (NVE) dynamics, writing

* ``energies.csv``   step, time, potential/kinetic/total energy, temperature, speed (rewritten atomically,
  so a crash never leaves a torn file; at most ``CSV_FLUSH_SECONDS`` of rows are lost, and a resume
  recomputes them);
* ``trajectory.dcd`` / ``.xtc``  frames of the production phase (OpenMM's writers; on resume cut back to the
  last checkpoint so no frame is duplicated);
* ``checkpoint.chk`` + ``checkpoint.json``  an OpenMM checkpoint (positions, velocities, step, random-number
  state) and what had been written at that step, both written atomically every ``checkpoint_interval``
  steps; ``resume=True`` continues from them and reproduces the uninterrupted run exactly (same platform);
* ``final.pdb`` and ``result.json``.

Everything the dynamics needs is fixed by the config and ``seed`` (velocities and Langevin noise).

The rooms: :mod:`~nnforce.simulate.config` (the settings), :mod:`~nnforce.simulate.system` (structure, System,
platform, integrator), :mod:`~nnforce.simulate.outputs` (files), :mod:`~nnforce.simulate.runner` (the run).
"""
from ..contract import METADATA_FILE, inspect_model  # noqa: F401
from ..atoms import atomic_numbers_of, check_elements, parse_atom_selection  # noqa: F401
from .config import (CHECKPOINT_NAME, CHECKPOINT_STATE_NAME, CSV_COLUMNS, CSV_FLUSH_SECONDS, CSV_NAME,  # noqa: F401
                     INTEGRATOR_ALIASES, INTEGRATORS, TRAJECTORY_FORMATS, SimulationConfig)
from .outputs import EnergyLog, TrajectoryWriter, energy_drift  # noqa: F401
from .runner import run
from .system import build_system, degrees_of_freedom, get_platform, load_structure, make_integrator

__all__ = ["SimulationConfig", "run", "build_system", "load_structure", "get_platform", "make_integrator",
           "degrees_of_freedom", "energy_drift", "inspect_model", "check_elements",
           "parse_atom_selection", "atomic_numbers_of", "EnergyLog", "TrajectoryWriter"]
