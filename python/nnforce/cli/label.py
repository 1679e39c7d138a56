"""``nnforce label``: energies and forces for the frames of a trajectory (GFN2-xTB or a teacher model)."""
from . import add_command

EXAMPLES = """examples:
  nnforce label traj.xyz -o ethanol_xtb.npz                     GFN2-xTB energies+forces for every frame
  nnforce label traj.dcd --top mol.pdb --stride 10 -o data.npz   every 10th frame of a DCD (topology from a PDB)
  nnforce label traj.xyz --teacher ani1x -o ani.npz             ANI-1x (torchani's NeuroChem files) as the teacher
  nnforce label mol.xyz --md-frames 2000 --temperature 500 -o md.npz
                                                               run GFN2-xTB Langevin MD from mol.xyz and label it
requires: tblite (pip install tblite) for GFN2-xTB; set OMP_NUM_THREADS=1 for small molecules."""


def register(subparsers):
    """Add ``nnforce label`` to ``subparsers``."""
    parser = add_command(subparsers, "label", "label trajectory frames with GFN2-xTB (tblite) or a teacher model",
                         "Compute reference energies and forces for the frames of a trajectory and write an nnforce "
                         "dataset (.npz: positions nm, energies kJ/mol, forces kJ/mol/nm).", EXAMPLES)
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
    """Run ``nnforce label`` with parsed ``args``; returns 0."""
    from ..data.label import load_teacher, read_frames, teacher_label, xtb_label, xtb_md

    frames = read_frames(args.trajectory, args.top, args.stride)
    if args.md_frames > 0:
        z, x, _, _ = frames.frame(0)
        labelled = xtb_md(z, x, args.md_frames, interval=args.interval, temperature_K=args.temperature,
                          timestep_fs=args.timestep_fs, method=args.method, seed=args.seed, progress=True)
    elif args.teacher:
        labelled = teacher_label(frames, load_teacher(args.teacher))
    else:
        labelled = xtb_label(frames, method=args.method, charge=args.charge, progress=True)
    labelled.save(args.output)
    print(f"wrote {len(labelled)} labelled frames to {args.output}")
    return 0
