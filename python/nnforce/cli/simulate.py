"""``nnforce simulate``: minimise, equilibrate and run MD with an exported model (NNForce), pure ML or ML/MM."""
from . import add_command

EXAMPLES = """examples:
  nnforce simulate mol.pdb ani1x --steps 2000     the built-in ANI-1x model (H, C, N, O): no training, no export
  nnforce simulate mol.pdb model.pt --steps 20000 --platform CPU
  nnforce simulate mol.pdb ani1x.pt --integrator verlet --timestep-fs 0.25 --steps 4000   (NVE, prints drift)
  nnforce simulate solvated.pdb model.pt --forcefield amber14-all.xml amber14/tip3p.xml --ml-atoms "resname LIG"
  nnforce simulate mol.pdb model.pt -o run1 --checkpoint-interval 5000 --resume   (continue a stopped run)
  nnforce simulate mol.pdb model.pt --replicas 16 --starts train.dcd -o ens   (16 replicas as Dask tasks, local)
  nnforce simulate mol.pdb model.pt --replicas 64 --scheduler tcp://10.0.0.5:8786 -o /shared/ens
  nnforce simulate mol.pdb --potential mace --model-path my.model --model-precision single   (the field's models)
  nnforce simulate mol.pdb --potential ani1x --steps 1000       (ANI-1x from the torchani wheel; no model file)"""


