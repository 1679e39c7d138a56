"""``nnforce demo``: the whole flow on alanine dipeptide, into one self-contained HTML report."""
from . import add_command

EXAMPLES = """examples:
  nnforce demo                         the full demo (under 15 minutes on 2 CPU cores) into demo-output/
  nnforce demo --small --out /tmp/d    the fast mode the test runs (about 1.5 minutes)
  nnforce demo --seed 3                another seed for sampling, splitting, training, starts, MD and bootstrap"""


def register(subparsers):
    """Add ``nnforce demo`` to ``subparsers``."""
    parser = add_command(subparsers, "demo", "the whole flow on alanine dipeptide: data, train, export, ensemble, MSM, report",
                         "Alanine dipeptide in vacuum: amber14 sampling labelled with ANI-1x -> train a small model -> "
                         "export -> NNForce replicas seeded across C7eq/beta, alpha_R, C7ax and alpha_L in one Context "
                         "-> TICA, k-means, MSM (implied timescales, CK test, PCCA+ states shown in 3D) -> basin "
                         "populations vs amber14 -> a self-contained HTML report (OUT/report.html) and "
                         "OUT/summary.json. The full mode takes under 15 minutes on 2 CPU cores.", EXAMPLES)
    parser.add_argument("--out", default="demo-output", help="output directory (default demo-output)")
    parser.add_argument("--small", action="store_true", help="fast mode (about 1.5 minutes; what the test runs)")
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
          f"kJ/mol/nm; {info['ensemble']['replicas']} replicas, {info['analysis']['frames']} frames; slowest implied "
          f"timescale {info['analysis']['slowest_timescale_ps']:.3g} ps; total {info['total_time_s']:.0f} s")
    return 0
