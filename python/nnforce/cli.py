"""The ``nnforce`` command: one sub-command per stage of the flow.

Each stage lives in its own module and exposes ``register(subparsers)``, which adds its sub-command(s)
with ``set_defaults(func=...)``; ``func(args)`` returns the exit code. Modules are imported only when the
command line needs them, so ``nnforce --help`` stays fast.
"""
import argparse
import importlib
import sys

# sub-command -> module that registers it
COMMANDS = {
    "train": "nnforce.train.cli",
    "export": "nnforce.export",
    "label": "nnforce.data.label",
    "simulate": "nnforce.simulate",
    "analyze": "nnforce.analysis.cli",
    "demo": "nnforce.demo",
}

EPILOG = """examples:
  nnforce train config.yaml                      train a model from a YAML config
  nnforce export run/best.ckpt -o model.pt       script, validate and write a TorchScript model
  nnforce simulate mol.pdb model.pt --steps 10000 --platform CPU
  nnforce analyze traj.dcd --top mol.pdb --features phi_psi --reduce tica:lag=10 --cluster kmeans:k=50
  nnforce demo                                   the whole flow on alanine dipeptide
run `nnforce COMMAND --help` for each command's options."""


def build_parser(only=None):
    parser = argparse.ArgumentParser(
        prog="nnforce", description="Machine-learned potentials in OpenMM: train, export, simulate, analyze.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module_name in COMMANDS.items():
        if only is not None and command != only:
            subparsers.add_parser(command, help=f"(run `nnforce {command} --help`)")
            continue
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name is not None and (module_name == error.name or module_name.startswith(error.name + ".")):
                continue  # that stage is not part of this installation
            raise
        module.register(subparsers)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if command is None else 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as error:
        print(f"nnforce {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
