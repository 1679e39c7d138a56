"""Real labels without the internet: GFN2-xTB (tblite, optional) or a teacher model (e.g. ANI-1x).

``nnforce label TRAJ -o labelled.npz`` computes energies and forces for the frames of a trajectory and writes a
native dataset (nm, kJ/mol, kJ/mol/nm). :func:`xtb_md` runs Langevin MD on the GFN2-xTB surface (ASE + tblite) to
produce real-physics training frames, e.g. the ethanol 500 K set of ``bench/train_accuracy.py``.
"""
import argparse
import os

import numpy as np

from .dataset import Dataset
from .units import KJ_MOL_PER_HARTREE, NM_PER_BOHR

EXAMPLES = """examples:
  nnforce label traj.xyz -o ethanol_xtb.npz                     GFN2-xTB energies+forces for every frame
  nnforce label traj.dcd --top mol.pdb --stride 10 -o data.npz   every 10th frame of a DCD (topology from a PDB)
  nnforce label traj.xyz --teacher ani1x -o ani.npz             ANI-1x (torchani's NeuroChem files) as the teacher
  nnforce label mol.xyz --md-frames 2000 --temperature 500 -o md.npz
                                                               run GFN2-xTB Langevin MD from mol.xyz and label it
requires: tblite (pip install tblite) for GFN2-xTB; set OMP_NUM_THREADS=1 for small molecules."""


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
        forces[a:b] = -gradient * (KJ_MOL_PER_HARTREE / NM_PER_BOHR)
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

    atoms = Atoms(numbers=np.asarray(atomic_numbers), positions=np.asarray(positions_nm) * 10.0)
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
        positions.append(atoms.get_positions() / 10.0)
        energies.append(atoms.get_potential_energy() * 96.48533212331)
        forces.append(atoms.get_forces() * 964.8533212331)
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
                                   [a.get_positions() / 10.0 for a in images], name=os.path.basename(path))
    import mdtraj

    traj = mdtraj.load(path, top=top, stride=int(stride)) if top else mdtraj.load(path, stride=int(stride))
    z = np.array([atom.element.atomic_number for atom in traj.topology.atoms], dtype=np.int64)
    return Dataset.from_frames(z, list(traj.xyz.astype(np.float64)), name=os.path.basename(path))


def register(subparsers):
    parser = subparsers.add_parser(
        "label", help="label trajectory frames with GFN2-xTB (tblite) or a teacher model",
        description="Compute reference energies and forces for the frames of a trajectory and write an nnforce "
                    "dataset (.npz: positions nm, energies kJ/mol, forces kJ/mol/nm).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("trajectory", help="frames to label (.xyz via ASE; .dcd/.xtc/.pdb/... via mdtraj)")
    parser.add_argument("-o", "--output", required=True, help="output dataset (.npz)")
    parser.add_argument("--top", help="topology for mdtraj formats (e.g. a PDB)")
    parser.add_argument("--stride", type=int, default=1, help="use every STRIDE-th frame (default 1)")
    parser.add_argument("--method", default="GFN2-xTB", help="tblite method: GFN2-xTB (default) or GFN1-xTB")
    parser.add_argument("--charge", type=float, default=0.0, help="total charge (default 0)")
    parser.add_argument("--teacher", help="'ani1x' (nnforce.models.ani1x) or a TorchScript model file")
    parser.add_argument("--md-frames", type=int, default=0,
                        help="instead of labelling the frames, run GFN2-xTB Langevin MD from the first frame and "
                             "keep this many frames")
    parser.add_argument("--interval", type=int, default=10, help="MD steps between kept frames (default 10)")
    parser.add_argument("--temperature", type=float, default=300.0, help="MD temperature in K (default 300)")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="MD time step in fs (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="MD random seed (default 0)")
    parser.set_defaults(func=run)


def run(args):
    frames = read_frames(args.trajectory, args.top, args.stride)
    if args.md_frames > 0:
        z, x, _, _ = frames.frame(0)
        labelled = xtb_md(z, x, args.md_frames, interval=args.interval, temperature_K=args.temperature,
                          timestep_fs=args.timestep_fs, method=args.method, seed=args.seed, progress=True)
    elif args.teacher:
        if args.teacher == "ani1x":
            from ..models import ani1x

            model = ani1x()
        else:
            import torch

            if not os.path.exists(args.teacher):
                raise FileNotFoundError(f"teacher model {args.teacher} does not exist")
            model = torch.jit.load(args.teacher)
        labelled = teacher_label(frames, model.double())
    else:
        labelled = xtb_label(frames, method=args.method, charge=args.charge, progress=True)
    labelled.save(args.output)
    print(f"wrote {len(labelled)} labelled frames to {args.output}")
    return 0
