"""Where does the ethanol error come from? Short controlled training runs of the ANI-style model, one change each.

Every variant trains on the same 950 frames of the 500 K GFN2-xTB training trajectory (bench/train_accuracy.py)
under the same CPU-time budget (``time.process_time`` of this process, one torch thread) and is scored on the
time-blocked validation set (the last 50 frames of the training trajectory). The independent test trajectories
are not looked at here: the settings chosen from this table are then benched on them by train_accuracy.py.
Results go to .cache/bench_train/ablation.json; the table is written into bench/results/train_accuracy.md by
``python bench/train_accuracy.py --part report``.

    python bench/train_ablation.py                      (all variants, 120 CPU-s each)
    python bench/train_ablation.py --cpu-s 60 base bs4  (some variants, another budget)
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, HERE)
os.environ.setdefault("OMP_NUM_THREADS", "1")
RESULTS = os.path.join(ROOT, ".cache", "bench_train", "ablation.json")

# The previous bench's settings; every variant changes one thing (or states what it combines).
BASE_SPEC = {"type": "ani", "elements": [1, 6, 8], "hidden": [128, 64], "seed": 0}
BASE_TRAIN = {"epochs": 100000, "batch_size": 16, "lr": 1e-3, "schedule": "plateau", "plateau_patience": 8,
              "plateau_factor": 0.5, "min_lr": 1e-5, "energy_weight": 1.0, "force_weight": 10.0,
              "early_stopping_patience": 100000, "seed": 0, "threads": 1}
COS = {"schedule": "budget_cosine"}
VARIANTS = {  # name: (what changed, spec changes, training changes, float64)
    "base": ("previous bench: lr 1e-3, plateau, batch 16, force weight 10, [128, 64], float32", {}, {}, False),
    "cos1e-3": ("budget cosine schedule, lr 1e-3 -> 1e-5", {}, COS, False),
    "cos3e-3": ("budget cosine, lr 3e-3", {}, dict(COS, lr=3e-3), False),
    "cos1e-2": ("budget cosine, lr 1e-2", {}, dict(COS, lr=1e-2), False),
    "fw1": ("budget cosine lr 1e-3, force weight 1", {}, dict(COS, force_weight=1.0), False),
    "fw100": ("budget cosine lr 1e-3, force weight 100", {}, dict(COS, force_weight=100.0), False),
    "bs4": ("budget cosine lr 1e-3, batch 4", {}, dict(COS, batch_size=4), False),
    "bs64": ("budget cosine lr 1e-3, batch 64", {}, dict(COS, batch_size=64), False),
    "f64": ("budget cosine lr 1e-3, float64", {}, COS, True),
    "h64": ("budget cosine lr 1e-3, hidden [64, 32]", {"hidden": [64, 32]}, COS, False),
    "h256": ("budget cosine lr 1e-3, hidden [256, 128, 64]", {"hidden": [256, 128, 64]}, COS, False),
    "acut45": ("budget cosine lr 1e-3, angular cutoff 0.45 nm (shells to 0.40 nm)",
               {"angular_cutoff": 0.45, "angular_shifts": [0.09 + 0.0775 * k for k in range(5)]}, COS, False),
}


def run_variant(name, cpu_s, extra_train=None, extra_spec=None):
    """Train one variant under ``cpu_s`` CPU seconds; returns its validation metrics and what it cost."""
    import torch

    from nnforce.train import TrainConfig, build_model, evaluate, fit
    from train_accuracy import ethanol_dataset

    torch.set_num_threads(1)
    what, spec_changes, train_changes, f64 = VARIANTS[name] if name in VARIANTS else (name, {}, {}, False)
    spec = dict(BASE_SPEC, **spec_changes, **(extra_spec or {}))
    values = dict(BASE_TRAIN, **train_changes, **(extra_train or {}))
    values["max_cpu_s"] = cpu_s
    data = ethanol_dataset("train")
    train, val = data.subset(list(range(950)), name="train"), data.subset(list(range(950, 1000)), name="val")
    model = build_model(spec)
    if f64:
        model = model.double()
    load, wall, cpu = os.getloadavg()[0], time.time(), time.process_time()
    result = fit(model, train, val, TrainConfig(**values), model_spec=spec)
    cpu_used, wall_used = time.process_time() - cpu, time.time() - wall
    m = evaluate(result.model, val)
    return {"name": name, "what": what, "spec": spec, "train": values, "float64": f64,
            "val_energy_mae_kcal_mol": m["energy_mae_kcal_mol"], "val_force_mae_kcal_mol_a": m["force_mae_kcal_mol_a"],
            "epochs": len(result.history), "best_epoch": result.best_epoch, "cpu_s": cpu_used, "wall_s": wall_used,
            "load": load, "cpu_budget_s": cpu_s}


def load_results():
    if not os.path.exists(RESULTS):
        return {}
    with open(RESULTS) as handle:
        return json.load(handle)


def table_lines(results):
    """Markdown rows of the ablation (in the order run)."""
    lines = ["| variant | what changed | val energy MAE (kcal/mol) | val force MAE (kcal/mol/A) | epochs (best) | "
             "CPU s (budget) | wall s | load |", "|---|---|---|---|---|---|---|---|"]
    for r in results.values():
        lines.append(f"| {r['name']} | {r['what']} | {r['val_energy_mae_kcal_mol']:.3f} | "
                     f"{r['val_force_mae_kcal_mol_a']:.3f} | {r['epochs']} ({r['best_epoch']}) | "
                     f"{r['cpu_s']:.0f} ({r['cpu_budget_s']:.0f}) | {r['wall_s']:.0f} | {r['load']:.1f} |")
    return lines


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variants", nargs="*", help=f"default: all of {list(VARIANTS)}")
    parser.add_argument("--cpu-s", type=float, default=120.0, help="CPU-time budget per variant")
    parser.add_argument("--train", default="{}", help="JSON TrainConfig changes for a named extra variant")
    parser.add_argument("--spec", default="{}", help="JSON model-spec changes for a named extra variant")
    parser.add_argument("--what", help="description of an extra variant (its name is then the first argument)")
    args = parser.parse_args()
    from nnforce._io import atomic_write

    for name in args.variants or list(VARIANTS):
        if args.what:
            VARIANTS[name] = (args.what, json.loads(args.spec), json.loads(args.train), False)
        print("==", name, flush=True)
        row = run_variant(name, args.cpu_s)
        results = load_results()
        results[name] = row
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with atomic_write(RESULTS, "w") as handle:
            json.dump(results, handle, indent=1)
        print("\n".join(table_lines({name: row})), flush=True)
