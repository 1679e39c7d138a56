"""The ``nnforce`` command: one module per sub-command in this package.

Each module has ``register(subparsers)``, which adds its sub-command with ``set_defaults(func=run)``, and
``run(args)``, which calls the library and returns the exit code; nothing else lives there. Modules are imported
only when the command line needs them, so ``nnforce --help`` stays fast. ``python -m nnforce.cli`` runs
:func:`main`, as does the ``nnforce`` console script.
"""
import argparse
import importlib
import sys

# sub-command -> module that registers it
COMMANDS = {
    "train": "nnforce.cli.train",
    "export": "nnforce.cli.export",
    "label": "nnforce.cli.label",
    "simulate": "nnforce.cli.simulate",
    "analyze": "nnforce.cli.analyze",
    "demo": "nnforce.cli.demo",
}

EPILOG = """examples:
  nnforce train config.yaml                      train a model from a YAML config
  nnforce export run/best.ckpt -o model.pt       script, validate and write a TorchScript model
  nnforce simulate mol.pdb model.pt --steps 10000 --platform CPU
  nnforce analyze traj.dcd --top mol.pdb --features phi_psi --reduce tica:lag=10 --cluster kmeans:k=50
  nnforce demo                                   the whole flow on alanine dipeptide
run `nnforce COMMAND --help` for each command's options."""


def add_command(subparsers, name, help, description, examples):
    """Add sub-command ``name`` with its help line, description and examples epilog; returns its parser.

    Examples
    --------
    >>> parser = add_command(argparse.ArgumentParser().add_subparsers(), "x", "h", "d", "examples: ...")

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
    name, help, description, examples : str

    Returns
    -------
    argparse.ArgumentParser
    """
    return subparsers.add_parser(name, help=help, description=description, epilog=examples,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)


def build_parser(only=None):
    """The argument parser with every sub-command (or, with ``only``, that one's full options and the others'
    names).

    Parameters
    ----------
    only : str, optional
        Import and register just this sub-command's module.

    Returns
    -------
    argparse.ArgumentParser

    Examples
    --------
    >>> build_parser(only="export").parse_args(["export", "m.pt", "--info"]).info
    True
    """
    parser = argparse.ArgumentParser(
        prog="nnforce", description="Machine-learned potentials in OpenMM: train, export, simulate, analyze.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command, module_name in COMMANDS.items():
        if only is not None and command != only:
            subparsers.add_parser(command, help=f"(run `nnforce {command} --help`)")
            continue
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv=None):
    """Run the ``nnforce`` command line; returns the exit code (2 for bad input, with the reason on stderr).

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int

    Examples
    --------
    >>> main(["export", "missing.pt", "--info"])  # doctest: +SKIP
    2
    """
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
