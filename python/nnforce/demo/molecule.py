"""The demo's molecule: alanine dipeptide (ACE-ALA-NME, L form) from the checked-in PDB, with its backbone turned
to any (phi, psi). The same file is the starting structure of the analysis tests' fixture
(tests/fixtures/make_alanine.py).

``alanine_dipeptide.pdb`` was built once from ideal internal coordinates (peptide bonds 0.133 nm, C=O 0.123 nm,
N-CA/N-CH3 0.146 nm, CA-C 0.152 nm, CA-CB 0.153 nm, trans peptide bonds, C-N-CA-CB -123 deg for the L form,
phi -80, psi 150 deg) with hydrogens from OpenMM's ``Modeller`` and the amber14 templates.
"""
import math
import os

import numpy as np

ALANINE_PDB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "alanine_dipeptide.pdb")
"""Path of the checked-in alanine dipeptide structure (22 atoms, phi -80, psi 150 deg)."""


def _dihedral(a, b, c, d):
    """Dihedral angle a-b-c-d in radians (IUPAC sign convention)."""
    b0, b1, b2 = a - b, c - b, d - c
    b1 = b1 / np.linalg.norm(b1)
    v = b0 - np.dot(b0, b1) * b1
    w = b2 - np.dot(b2, b1) * b1
    return math.atan2(np.dot(np.cross(b1, v), w), np.dot(v, w))


def _rotate(xyz, moving, origin, axis, angle):
    """Rotate the rows ``moving`` of ``xyz`` by ``angle`` (radians) about the axis through ``origin`` (Rodrigues)."""
    k = axis / np.linalg.norm(axis)
    p = xyz[moving] - origin
    cos, sin = math.cos(angle), math.sin(angle)
    xyz[moving] = origin + p * cos + np.cross(k, p) * sin + np.outer(p @ k, k) * (1.0 - cos)


def set_backbone(topology, positions_nm, phi_deg, psi_deg):
    """Turn alanine's backbone to ``phi_deg`` (C-N-CA-C) and ``psi_deg`` (N-CA-C-N) by rigid rotations.

    Parameters
    ----------
    topology : openmm.app.Topology
        ACE-ALA-NME.
    positions_nm : array, shape (22, 3)
    phi_deg, psi_deg : float

    Returns
    -------
    numpy.ndarray
        New positions (nm); bond lengths, bond angles and the CA chirality are unchanged.

    Examples
    --------
    >>> topology, positions = alanine_dipeptide()  # doctest: +SKIP
    >>> moved = set_backbone(topology, positions, 60.0, 45.0)  # doctest: +SKIP
    """
    xyz = np.array(positions_nm, dtype=np.float64)
    index = {(atom.residue.name, atom.name): atom.index for atom in topology.atoms()}
    residue_of = [atom.residue.name for atom in topology.atoms()]
    n, ca, c = index["ALA", "N"], index["ALA", "CA"], index["ALA", "C"]
    # phi turns everything beyond N-CA: ALA except N and its H, and NME
    beyond_ca = [i for i, r in enumerate(residue_of) if (r == "ALA" and i not in (n, index["ALA", "H"])) or r == "NME"]
    phi = _dihedral(xyz[index["ACE", "C"]], xyz[n], xyz[ca], xyz[c])
    _rotate(xyz, beyond_ca, xyz[ca], xyz[ca] - xyz[n], math.radians(phi_deg) - phi)
    # psi turns everything beyond CA-C: ALA's O and NME
    beyond_c = [index["ALA", "O"]] + [i for i, r in enumerate(residue_of) if r == "NME"]
    psi = _dihedral(xyz[n], xyz[ca], xyz[c], xyz[index["NME", "N"]])
    _rotate(xyz, beyond_c, xyz[c], xyz[c] - xyz[ca], math.radians(psi_deg) - psi)
    return xyz


def alanine_dipeptide(phi_deg=-80.0, psi_deg=150.0):
    """The checked-in alanine dipeptide with its backbone at (``phi_deg``, ``psi_deg``).

    Parameters
    ----------
    phi_deg, psi_deg : float
        Backbone torsions in degrees.

    Returns
    -------
    tuple
        ``(openmm.app.Topology, positions Quantity in nm)``.

    Examples
    --------
    >>> topology, positions = alanine_dipeptide(-70.0, 135.0)
    >>> topology.getNumAtoms()
    22
    """
    from openmm import app, unit

    pdb = app.PDBFile(ALANINE_PDB)
    xyz = pdb.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return pdb.topology, unit.Quantity(set_backbone(pdb.topology, xyz, phi_deg, psi_deg), unit.nanometer)


def atomic_numbers(topology):
    """Atomic numbers of a topology's atoms as an int64 array.

    Examples
    --------
    >>> atomic_numbers(alanine_dipeptide()[0])[:5].tolist()
    [6, 1, 1, 1, 6]

    Parameters
    ----------
    topology : openmm.app.Topology

    Returns
    -------
    numpy.ndarray of int64
    """
    from ..atoms import atomic_numbers_of

    return np.array(atomic_numbers_of(topology), dtype=np.int64)


def write_pdb(path, topology, positions):
    """Write a PDB file atomically; returns ``path``.

    Parameters
    ----------
    path : str
    topology : openmm.app.Topology
    positions : Quantity

    Returns
    -------
    str

    Examples
    --------
    >>> write_pdb("ala2.pdb", *alanine_dipeptide())  # doctest: +SKIP
    'ala2.pdb'
    """
    from openmm import app

    from .._io import atomic_write

    with atomic_write(path, "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle)
    return path


def sample_configurations(settings, seed):
    """Frames from amber14 vacuum Langevin MD (CPU platform, one thread), one run per (phi, psi) start.

    Parameters
    ----------
    settings : dict
        ``sample_*`` entries of the demo settings.
    seed : int

    Returns
    -------
    tuple
        ``(topology, positions of the first start, frames nm [F, N, 3], start index of each frame [F])``.

    Examples
    --------
    >>> from nnforce.demo.settings import SETTINGS
    >>> topology, positions, frames, origin = sample_configurations(SETTINGS["small"], 0)  # doctest: +SKIP
    """
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14-all.xml")
    frames, origin, first = [], [], None
    temperature = settings["sample_temperature_k"] * unit.kelvin
    for k, (phi, psi) in enumerate(settings["sample_starts_deg"]):
        topology, positions = alanine_dipeptide(phi, psi)
        first = first or (topology, positions)
        system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
        integrator = openmm.LangevinMiddleIntegrator(temperature, settings["sample_friction_per_ps"] / unit.picosecond,
                                                     settings["sample_timestep_fs"] * unit.femtosecond)
        integrator.setRandomNumberSeed(1 + 1000 * seed + k)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
        context.setVelocitiesToTemperature(temperature, 1 + 1000 * seed + k)
        integrator.step(settings["sample_equilibration_steps"])
        for _ in range(settings["sample_frames_per_start"]):
            integrator.step(settings["sample_interval_steps"])
            frames.append(context.getState(getPositions=True).getPositions(asNumpy=True).value_in_unit(unit.nanometer))
            origin.append(k)
        del context, integrator
    return first[0], first[1], np.asarray(frames, dtype=np.float64), np.asarray(origin)
