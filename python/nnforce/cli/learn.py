"""``nnforce learn CONFIG``: the active-learning loop (committee MD -> uncertain frames -> labels -> retrain)."""
import argparse

EXAMPLES = """examples:
  nnforce learn al.yaml                 run (or resume) the loop described in al.yaml
  nnforce learn al.yaml --rounds 5      override the number of rounds

al.yaml:
  data: ethanol_300K.npz        # initial labelled frames; the first starts the MD
  test: ethanol_test.npz        # independent test set (optional)
  label: xtb                    # or a teacher TorchScript model file
  output: al
  rounds: 3
  members: 3
  explore: {temperature_k: 500, time_ps: 5}
  select: {max_frames: 50}"""


def register(subparsers):
    """Add ``nnforce learn`` to ``subparsers``."""
    parser = subparsers.add_parser(
        "learn", help="active learning: committee MD, label uncertain frames, retrain",
        description="Run (or resume) an active-learning loop described by a YAML file.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="YAML file (see nnforce.train.learn.LearnConfig)")
    parser.add_argument("--rounds", type=int, default=None, help="override the number of rounds")
    parser.add_argument("-o", "--output", default=None, help="override the output folder")
    parser.set_defaults(func=run)
    return parser


def run(args):
    """Run ``nnforce learn`` with parsed ``args``; returns 0."""
    import dataclasses

    from ..train.learn import LearnConfig, learn

    config = LearnConfig.from_yaml(args.config)
    if args.rounds is not None or args.output is not None:
        config = dataclasses.replace(config, **{k: v for k, v in (("rounds", args.rounds), ("output", args.output))
                                                if v is not None})
    result = learn(config)
    print(f"{len(result['rounds'])} round(s) in {result['output']}: rounds.md, learning_curve.png, log.jsonl")
    return 0
