"""``nnforce demo``: the whole flow on alanine dipeptide, into one self-contained HTML report."""
from . import add_command

EXAMPLES = """examples:
  nnforce demo                         the full demo (11-12 minutes on 2 CPU cores) into demo-output/
  nnforce demo --small --out /tmp/d    the fast mode the test runs (1.5-2 minutes)
  nnforce demo --seed 3                another seed for sampling, splitting, training and MD"""


def register(subparsers):
    """Add ``nnforce demo`` to ``subparsers``."""
    parser = add_command(subparsers, "demo", "the whole flow on alanine dipeptide: data, train, export, simulate, analyze, report",
                         "Alanine dipeptide in vacuum: amber14 sampling labelled with ANI-1x -> train a small model -> "
                         "export -> simulate with NNForce -> phi/psi, TICA, clustering -> a self-contained HTML report "
                         "(OUT/report.html). The full mode takes 11-12 minutes on 2 CPU cores.", EXAMPLES)
    parser.add_argument("--out", default="demo-output", help="output directory (default demo-output)")
    parser.add_argument("--small", action="store_true", help="fast mode (1.5-2 minutes; what the test runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every stage (default 0)")
    parser.set_defaults(func=run)


def run(args):
    """Run ``nnforce demo`` with parsed ``args``; returns 0."""
    from ..demo import run_demo

    info = run_demo(args.out, small=args.small, seed=args.seed)
    test = info["metrics"]["test"]
    print(f"wrote {info['report']}")
    print(f"test energy MAE {test['energy_mae_kj_mol']:.3g} kJ/mol (baseline "
          f"{info['metrics']['baseline']['energy_mae_kj_mol']:.3g}), force MAE {test['force_mae_kj_mol_nm']:.3g} "
          f"kJ/mol/nm; {info['analysis']['frames']} trajectory frames; total {info['total_time_s']:.0f} s")
    return 0
