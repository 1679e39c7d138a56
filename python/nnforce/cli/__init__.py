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
    "learn": "nnforce.cli.learn",
}

EPILOG = """Every failure ends with one line `nnforce COMMAND: error: ...` and exit status 2; add --debug (anywhere) for
the Python traceback.

examples:
  nnforce train config.yaml                      train a model from a YAML config
  nnforce export run/best.ckpt -o model.pt       script, validate and write a TorchScript model
  nnforce simulate mol.pdb ani1x --steps 2000    MD with the built-in ANI-1x model (H, C, N, O), no training
  nnforce simulate mol.pdb model.pt --steps 10000 --platform CPU
  nnforce analyze traj.dcd --top mol.pdb --features phi_psi --reduce tica:lag=10 --cluster kmeans:k=50
  nnforce demo                                   the whole flow on alanine dipeptide
  nnforce learn al.yaml                          active learning with a committee
run `nnforce COMMAND --help` for each command's options."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``nnforce simulate: error: ... (see `nnforce simulate --help`)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


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
    parser = _Parser(
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
    argv, debug = _take_debug_flag(argv)
    command = argv[0] if argv and argv[0] in COMMANDS else None
    parser = build_parser(only=command)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if command is None else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"nnforce {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # every failure ends as one line; --debug shows the traceback
        if debug:
            raise
        expected = is_expected_failure(error)
        print(f"nnforce {args.command}: {'error' if expected else 'internal error'}: {one_line(error)}", file=sys.stderr)
        if not expected:
            print(f"nnforce {args.command}: this looks like a bug in nnforce: run again with --debug and report the "
                  "traceback", file=sys.stderr)
        return 2 if expected else 1


def _take_debug_flag(argv):
    """Remove ``--debug`` from anywhere before a ``--`` (so it works before or after the command)."""
    end = argv.index("--") if "--" in argv else len(argv)
    debug = "--debug" in argv[:end]
    return [a for i, a in enumerate(argv) if not (i < end and a == "--debug")], debug


def is_expected_failure(error):
    """Whether ``error`` is a failure a user can cause and fix (bad input, a file problem, a model that refuses),
    as opposed to a bug in nnforce.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    bool

    Examples
    --------
    >>> is_expected_failure(FileNotFoundError("model.pt")), is_expected_failure(TypeError("oops"))
    (True, False)
    """
    if isinstance(error, (ValueError, OSError, MemoryError)):
        return True
    openmm = sys.modules.get("openmm")
    return openmm is not None and isinstance(error, openmm.OpenMMException)


def one_line(error):
    """The message of ``error`` on one line: the first line of text, the file name for OS errors, no C++ trace.

    Parameters
    ----------
    error : BaseException

    Returns
    -------
    str

    Examples
    --------
    >>> one_line(PermissionError(13, "Permission denied", "/root/out"))
    "permission denied: '/root/out'"
    """
    if isinstance(error, OSError) and error.strerror and error.filename is not None:
        text = f"{error.strerror[0].lower()}{error.strerror[1:]}: {str(error.filename)!r}"
        if error.filename2 is not None:
            text += f" -> {str(error.filename2)!r}"
        return text
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = " ".join(lines[:1])
    return text if len(text) <= 600 else text[:597] + "..."