def register(subparsers):
    """Add ``nnforce simulate`` to ``subparsers``."""
    parser = add_command(subparsers, "simulate", "run MD with a TorchScript model (NNForce) in OpenMM",
                         "Minimise, equilibrate and run molecular dynamics with an exported model.", EXAMPLES)
    parser.add_argument("structure", help="PDB or PDBx/mmCIF file (its CRYST1 box makes the system periodic)")
    parser.add_argument("model", nargs="?", default=None,
                        help="exported model (.pt TorchScript or .pt2 package), or a built-in model by name: ani1x; "
                             "or leave it out and use --potential")
    parser.add_argument("--potential", default=None,
                        help="a model family of nnforce.potentials (openmm-ml's names): mace, ani1x, ani2x, "
                             "nnforce-ani1x, torchmdnet, nequip, allegro, nnforce; see docs/potentials.md")
    parser.add_argument("--model-path", default=None, help="the --potential's model file (modelPath)")
    parser.add_argument("-o", "--output-dir", default="simulation", help="output folder (default: simulation)")
    parser.add_argument("--steps", type=int, default=10000, help="production steps (default 10000)")
    parser.add_argument("--equilibration-steps", type=int, default=None,
                        help="steps at the target temperature (strong Langevin friction) before production; "
                             "default: 0.5 ps worth")
    parser.add_argument("--no-minimize", action="store_true", help="skip the energy minimisation")
    parser.add_argument("--integrator", default="langevin-middle", help="langevin-middle (default) or verlet (NVE)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--friction", type=float, default=1.0, help="Langevin friction, 1/ps (default 1)")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="time step in fs (default 0.5)")
    parser.add_argument("--platform", default=None, help="Reference, CPU, CUDA or OpenCL (default: fastest)")
    parser.add_argument("--precision", default=None, help="single, mixed or double (CUDA/OpenCL)")
    parser.add_argument("--model-precision", default=None, choices=("single", "double"),
                        help="precision the model runs in (default: double on Reference, single otherwise)")
    parser.add_argument("--seed", type=int, default=1, help="velocities and Langevin noise (default 1)")
    parser.add_argument("--report-interval", type=int, default=None,
                        help="steps between energy CSV rows (default: steps/200, at least 1)")
    parser.add_argument("--trajectory", default="trajectory.dcd", help="trajectory file (.dcd/.xtc) or 'none'")
    parser.add_argument("--trajectory-interval", type=int, default=None,
                        help="steps between frames (default: steps/100, at least 1)")
    parser.add_argument("--checkpoint-interval", type=int, default=10000, help="steps between checkpoints (0: end)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--forcefield", nargs="+", default=None, help="MM force field XMLs for ML/MM")
    parser.add_argument("--ml-atoms", default=None, help='ML/MM region: "0-21,30" or an mdtraj selection')
    parser.add_argument("--lambda-ml", type=float, default=None, help="ML/MM coupling (default: full ML)")
    parser.add_argument("--constraints", default="none", choices=("none", "hbonds"), help="MM constraints (ML/MM)")
    parser.add_argument("--mm-cutoff", type=float, default=1.0, help="MM nonbonded cutoff, nm (ML/MM; default 1.0)")
    parser.add_argument("--neighbor-cutoff", type=float, default=None, help="NNForce neighbor list cutoff, nm")
    parser.add_argument("--neighbor-skin", type=float, default=0.0, help="neighbor list skin, nm")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the model (default: 1 per 2000 model atoms, at least 1; "
                             "see bench/results/threads.md)")
    parser.add_argument("--uncertainty-threshold", type=float, default=None,
                        help="committee models: flag (or stop at) frames whose energy spread exceeds this, kJ/mol")
    parser.add_argument("--uncertainty-action", default="flag", choices=("flag", "stop"),
                        help="past --uncertainty-threshold: flag the CSV row (default) or stop the run")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    group = parser.add_argument_group(
        "ensembles", "--replicas R runs R replicas, batched in one Context per Dask task, one trajectory file per "
        "replica (replica_0000.dcd ...), per-replica checkpoints; Langevin, pure ML only")
    group.add_argument("--replicas", type=int, default=None, help="number of replicas R (>= 1)")
    group.add_argument("--scheduler", default=None,
                       help="address of a running Dask scheduler (default: a local cluster); the output folder "
                            "must be reachable by every worker")
    group.add_argument("--workers", type=int, default=None, help="local cluster worker processes (default: CPUs)")
    group.add_argument("--batch-size", type=int, default=None, help="replicas per task (default: R / workers)")
    group.add_argument("--starts", nargs="+", default=None,
                       help="trajectory or PDB files of the molecule to pick starting structures from (clustered)")
    group.add_argument("--start-clusters", type=int, default=None, help="clusters for picking starts (default R)")
    group.add_argument("--connect-timeout", type=float, default=10.0, help="seconds to wait for the scheduler")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``nnforce simulate`` with parsed ``args``; returns 0."""
    import os
    import sys

    from ..simulate import SimulationConfig, run as simulate
    from ..simulate.config import short_run_defaults
    from ..simulate.system import build_potential_system

    if (args.model is None) == (args.potential is None):
        raise ValueError("give a model file, or --potential NAME [--model-path FILE], not both")
    if args.model_path is not None and args.potential is None:
        raise ValueError("--model-path goes with --potential NAME")
    if args.replicas is not None:
        if args.potential is not None:
            raise ValueError("--replicas runs a model file or a built-in model, not --potential")
        return _run_ensemble(args)
    defaults = short_run_defaults(args.steps, args.timestep_fs, args.output_dir, args.resume)
    chosen = []
    for name in ("equilibration_steps", "trajectory_interval", "report_interval"):
        if getattr(args, name) is None:
            setattr(args, name, defaults[name])
            chosen.append(f"{name.replace('_', ' ')} {defaults[name]}")
    if chosen:
        print(f"nnforce simulate: for {args.steps} steps: {', '.join(chosen)} (set them with "
              "--equilibration-steps, --trajectory-interval, --report-interval)", file=sys.stderr)
    for flag, interval, what in (("--report-interval", args.report_interval, "energies.csv gets no row"),
                                 ("--trajectory-interval", args.trajectory_interval, "the trajectory gets no frame")):
        if isinstance(interval, int) and interval > args.steps + (args.equilibration_steps or 0) > 0:
            print(f"nnforce simulate: warning: {flag} {interval} is longer than the run ({args.steps} steps"
                  f"{f' + {args.equilibration_steps} of equilibration' if args.equilibration_steps else ''}): {what}; "
                  f"give {flag} {max(1, args.steps // 10)} or less", file=sys.stderr)
    config = SimulationConfig(
        model=args.model if args.potential is None else f"{args.potential}:{args.model_path}", pdb=args.structure, output_dir=args.output_dir, steps=args.steps,
        equilibration_steps=args.equilibration_steps, minimize=not args.no_minimize, integrator=args.integrator,
        temperature_k=args.temperature, friction_per_ps=args.friction, timestep_fs=args.timestep_fs,
        platform=args.platform, precision=args.precision, model_precision=args.model_precision, seed=args.seed,
        report_interval=args.report_interval,
        trajectory=None if args.trajectory.lower() == "none" else args.trajectory,
        trajectory_interval=args.trajectory_interval, checkpoint_interval=args.checkpoint_interval,
        resume=args.resume, progress=not args.no_progress, forcefield=args.forcefield, ml_atoms=args.ml_atoms,
        lambda_ml=args.lambda_ml, constraints=args.constraints, mm_cutoff_nm=args.mm_cutoff,
        neighbor_cutoff_nm=args.neighbor_cutoff, neighbor_skin_nm=args.neighbor_skin, threads=args.threads,
        uncertainty_threshold_kj_mol=args.uncertainty_threshold, uncertainty_action=args.uncertainty_action)
    system = None if args.potential is None else build_potential_system(config, args.potential, args.model_path,
                                                                         args.model_precision)
    result = simulate(config, system=system)
    print(f"{result['final_step']} steps ({result['time_ps']:.3f} ps) on {result['platform']}: "
          f"{result['ns_per_day']:.3g} ns/day; final potential {result['final_potential_kj_mol']:.4f} kJ/mol")
    if result["temperature_mean_k"] is not None:
        print(f"mean temperature {result['temperature_mean_k']:.1f} K")
    if result.get("temperature_warning"):
        print(f"nnforce simulate: warning: {result['temperature_warning']}", file=sys.stderr)
    if result["energy_drift_kj_mol_ps_atom"] is not None:
        print(f"NVE energy drift {result['energy_drift_kj_mol_ps_atom']:.3e} kJ/mol/ps per atom")
    if result.get("uncertainty_max_kj_mol") is not None:
        print(f"committee uncertainty: max {result['uncertainty_max_kj_mol']:.4g} kJ/mol, "
              f"{result['flagged_frames']} frame(s) flagged"
              + (f"; stopped at step {result['stopped_by_uncertainty_at_step']}"
                 if result["stopped_by_uncertainty_at_step"] is not None else ""))
    trajectory = os.path.basename(result["trajectory"]) if result["trajectory"] else "(no trajectory)"
    print(f"outputs in {config.output_dir}: {os.path.basename(result['energy_csv'])}, {trajectory}, "
          f"{os.path.basename(result['checkpoint'])}, final.pdb, result.json")
    return 0


def _run_ensemble(args):
    """``nnforce simulate --replicas R``: the ensemble on Dask (see :mod:`nnforce.simulate.ensemble`)."""
    import os

    from ..simulate.config import short_run_defaults
    from ..simulate.ensemble import EnsembleConfig, run_ensemble

    if args.trajectory_interval is None:  # as for one simulation: about as many frames per replica
        args.trajectory_interval = short_run_defaults(args.steps, args.timestep_fs)["trajectory_interval"]

    if args.forcefield is not None or args.integrator.lower() not in ("langevin", "langevin-middle"):
        raise ValueError("--replicas runs pure-ML Langevin dynamics: leave out --forcefield/--ml-atoms and --integrator")
    trajectory = "trajectory.dcd" if args.trajectory.lower() == "none" else args.trajectory
    config = EnsembleConfig(
        model=args.model, pdb=args.structure, replicas=args.replicas, output_dir=args.output_dir, steps=args.steps,
        timestep_fs=args.timestep_fs, temperature_k=args.temperature, friction_per_ps=args.friction, seed=args.seed,
        trajectory_interval=args.trajectory_interval,
        checkpoint_interval=-(-(args.checkpoint_interval or args.steps) // args.trajectory_interval) * args.trajectory_interval,
        platform=args.platform or "CPU", model_precision=args.model_precision, neighbor_cutoff_nm=args.neighbor_cutoff,
        neighbor_skin_nm=args.neighbor_skin, minimize=not args.no_minimize,
        suffix=os.path.splitext(trajectory)[1].lower() or ".dcd", starts=args.starts,
        start_clusters=args.start_clusters, scheduler=args.scheduler, workers=args.workers,
        batch_size=args.batch_size, threads=args.threads or 1, connect_timeout_s=args.connect_timeout,
        resume=args.resume, progress=not args.no_progress)
    summary = run_ensemble(config)  # ConnectionError, DiskFullError: OSErrors, reported on one line by the CLI
    print(f"{summary['replicas']} replicas x {summary['steps']} steps in {summary['batches']} tasks "
          f"({summary['wall_s']:.1f} s): {summary['frames_per_replica']} frames each in {config.output_dir}/"
          f"replica_*{config.suffix}")
    return 0
