"""Real labels without the internet: GFN2-xTB (tblite, optional) or a teacher model (e.g. ANI-1x).

``nnforce label TRAJ -o labelled.npz`` (:mod:`nnforce.cli.label`) computes energies and forces for the frames of a trajectory and writes a
native dataset (nm, kJ/mol, kJ/mol/nm). :func:`xtb_md` runs Langevin MD on the GFN2-xTB surface (ASE + tblite) to
produce real-physics training frames, e.g. the ethanol 500 K set of ``bench/train_accuracy.py``.
"""
import os

import numpy as np

from .dataset import Dataset
from ..units import (ANGSTROM_PER_NM, KJ_MOL_NM_PER_EV_A, KJ_MOL_NM_PER_HARTREE_BOHR, KJ_MOL_PER_EV,
                     KJ_MOL_PER_HARTREE, NM_PER_BOHR)

def _tblite():
    try:
        from tblite.interface import Calculator
    except ImportError as error:
        raise ImportError("GFN2-xTB labels need the tblite package: pip install tblite") from error
    return Calculator


def xtb_label(dataset, method="GFN2-xTB", charge=0.0, uhf=0, progress=False):
    """Energies (kJ/mol) and forces (kJ/mol/nm) from tblite for every frame of ``dataset``; returns a new Dataset."""
    Calculator = _tblite()
    energies = np.empty(len(dataset))
    forces = np.empty_like(dataset.positions_nm)
    calc, calc_numbers = None, None
    frames = range(len(dataset))
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"{method} labels", unit="frame")
    for f in frames:
        z, x, _, _ = dataset.frame(f)
        bohr = x / NM_PER_BOHR
        if calc is None or calc_numbers is None or not np.array_equal(calc_numbers, z):
            calc = Calculator(method, z, bohr, charge=charge, uhf=uhf)
            calc.set("verbosity", 0)
            calc_numbers = z.copy()
        else:
            calc.update(bohr)
        result = calc.singlepoint()
        energy = float(result.get("energy"))
        gradient = np.asarray(result.get("gradient"))
        a, b = dataset.offsets[f], dataset.offsets[f + 1]
        energies[f] = energy * KJ_MOL_PER_HARTREE
        forces[a:b] = -gradient * KJ_MOL_NM_PER_HARTREE_BOHR
    return Dataset(dataset.atomic_numbers, dataset.positions_nm, dataset.offsets, energies, forces,
                   name=f"{dataset.name}:{method}")


def teacher_label(dataset, model, batch_size=64):
    """Label with a model that honours the contract (positions nm -> kJ/mol): energies + autograd forces."""
    import torch

    energies = np.empty(len(dataset))
    forces = np.empty_like(dataset.positions_nm)
    for f in range(len(dataset)):
        z, x, _, _ = dataset.frame(f)
        positions = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        energy = model(positions=positions, atomic_numbers=torch.as_tensor(z))
        (gradient,) = torch.autograd.grad(energy, positions)
        a, b = dataset.offsets[f], dataset.offsets[f + 1]
        energies[f] = float(energy.detach())
        forces[a:b] = -gradient.numpy()
    return Dataset(dataset.atomic_numbers, dataset.positions_nm, dataset.offsets, energies, forces,
                   name=f"{dataset.name}:teacher")


def xtb_md(atomic_numbers, positions_nm, n_frames, interval=10, temperature_K=500.0, timestep_fs=0.5,
           friction_per_fs=0.01, equilibration_steps=2000, method="GFN2-xTB", seed=0, progress=False):
    """Langevin MD on the GFN2-xTB surface (ASE + tblite); returns ``n_frames`` labelled frames every ``interval``
    steps after ``equilibration_steps``. Energies/forces are those tblite computed at the stored positions."""
    _tblite()
    from ase import Atoms, units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from tblite.ase import TBLite

    atoms = Atoms(numbers=np.asarray(atomic_numbers), positions=np.asarray(positions_nm) * ANGSTROM_PER_NM)
    atoms.calc = TBLite(method=method, verbosity=0)
    rng = np.random.default_rng(seed)
    MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)
    dyn = Langevin(atoms, timestep_fs * units.fs, temperature_K=temperature_K, friction=friction_per_fs / units.fs,
                   rng=np.random.default_rng(seed + 1))
    dyn.run(equilibration_steps)
    positions, energies, forces = [], [], []
    frames = range(n_frames)
    if progress:
        from tqdm import tqdm

        frames = tqdm(frames, desc=f"{method} MD {temperature_K:g} K", unit="frame")
    for _ in frames:
        dyn.run(interval)
        positions.append(atoms.get_positions() / ANGSTROM_PER_NM)
        energies.append(atoms.get_potential_energy() * KJ_MOL_PER_EV)
        forces.append(atoms.get_forces() * KJ_MOL_NM_PER_EV_A)
    return Dataset.from_frames(np.asarray(atomic_numbers), positions, energies, forces,
                               name=f"{method}-md-{temperature_K:g}K")


def read_frames(path, top=None, stride=1):
    """Unlabelled frames of a trajectory: XYZ through ASE, anything else through mdtraj (needs ``top``)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"trajectory {path} does not exist")
    if path.lower().endswith((".xyz", ".extxyz")) and top is None:
        import ase.io

        images = ase.io.read(path, index=f"::{int(stride)}")
        return Dataset.from_frames([a.get_atomic_numbers() for a in images],
                                   [a.get_positions() / ANGSTROM_PER_NM for a in images], name=os.path.basename(path))
    import mdtraj

    traj = mdtraj.load(path, top=top, stride=int(stride)) if top else mdtraj.load(path, stride=int(stride))
    z = np.array([atom.element.atomic_number for atom in traj.topology.atoms], dtype=np.int64)
    return Dataset.from_frames(z, list(traj.xyz.astype(np.float64)), name=os.path.basename(path))


def load_teacher(name):
    """A teacher model for :func:`teacher_label`: ``"ani1x"`` or a TorchScript model file, in float64.

    Parameters
    ----------
    name : str
        ``"ani1x"`` (:func:`nnforce.models.ani1x`) or a path.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> teacher = load_teacher("ani1x")  # doctest: +SKIP
    """
    if name == "ani1x":
        from ..models import ani1x

        return ani1x().double()
    import torch

    if not os.path.exists(name):
        raise FileNotFoundError(f"teacher model {name} does not exist")
    return torch.jit.load(name).double()
