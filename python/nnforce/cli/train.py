"""``nnforce train``: train a model from a YAML config or flags, test it on a held-out split, optionally export."""
from . import add_command

EXAMPLES = """examples:
  nnforce train config.yaml
  nnforce train --data ethanol.npz --model schnet --split 950,50,1000 --force-weight 10 --epochs 300 -o run/
  nnforce train --data md17_ethanol.npz --energy-unit kcal/mol --length-unit angstrom --model ani -o run/
  nnforce train run/config.yaml --resume run/last.ckpt      continue an interrupted run

config.yaml:
  data: {path: ethanol.npz, energy_unit: kcal/mol, length_unit: angstrom}   # units only for non-native files
  split: [950, 50, 1000]                                   # train / validation / test (counts or fractions)
  model: {type: schnet, elements: [1, 6, 8], features: 64, interactions: 3, cutoff: 0.5}
  train: {epochs: 300, batch_size: 16, lr: 0.001, force_weight: 10, schedule: plateau}
  output: run/                                             # checkpoints, history.csv, tensorboard/, metrics.json
  export: run/model.pt                                     # optional: script + check + write the best model

writes: OUTPUT/best.ckpt, last.ckpt, history.csv, tensorboard/, metrics.json (test metrics in kJ/mol, also kcal/mol and meV)"""


def register(subparsers):
    """Add ``nnforce train`` to ``subparsers``."""
    parser = add_command(subparsers, "train", "train a model on labelled frames (YAML config or flags)",
                         "Train an ANI-style, SchNet-style, pair or ANIEncoder model with early stopping on a "
                         "validation split and report metrics on a test split that training never sees.", EXAMPLES)
    parser.add_argument("config", nargs="?", help="YAML config (flags below override it)")
    parser.add_argument("--data", help="dataset: native .npz, MD17 .npz, .xyz, .db or ANI .h5")
    parser.add_argument("--energy-unit", help="energy unit of a non-native file (eV, kcal/mol, kJ/mol, hartree)")
    parser.add_argument("--length-unit", help="length unit of a non-native file (angstrom, nm, bohr)")
    parser.add_argument("--model", choices=["ani", "schnet", "pair", "aniencoder"], help="model type")
    parser.add_argument("--split", help="train,validation,test sizes: counts (950,50,1000) or fractions")
    parser.add_argument("-o", "--output", help="run directory")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--optimizer", choices=["adam", "adamw", "sgd"])
    parser.add_argument("--weight-decay", type=float)
    parser.add_argument("--schedule", choices=["plateau", "cosine", "budget_cosine", "none"],
                        help="budget_cosine anneals lr to min over the epochs or the --max-time/--max-cpu budget")
    parser.add_argument("--force-weight", type=float)
    parser.add_argument("--energy-weight", type=float)
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    parser.add_argument("--max-time", type=float, help="stop training after this many seconds")
    parser.add_argument("--max-cpu", type=float, help="stop training after the process used this many CPU seconds")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", help="last.ckpt of an interrupted run")
    parser.add_argument("--export", help="also export the best model to this TorchScript file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args):
    """Run ``nnforce train`` with parsed ``args``; returns 0."""
    from ..train.config import load_yaml
    from ..train.pipeline import TRAIN_FLAGS, merge_run_config, run_training

    spec = merge_run_config(load_yaml(args.config) if args.config else {}, data=args.data,
                            energy_unit=args.energy_unit, length_unit=args.length_unit, model=args.model,
                            split=args.split, output=args.output, export=args.export,
                            train={key: getattr(args, flag) for flag, key in TRAIN_FLAGS})
    outcome = run_training(*spec, resume=args.resume, progress=not args.no_progress)
    metrics = outcome["metrics"]
    line = (f"test energy MAE {metrics['energy_mae_kj_mol']:.3f} kJ/mol "
            f"(= {metrics['energy_mae_kcal_mol']:.3f} kcal/mol, for comparison with the literature)")
    if "force_mae_kj_mol_nm" in metrics:
        line += f", force MAE {metrics['force_mae_kj_mol_nm']:.2f} kJ/mol/nm"
    print(line)
    if outcome["export"]:
        print(f"wrote {outcome['export']}")
    return 0
