"""``nnforce demo``: the whole flow on alanine dipeptide, into one self-contained HTML report."""
from . import add_command

EXAMPLES = """examples:
  nnforce demo                         the full demo into demo-output/ (see docs/demo.md for its measured time)
  nnforce demo --small --out /tmp/d    the fast mode the test runs (a smoke test of the pipeline)
  nnforce demo --seed 3                another seed for sampling, splitting, active learning, MD and bootstrap"""


def register(subparsers):
    """Add ``nnforce demo`` to ``subparsers``."""
    parser = add_command(subparsers, "demo", "the whole flow on alanine dipeptide: distil ANI-1x, sample, compare, report",
                         "Alanine dipeptide in vacuum: amber14 sampling labelled with ANI-1x -> distillation by active "
                         "learning (a committee explores with metadynamics on phi/psi; ANI-1x labels what it disagrees "
                         "on and where the data are thin) -> the student as .pt2 -> metadynamics, then replicas under "
                         "the bias held fixed in one Context -> reweighted phi/psi free energy and basin populations "
                         "against the teacher's reference, MSM (implied timescales, CK test, PCCA+ states shown in 3D) "
                         "-> a self-contained HTML report (OUT/report.html) and OUT/summary.json.", EXAMPLES)
    parser.add_argument("--out", default="demo-output", help="output directory (default demo-output)")
    parser.add_argument("--small", action="store_true", help="fast mode (what the test runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every stage (default 0)")
    parser.set_defaults(func=run)


def run(args):
    """Run ``nnforce demo`` with parsed ``args``; returns 0."""
    from ..demo import run_demo

    info = run_demo(args.out, small=args.small, seed=args.seed)
    test = info["metrics"]["test"]
    print(f"wrote {info['report']}")
    traj, comparison = info["metrics"]["trajectory_vs_teacher"], info["teacher_comparison"]
    print(f"test energy MAE {test['energy_mae_kj_mol']:.3g} kJ/mol (baseline "
          f"{info['metrics']['baseline']['energy_mae_kj_mol']:.3g}), force MAE {test['force_mae_kj_mol_nm']:.3g} "
          f"kJ/mol/nm; on production frames vs ANI-1x {traj['energy_ratio_to_test']:.2f}x / "
          f"{traj['force_ratio_to_test']:.2f}x the test MAEs; {info['ensemble']['replicas']} replicas, "
          f"{info['analysis']['frames']} frames, MSM active fraction {info['analysis']['msm_active_fraction']:.3f}; "
          + (f"FES vs teacher {comparison['fes_rms_kt']:.2f} kT RMS; " if comparison.get("available")
             else "no teacher reference; ")
          + f"total {info['total_time_s']:.0f} s")
    return 0
