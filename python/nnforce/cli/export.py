"""``nnforce export``: script, check and write a trained model; or print an exported model's metadata."""
from . import add_command

EXAMPLES = """examples:
  nnforce export run/best.ckpt -o ethanol.pt                script, check and write the model of a training run
  nnforce export run/best.ckpt -o ethanol.pt --data data.npz   check on real frames (default: a built-in test molecule)
  nnforce export run/best.ckpt -o ethanol.pt2 --format pt2  compile an AOTInductor package (faster in NNForce)
  nnforce export model.pt --info                            print the metadata of an exported model (.pt or .pt2)"""


def register(subparsers):
    """Add ``nnforce export`` to ``subparsers``."""
    parser = add_command(subparsers, "export", "script, check and write a trained model (TorchScript for NNForce)",
                         "Turn a training checkpoint into a TorchScript model file for NNForce, after checking the "
                         "model contract (finite-difference forces, float32 vs float64, periodic behaviour, element "
                         "coverage). Metadata goes into the file's extra files.", EXAMPLES)
    parser.add_argument("checkpoint", help="best.ckpt/last.ckpt from `nnforce train` (or a model .pt with --info)")
    parser.add_argument("-o", "--output", help="TorchScript file to write")
    parser.add_argument("--data", help="check on the first frame of this dataset (.npz) instead of a test cluster")
    parser.add_argument("--no-check", action="store_true", help="skip the contract checks (not recommended)")
    parser.add_argument("--info", action="store_true", help="print the metadata of an exported model and exit")
    parser.add_argument("--format", choices=["torchscript", "pt2"], default=None,
                        help="torchscript (default; a .pt file) or pt2 (an AOTInductor package compiled with forces "
                             "inside, faster; default when the output ends in .pt2)")
    parser.add_argument("--precision", choices=["double", "single"], default="double",
                        help="precision a .pt2 is compiled in (default double)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="device a .pt2 is compiled for: cpu (NNForce's Reference and CPU platforms, default) or cuda "
                             "(its CUDA platform; needs a CUDA build of torch and a GPU)")
    parser.set_defaults(func=run)


def run(args):
    """Run ``nnforce export`` with parsed ``args``; returns 0."""
    import json

    if args.info:
        from ..contract import read_metadata

        print(json.dumps(read_metadata(args.checkpoint), indent=1, sort_keys=True))
        return 0
    if not args.output:
        raise ValueError("give the output file with -o/--output")
    from ..train.pipeline import export_checkpoint

    fmt = args.format or ("pt2" if args.output.endswith(".pt2") else "torchscript")
    if args.device != "cpu" and fmt != "pt2":
        raise ValueError(f"--device {args.device} applies to --format pt2 only (a TorchScript file runs on any platform)")
    info = export_checkpoint(args.checkpoint, args.output, data=args.data, check=not args.no_check, format=fmt,
                             precision=args.precision, device=args.device)
    print(f"wrote {args.output} ({info['model_class']}, elements {info['elements']}, cutoff {info['cutoff_nm']} nm)")
    for key, value in info.get("checks", {}).items():
        print(f"  check {key}: {value}")
    return 0
