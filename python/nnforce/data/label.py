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
    """Energies (kJ/mol) and forces (kJ/mol/nm) from tblite for every frame of ``dataset``; returns a new Dataset.

    Parameters
    ----------
    dataset : Dataset
    method : str
        ``GFN2-xTB`` or ``GFN1-xTB``.
    charge : float
    uhf : int
        Unpaired electrons.
    progress : bool

    Returns
    -------
    Dataset

    Examples
    --------
    >>> labelled = xtb_label(read_frames("traj.xyz"))  # doctest: +SKIP
    """
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


def frame_label(model, atomic_numbers, positions_nm):
    """Energy (kJ/mol) and forces (kJ/mol/nm) of one frame from a contract model, float64."""
    import torch

    positions = torch.tensor(positions_nm, dtype=torch.float64, requires_grad=True)
    energy = model(positions=positions, atomic_numbers=torch.as_tensor(atomic_numbers))
    (gradient,) = torch.autograd.grad(energy, positions)
    return float(energy.detach()), -gradient.numpy()


def xtb_single_point(atomic_numbers, positions_nm):
    """GFN2-xTB energy (kJ/mol) and forces (kJ/mol/nm) of one frame (tblite)."""
    calc = _tblite()("GFN2-xTB", np.asarray(atomic_numbers), np.asarray(positions_nm) / NM_PER_BOHR)
    calc.set("verbosity", 0)
    result = calc.singlepoint()
    return float(result.get("energy")) * KJ_MOL_PER_HARTREE, -np.asarray(result.get("gradient")) * KJ_MOL_NM_PER_HARTREE_BOHR


def _atomic_energy_function(model):
    """``f(positions, atomic_numbers, neighbors) -> per-atom energies (kJ/mol)`` for models that expose
    per-atom energies (the trainable models' ``atomic_energies``; the ANI-1x ensemble's AEV and element
    networks), or None."""
    import torch

    if hasattr(model, "atomic_energies"):
        return lambda x, z, pairs: model.atomic_energies(x, z, pairs)
    if all(hasattr(model, name) for name in ("aev", "species", "networks", "self_energies", "kj_mol_per_hartree")):
        def ani1x_atomic(x, z, pairs):
            species = model.species(z)
            features = model.aev(x, species, pairs)
            atomic = model.self_energies.index_select(0, species)  # Hartree
            for index, network in enumerate(model.networks):
                atoms = torch.nonzero(species == index).flatten()
                if atoms.numel() > 0:
                    atomic = atomic.index_add(0, atoms, network(features.index_select(0, atoms)).mean(dim=0))
            return atomic * model.kj_mol_per_hartree
        return ani1x_atomic
    return None


def label_frames(model, atomic_numbers, frames_nm, batch_frames=64):
    """Energies and forces of a contract model for many frames of one molecule.

    With ``batch_frames > 1`` and a model that exposes per-atom energies (the trainable models, ANI-1x),
    ``batch_frames`` frames are concatenated with a block-diagonal pair list (:func:`nnforce.data.block_pairs`),
    per-atom energies are summed per frame and one backward pass gives every frame's forces (frames do not
    interact): the same numbers as one frame at a time, several times faster for small molecules. Other models
    are evaluated one frame at a time.

    Parameters
    ----------
    model : torch.nn.Module
        Follows the model contract (positions nm, atomic numbers -> kJ/mol); float64 is recommended.
    atomic_numbers : array of int, shape (N,)
    frames_nm : array, shape (F, N, 3)
    batch_frames : int
        Frames per model call.

    Returns
    -------
    energies : numpy.ndarray, shape (F,)
        kJ/mol.
    forces : numpy.ndarray, shape (F, N, 3)
        kJ/mol/nm.

    Examples
    --------
    >>> from nnforce.models import ani1x
    >>> energies, forces = label_frames(ani1x(), [6, 1, 1, 1, 1], frames)  # doctest: +SKIP
    """
    import torch

    from .batch import block_pairs

    numbers = np.asarray(atomic_numbers, dtype=np.int64)
    frames_nm = np.asarray(frames_nm, dtype=np.float64)
    n_frames, n_atoms = frames_nm.shape[:2]
    energies = np.empty(n_frames)
    forces = np.empty_like(frames_nm)
    atomic = _atomic_energy_function(model) if int(batch_frames) > 1 else None
    if atomic is None:
        for f in range(n_frames):
            energies[f], forces[f] = frame_label(model, numbers, frames_nm[f])
        return energies, forces
    for start in range(0, n_frames, int(batch_frames)):
        count = min(start + int(batch_frames), n_frames) - start
        positions = torch.tensor(frames_nm[start:start + count].reshape(-1, 3), dtype=torch.float64,
                                 requires_grad=True)
        per_atom = atomic(positions, torch.as_tensor(np.tile(numbers, count)),
                          block_pairs(torch.full((count,), n_atoms)))
        per_frame = per_atom.reshape(count, n_atoms).sum(dim=1)
        (gradient,) = torch.autograd.grad(per_frame.sum(), positions)
        energies[start:start + count] = per_frame.detach().double().numpy()
        forces[start:start + count] = -gradient.double().numpy().reshape(count, n_atoms, 3)
    return energies, forces


