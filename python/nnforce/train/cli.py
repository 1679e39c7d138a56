"""``nnforce train``: train a model from a YAML config or flags, evaluate on the held-out test split, optionally export."""
import argparse
import json
import os

from .._io import atomic_write

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

writes: OUTPUT/best.ckpt, last.ckpt, history.csv, tensorboard/, metrics.json (test metrics, kcal/mol and meV)"""


def register(subparsers):
    parser = subparsers.add_parser(
        "train", help="train a model on labelled frames (YAML config or flags)",
        description="Train an ANI-style, SchNet-style, pair or ANIEncoder model with early stopping on a "
                    "validation split and report metrics on a test split that training never sees.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    parser.add_argument("--schedule", choices=["plateau", "cosine", "none"])
    parser.add_argument("--force-weight", type=float)
    parser.add_argument("--energy-weight", type=float)
    parser.add_argument("--patience", type=int, help="early-stopping patience in epochs")
    parser.add_argument("--max-time", type=float, help="stop training after this many seconds")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--resume", help="last.ckpt of an interrupted run")
    parser.add_argument("--export", help="also export the best model to this TorchScript file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def _resolve(args):
    from .config import load_yaml

    values = load_yaml(args.config) if args.config else {}
    data = dict(values.get("data") or {})
    if isinstance(values.get("data"), str):
        data = {"path": values["data"]}
    if args.data:
        data["path"] = args.data
    if args.energy_unit:
        data["energy_unit"] = args.energy_unit
    if args.length_unit:
        data["length_unit"] = args.length_unit
    if "path" not in data:
        raise ValueError("no data: give --data PATH or `data: {path: ...}` in the config")
    model = dict(values.get("model") or {})
    if args.model:
        model["type"] = args.model
    model.setdefault("type", "schnet")
    train = dict(values.get("train") or {})
    for flag, key in (("epochs", "epochs"), ("batch_size", "batch_size"), ("lr", "lr"), ("optimizer", "optimizer"),
                      ("weight_decay", "weight_decay"), ("schedule", "schedule"), ("force_weight", "force_weight"),
                      ("energy_weight", "energy_weight"), ("patience", "early_stopping_patience"),
                      ("max_time", "max_time_s"), ("seed", "seed")):
        value = getattr(args, flag)
        if value is not None:
            train[key] = value
    split = values.get("split", [0.8, 0.1, 0.1])
    if args.split:
        split = [float(s) if "." in s else int(s) for s in args.split.split(",")]
    output = args.output or values.get("output") or "run"
    export = args.export or values.get("export")
    return data, model, train, split, output, export


def run(args):
    from ..data import read_dataset, split as split_data
    from .config import TrainConfig, build_model
    from .fit import evaluate, fit

    data_spec, model_spec, train_values, split, output, export = _resolve(args)
    path = data_spec.pop("path")
    dataset = read_dataset(path, **data_spec)
    if len(split) != 3:
        raise ValueError(f"split needs three sizes (train, validation, test), got {split}")
    seed = int(train_values.get("seed", 0))
    train_set, val_set, test_set = split_data(dataset, split, seed=seed)
    model_spec.setdefault("elements", dataset.elements)
    if "force_weight" not in train_values and dataset.has_forces:
        train_values["force_weight"] = 10.0
    train_values["log_dir"] = output
    train_values.setdefault("progress", not args.no_progress)
    config = TrainConfig.from_dict(train_values)
    model = build_model(model_spec)
    metadata = {"data_hash": dataset.content_hash(), "data_path": os.path.abspath(path),
                "split": list(split), "n_train": len(train_set), "n_validation": len(val_set),
                "n_test": len(test_set)}
    result = fit(model, train_set, val_set, config, resume=args.resume, model_spec=model_spec, metadata=metadata)
    metrics = evaluate(result.model, test_set)
    metadata["test_metrics"] = metrics
    with atomic_write(os.path.join(output, "metrics.json"), "w") as handle:
        json.dump({"test": metrics, "best_epoch": result.best_epoch, "epochs": len(result.history),
                   "stopped_early": result.stopped_early}, handle, indent=1)
    line = f"test energy MAE {metrics['energy_mae_kcal_mol']:.3f} kcal/mol ({metrics['energy_mae_mev']:.1f} meV)"
    if "force_mae_kcal_mol_a" in metrics:
        line += f", force MAE {metrics['force_mae_kcal_mol_a']:.3f} kcal/mol/A"
    print(line)
    if export:
        from ..export import export_model

        export_model(result.model, export, {**metadata, "model_spec": model_spec},
                     structure=test_set.frame(0)[:2])
        print(f"wrote {export}")
    return 0