def teacher_label(dataset, model, batch_size=1):
    """Label a dataset with a model that honours the contract (positions nm -> kJ/mol): energies and autograd
    forces, in float64.

    Parameters
    ----------
    dataset : Dataset
        Frames to label (their existing labels are replaced).
    model : torch.nn.Module
        The teacher, e.g. :func:`nnforce.models.ani1x` or a loaded TorchScript model.
    batch_size : int
        Frames per model call when every frame is the same molecule (see :func:`label_frames`); 1 evaluates
        one frame at a time.

    Returns
    -------
    Dataset
        The same frames with the teacher's energies (kJ/mol) and forces (kJ/mol/nm).

    Examples
    --------
    >>> from nnforce.models import ani1x
    >>> labelled = teacher_label(frames, ani1x(), batch_size=64)  # doctest: +SKIP
    """
    sizes = np.diff(dataset.offsets)
    same = len(dataset) > 0 and np.all(sizes == sizes[0]) and np.all(
        dataset.atomic_numbers.reshape(len(dataset), -1) == dataset.atomic_numbers[:sizes[0]])
    if same and int(batch_size) > 1:
        energies, forces = label_frames(model, dataset.atomic_numbers[:sizes[0]],
                                        dataset.positions_nm.reshape(len(dataset), sizes[0], 3), batch_size)
        forces = forces.reshape(-1, 3)
    else:
        energies = np.empty(len(dataset))
        forces = np.empty_like(dataset.positions_nm)
        for f in range(len(dataset)):
            z, x, _, _ = dataset.frame(f)
            a, b = dataset.offsets[f], dataset.offsets[f + 1]
            energies[f], forces[a:b] = frame_label(model, z, x)
    return Dataset(dataset.atomic_numbers, dataset.positions_nm, dataset.offsets, energies, forces,
                   name=f"{dataset.name}:teacher")


def xtb_md(atomic_numbers, positions_nm, n_frames, interval=10, temperature_K=500.0, timestep_fs=0.5,
           friction_per_fs=0.01, equilibration_steps=2000, method="GFN2-xTB", seed=0, progress=False):
    """Langevin MD on the GFN2-xTB surface (ASE + tblite); returns ``n_frames`` labelled frames every ``interval``
    steps after ``equilibration_steps``. Energies/forces are those tblite computed at the stored positions.

    Parameters
    ----------
    atomic_numbers : sequence of int
    positions_nm : array, shape (N, 3)
    n_frames, interval, equilibration_steps : int
    temperature_K, timestep_fs, friction_per_fs : float
    method : str
    seed : int
        Velocities and Langevin noise.
    progress : bool

    Returns
    -------
    Dataset

    Examples
    --------
    >>> frames = xtb_md([8, 1, 1], water_nm, 100, temperature_K=400)  # doctest: +SKIP
    """
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
    """Unlabelled frames of a trajectory: XYZ through ASE, anything else through mdtraj (needs ``top``).

    Parameters
    ----------
    path : str
    top : str, optional
        Topology for mdtraj formats.
    stride : int

    Returns
    -------
    Dataset
        Positions only (no labels).

    Examples
    --------
    >>> frames = read_frames("traj.dcd", top="mol.pdb", stride=10)  # doctest: +SKIP
    """
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
