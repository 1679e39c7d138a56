"""Training-accuracy benchmark; writes bench/results/train_accuracy.md.

(a) ethanol: GFN2-xTB Langevin MD (tblite + ASE, 0.5 fs steps, a frame every 15 fs): a 1,000-frame 500 K training
    trajectory (seed 0; the first 950 frames train, the last 50 are a time-blocked validation set) and two
    independent test trajectories (seed 1 at 500 K and seed 2 at 700 K, 400 frames each); SchNet-style and
    ANI-style models trained on energies + forces, each limited to 10 minutes, exported to
    bench/results/models/ethanol_<kind>.pt. Goals (500 K test): energy MAE <= 0.3 kcal/mol, force MAE <= 1.0
    kcal/mol/A.
(b) QM9 U0 (qm9pack) with the ANI-style model: learning curve at 1k/10k/50k training molecules, 1,000 validation
    and 5,000 test molecules. Goal: <= 1.5 kcal/mol at 50k.

Each part stores its numbers in .cache/bench_train/*.json, and the markdown is rebuilt from whatever parts
have finished, so the parts can run separately:
    python bench/train_accuracy.py --part ethanol-schnet   (ethanol-ani, qm9-1000, qm9-10000, qm9-50000, report)
    python bench/train_accuracy.py                         (everything, then the report)
"""
import argparse
import json
import os
import platform
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "python"))
os.environ.setdefault("OMP_NUM_THREADS", "1")  # tblite; torch threads are set explicitly below
CACHE = os.path.join(ROOT, ".cache")
PARTS_DIR = os.path.join(CACHE, "bench_train")
RESULT = os.path.join(HERE, "results", "train_accuracy.md")

# Ethanol: training trajectory and two independent test trajectories (other seed; hotter), GFN2-xTB via tblite.
ETHANOL_INTERVAL = 30  # steps of 0.5 fs between kept frames (15 fs)
ETHANOL_TRAJECTORIES = {  # name: (seed, temperature K, frames, equilibration steps)
    "train": (0, 500.0, 1000, 2000),
    "test-500K": (1, 500.0, 400, 1000),
    "test-700K": (2, 700.0, 400, 1000),
}
THREADS = 1  # torch threads: the 2-core machine was shared (C++ builds, other jobs) during the runs
# Training budget: CPU seconds of the training process (time.process_time), what 10 minutes on one idle core give
# less time for evaluation; the fair cap when the machine is shared (a wall cap buys whatever share others leave).
ETHANOL_CPU_S = 570
# Settings chosen from the ablation (bench/train_ablation.py, scored on the time-blocked validation set only).
ETHANOL_SPECS = {
    "schnet": {"type": "schnet", "elements": [1, 6, 8], "features": 64, "interactions": 3, "num_gaussians": 25,
               "cutoff": 0.5, "seed": 0},
    "ani": {"type": "ani", "elements": [1, 6, 8], "hidden": [256, 128, 64], "seed": 0},
}
ETHANOL_TRAIN = {"epochs": 100000, "batch_size": 16, "lr": 3e-3, "schedule": "budget_cosine", "min_lr": 1e-5,
                 "energy_weight": 1.0, "force_weight": 100.0, "early_stopping_patience": 100000}
ETHANOL_FLOAT64 = False  # train in float64 (the exported model runs in the plugin's precision either way)
# QM9 U0 (energies only). CPU-second caps per training-set size; the 50k cap is the run's budget (the issue sets no
# time limit for QM9). Settings chosen from the QM9 ablation below (10k molecules, scored on the validation set).
QM9_CPU_S = {1000: 150, 10000: 450, 50000: 2700}
QM9_SPEC = {"type": "ani", "elements": [1, 6, 7, 8, 9], "hidden": [128, 64], "seed": 0}
QM9_TRAIN = {"epochs": 100000, "batch_size": 32, "lr": 3e-3, "schedule": "budget_cosine", "min_lr": 1e-5,
             "early_stopping_patience": 100000, "eval_batch_size": 512}
# The previous bench's settings (plateau schedule, batch 64 above 1k molecules, AEVs recomputed every batch).
QM9_PREVIOUS_TRAIN = {"epochs": 1000, "batch_size": 64, "lr": 1e-3, "schedule": "plateau", "plateau_patience": 5,
                      "min_lr": 1e-5, "early_stopping_patience": 25, "eval_batch_size": 512, "feature_cache": "off"}
QM9_ABLATION_SIZE, QM9_ABLATION_CPU_S = 10000, 150
QM9_VARIANTS = {  # name: (what changed, spec changes, training settings)
    "previous": ("previous bench: plateau lr 1e-3, batch 64, [128, 64], AEVs recomputed", {}, QM9_PREVIOUS_TRAIN),
    "cache": ("previous + stored AEVs (feature_cache auto)", {}, dict(QM9_PREVIOUS_TRAIN, feature_cache="auto")),
    "cos": ("stored AEVs, budget cosine lr 1e-3, batch 64", {}, dict(QM9_TRAIN, lr=1e-3, batch_size=64)),
    "cos-bs32": ("stored AEVs, budget cosine lr 1e-3, batch 32", {}, dict(QM9_TRAIN, lr=1e-3)),
    "cos-lr3e-3": ("stored AEVs, budget cosine lr 3e-3, batch 32", {}, dict(QM9_TRAIN, lr=3e-3)),
    "cos-h256": ("stored AEVs, budget cosine lr 1e-3, batch 32, [256, 128, 64]", {"hidden": [256, 128, 64]},
                 dict(QM9_TRAIN, lr=1e-3)),
    "cos-lr3e-3-h256": ("stored AEVs, budget cosine lr 3e-3, batch 32, [256, 128, 64]",
                        {"hidden": [256, 128, 64]}, dict(QM9_TRAIN, lr=3e-3)),
    "cos-lr1e-2": ("stored AEVs, budget cosine lr 1e-2, batch 32", {}, dict(QM9_TRAIN, lr=1e-2)),
}
PARTS = ["ethanol-schnet", "ethanol-ani", "qm9-1000", "qm9-10000", "qm9-50000"]


def ethanol_dataset(which="train"):
    """One ethanol GFN2-xTB Langevin trajectory of :data:`ETHANOL_TRAJECTORIES`, cached under .cache/."""
    from nnforce.data import Dataset
    from nnforce.data.label import xtb_md

    seed, temperature, frames, equilibration = ETHANOL_TRAJECTORIES[which]
    path = os.path.join(CACHE, f"ethanol_gfn2_{temperature:g}K_{frames}x{ETHANOL_INTERVAL}_seed{seed}.npz")
    if os.path.exists(path):
        return Dataset.load(path)
    from ase.build import molecule

    atoms = molecule("CH3CH2OH")
    data = xtb_md(atoms.get_atomic_numbers(), atoms.get_positions() / 10.0, frames, interval=ETHANOL_INTERVAL,
                  temperature_K=temperature, timestep_fs=0.5, equilibration_steps=equilibration, seed=seed,
                  progress=True)
    data.name = f"ethanol-gfn2-{which}"
    os.makedirs(CACHE, exist_ok=True)
    data.save(path)
    return data


def _save_part(name, values):
    from nnforce._io import atomic_write

    os.makedirs(PARTS_DIR, exist_ok=True)
    with atomic_write(os.path.join(PARTS_DIR, name + ".json"), "w") as handle:
        json.dump(values, handle, indent=1)


MODELS_DIR = os.path.join(HERE, "results", "models")


def run_ethanol(kind):
    """Train on the first 950 frames of the training trajectory, select on its last 50 (a time block), test on
    the two independent trajectories; export the model to bench/results/models/ethanol_<kind>.pt."""
    import torch

    from nnforce.export import export_model
    from nnforce.train import TrainConfig, build_model, evaluate, fit

    torch.set_num_threads(THREADS)
    data = ethanol_dataset("train")
    train, val = data.subset(list(range(950)), name="train"), data.subset(list(range(950, 1000)), name="val")
    tests = {which: ethanol_dataset(which) for which in ETHANOL_TRAJECTORIES if which != "train"}
    spec = dict(ETHANOL_SPECS[kind])
    config = TrainConfig(**ETHANOL_TRAIN, max_cpu_s=ETHANOL_CPU_S, seed=0, threads=THREADS,
                         log_dir=os.path.join(CACHE, "bench_train", f"ethanol-{kind}"))
    started, cpu_started, load = time.time(), time.process_time(), os.getloadavg()[0]
    model = build_model(spec)
    if ETHANOL_FLOAT64:
        model = model.double()
    result = fit(model, train, val, config, model_spec=spec)
    train_s, train_cpu_s = time.time() - started, time.process_time() - cpu_started
    metrics = {which: evaluate(result.model, test) for which, test in tests.items()}
    metrics["validation"] = evaluate(result.model, val)
    part = {"cpu_s": time.process_time() - cpu_started, "train_cpu_s": train_cpu_s, "model": kind, "spec": spec,
            "float64": ETHANOL_FLOAT64,
            "config": config.to_dict(), "metrics": metrics["test-500K"], "metrics_by_set": metrics,
            "train_s": train_s, "total_s": time.time() - started, "epochs": len(result.history),
            "best_epoch": result.best_epoch, "n_train": len(train), "n_val": len(val),
            "n_test": {k: len(v) for k, v in tests.items()}, "load_start": load, "load_end": os.getloadavg()[0]}
    os.makedirs(MODELS_DIR, exist_ok=True)
    export_model(result.model, os.path.join(MODELS_DIR, f"ethanol_{kind}.pt"),
                 {"model_spec": spec, "data": "ethanol GFN2-xTB (tblite) 500 K Langevin MD, bench/train_accuracy.py",
                  "n_train": len(train), "test_metrics": metrics, "training_epochs": len(result.history),
                  "training_cpu_s": train_cpu_s}, structure=test_frame(tests["test-500K"]))
    _save_part(f"ethanol-{kind}", part)


def test_frame(dataset):
    z, x, _, _ = dataset.frame(0)
    return z, x


def _qm9_sets():
    from nnforce.data import read_qm9, split

    data = read_qm9("U0", cache_dir=CACHE)
    return split(data, (50000, 1000, 5000), seed=0)  # pool, validation, test; the pool is a seeded random sample


def run_qm9(size, pool=None, val=None, test=None):
    """Train the ANI-style model on the first ``size`` molecules of the pool under ``QM9_CPU_S[size]`` CPU-s."""
    import torch

    from nnforce.train import TrainConfig, build_model, evaluate, fit

    torch.set_num_threads(THREADS)
    if pool is None:
        pool, val, test = _qm9_sets()
    train = pool.subset(list(range(size)), name=f"qm9-train-{size}")
    spec = dict(QM9_SPEC)
    config = TrainConfig(**QM9_TRAIN, max_cpu_s=QM9_CPU_S[size], seed=0, threads=THREADS,
                         log_dir=os.path.join(PARTS_DIR, f"qm9-{size}"), tensorboard=False)
    started, cpu_started, load = time.time(), time.process_time(), os.getloadavg()[0]
    result = fit(build_model(spec), train, val, config, model_spec=spec)
    train_s, train_cpu_s = time.time() - started, time.process_time() - cpu_started
    metrics = evaluate(result.model, test)
    _save_part(f"qm9-{size}", {"cpu_s": time.process_time() - cpu_started, "train_cpu_s": train_cpu_s, "size": size,
                               "spec": spec, "config": config.to_dict(), "metrics": metrics,
                               "val_metrics": evaluate(result.model, val), "feature_cache": result.feature_cache,
                               "train_s": train_s, "total_s": time.time() - started, "epochs": len(result.history),
                               "best_epoch": result.best_epoch, "n_val": len(val), "n_test": len(test),
                               "load_start": load, "load_end": os.getloadavg()[0]})


def run_qm9_ablation(names=None):
    """Each QM9 variant on the first 10k pool molecules under the same CPU budget, scored on validation only."""
    import torch

    from nnforce.train import TrainConfig, build_model, evaluate, fit

    torch.set_num_threads(THREADS)
    pool, val, _ = _qm9_sets()
    train = pool.subset(list(range(QM9_ABLATION_SIZE)), name="qm9-ablation")
    path = os.path.join(PARTS_DIR, "qm9_ablation.json")
    results = {}
    if os.path.exists(path):
        with open(path) as handle:
            results = json.load(handle)
    for name in names or list(QM9_VARIANTS):
        what, spec_changes, settings = QM9_VARIANTS[name]
        spec = dict(QM9_SPEC, **spec_changes)
        config = TrainConfig(**settings, max_cpu_s=QM9_ABLATION_CPU_S, seed=0, threads=THREADS)
        started, cpu_started, load = time.time(), time.process_time(), os.getloadavg()[0]
        result = fit(build_model(spec), train, val, config, model_spec=spec)
        cpu_s, wall_s = time.process_time() - cpu_started, time.time() - started
        results[name] = {"what": what, "metrics": evaluate(result.model, val), "epochs": len(result.history),
                         "best_epoch": result.best_epoch, "cpu_s": cpu_s, "wall_s": wall_s, "load": load,
                         "feature_cache": result.feature_cache}
        print(name, results[name]["metrics"]["energy_mae_kcal_mol"], results[name]["epochs"], flush=True)
        _save_part("qm9_ablation", results)


def _load_parts():
    parts = {}
    for name in PARTS:
        path = os.path.join(PARTS_DIR, name + ".json")
        if os.path.exists(path):
            with open(path) as handle:
                parts[name] = json.load(handle)
    return parts


def write_report():
    from nnforce._io import atomic_write

    parts = _load_parts()
    lines = ["# Training accuracy", "",
             f"Generated by `bench/train_accuracy.py` on {platform.machine()} / {THREADS} torch threads, "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Test sets were never used for early stopping.",
             "", "**Budget:** the 2-core machine was shared with other engineers' builds, tests and benchmarks "
             "(load average given per run), so the ethanol runs are capped by the CPU time of the training "
             f"process (`time.process_time`, one torch thread): {ETHANOL_CPU_S} CPU-s, what 10 minutes on one idle "
             "core give less the evaluation. Wall time is recorded beside it and depends on the load: the 'goals met' "
             "column counts the 10 minutes as <= 600 CPU-s; at the load of these runs the wall time was longer. The "
             "ethanol trajectories were regenerated in this session (same script and seeds; the cache was gone).",
             "", "## (a) Ethanol, GFN2-xTB, tested on independent trajectories", "",
             "Labels: Langevin MD on the GFN2-xTB surface (tblite + ASE, 0.5 fs steps, friction 0.01/fs, a frame "
             f"every {ETHANOL_INTERVAL // 2} fs after equilibration). Training trajectory: seed 0, 500 K, 1,000 "
             "frames: the first 950 train, the last 50 (a later time block) select the model. Test trajectories, "
             "never seen in training or model selection: seed 1 at 500 K (400 frames) and seed 2 at 700 K "
             "(400 frames, hotter: geometries outside the training distribution). Goals (on the 500 K test "
             "trajectory): energy MAE <= 0.3 kcal/mol, force MAE <= 1.0 kcal/mol/A, training <= 10 minutes "
             "(<= 600 CPU-s).", "", "Settings (from the ablation below): " + _settings_text(parts), "",
             "| model | evaluated on | energy MAE (kcal/mol) | energy RMSE (kcal/mol) | force MAE (kcal/mol/A) | "
             "force RMSE (kcal/mol/A) | epochs (best) | wall s | CPU s | load avg | goals met |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for kind in ("schnet", "ani"):
        part = parts.get(f"ethanol-{kind}")
        if part is None or "metrics_by_set" not in part:
            lines.append(f"| {kind}-style | not run | | | | | | | | | |")
            continue
        for which in ("test-500K", "test-700K", "validation"):
            m = part["metrics_by_set"][which]
            met = ""
            if which == "test-500K":
                ok = (m["energy_mae_kcal_mol"] <= 0.3 and m["force_mae_kcal_mol_a"] <= 1.0
                      and part["train_cpu_s"] <= 600)
                met = "yes" if ok else "no"
            label = {"test-500K": "test 500 K (seed 1)", "test-700K": "test 700 K (seed 2)",
                     "validation": "validation (time block)"}[which]
            lines.append(f"| {kind}-style | {label} | {m['energy_mae_kcal_mol']:.3f} | {m['energy_rmse_kcal_mol']:.3f} | "
                         f"{m['force_mae_kcal_mol_a']:.3f} | {m['force_rmse_kcal_mol_a']:.3f} | "
                         f"{part['epochs']} ({part['best_epoch']}) | {part['total_s']:.0f} | {part['train_cpu_s']:.0f} | "
                         f"{part['load_start']:.1f}-{part['load_end']:.1f} | {met} |")
    lines += _ablation_lines()
    previous = _previous_report()
    if not any(f"ethanol-{kind}" in parts for kind in ("schnet", "ani")) and "## (a)" in previous:
        # the ethanol runs' part files are not in this checkout (.cache is not committed): keep their section
        kept = previous[previous.index("## (a)"):previous.index("## (b)")].rstrip().split("\n")
        if not any(line.startswith("Ethanol runs of ") for line in kept):
            stamp = previous.split("UTC", 1)[0].rsplit(", ", 1)[-1] + "UTC"  # the previous "Generated ..." line
            kept[1:1] = ["", f"Ethanol runs of {stamp}: their part files (.cache) are not in this checkout, so this "
                         "section and its verdicts are carried over from that report."]
        lines = lines[:lines.index("## (a) Ethanol, GFN2-xTB, tested on independent trajectories")] + kept
    lines += _qm9_lines(parts)
    lines += ["", "## Goals met or missed, and why", ""]
    lines += _verdicts(parts, previous)
    with atomic_write(RESULT, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def _previous_report():
    if not os.path.exists(RESULT):
        return ""
    with open(RESULT) as handle:
        return handle.read()


def _qm9_lines(parts):
    """Section (b): the QM9 learning curve and the QM9 ablation."""
    spec = {k: v for k, v in QM9_SPEC.items() if k not in ("type", "elements", "seed")}
    lines = ["", "## (b) QM9 U0, ANI-style model (learning curve; 1,000 validation / 5,000 test molecules)", "",
             "Goal: test MAE <= 1.5 kcal/mol at 50k training molecules. Energies only (no forces). Split: 50,000 "
             "training pool / 1,000 validation (model selection) / 5,000 test molecules, seeded (`split(..., "
             "seed=0)`); the 1k and 10k runs train on the first molecules of the same pool.", "",
             f"Settings (from the QM9 ablation below): {spec}, lr {QM9_TRAIN['lr']:g} (budget_cosine to "
             f"{QM9_TRAIN['min_lr']:g}), batch {QM9_TRAIN['batch_size']}, float32, AEVs computed once per molecule "
             "and stored (`feature_cache`, counted in the CPU budget), one torch thread.", "",
             "| training molecules | energy MAE (kcal/mol) | energy RMSE (kcal/mol) | energy MAE (meV) | validation MAE "
             "(kcal/mol) | epochs (best) | CPU cap (s) | CPU s | wall s | load avg |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size in (1000, 10000, 50000):
        part = parts.get(f"qm9-{size}")
        if part is None or "train_cpu_s" not in part:
            lines.append(f"| {size:,} | not run | | | | | | | | |")
            continue
        m, v = part["metrics"], part["val_metrics"]
        lines.append(f"| {size:,} | {m['energy_mae_kcal_mol']:.3f} | {m['energy_rmse_kcal_mol']:.3f} | "
                     f"{m['energy_mae_mev']:.1f} | {v['energy_mae_kcal_mol']:.3f} | {part['epochs']} "
                     f"({part['best_epoch']}) | {QM9_CPU_S[size]} | {part['train_cpu_s']:.0f} | "
                     f"{part['train_s']:.0f} | {part['load_start']:.1f}-{part['load_end']:.1f} |")
    path = os.path.join(PARTS_DIR, "qm9_ablation.json")
    if os.path.exists(path):
        with open(path) as handle:
            results = json.load(handle)
        lines += ["", "### Where the QM9 error comes from: ablation", "",
                  f"Short controlled runs on the first {QM9_ABLATION_SIZE:,} pool molecules, {QM9_ABLATION_CPU_S} "
                  "CPU-s each (one torch thread; training stops at the first epoch past the budget), scored on the "
                  "1,000 validation molecules only (the test set was not looked at to choose settings).", "",
                  "| variant | what changed | val energy MAE (kcal/mol) | val energy RMSE (kcal/mol) | epochs (best) "
                  "| CPU s | wall s | load |", "|---|---|---|---|---|---|---|---|"]
        for name, r in results.items():
            m = r["metrics"]
            lines.append(f"| {name} | {r['what']} | {m['energy_mae_kcal_mol']:.3f} | {m['energy_rmse_kcal_mol']:.3f} | "
                         f"{r['epochs']} ({r['best_epoch']}) | {r['cpu_s']:.0f} | {r['wall_s']:.0f} | "
                         f"{r['load']:.1f} |")
        lines += [""] + QM9_FINDINGS
    return lines


QM9_FINDINGS = [  # read from the QM9 ablation table (2026-11-30 run, 150 CPU-s per variant)
    "What the table shows (one seed; rows with the same per-epoch work got 34-44 epochs from the same budget, "
    "because the other core ran the active-learning bench: differences of ~10% are noise):",
    "",
    "- **CPU per epoch was the largest error source.** The previous bench recomputed every molecule's AEV in every "
    "batch of every epoch, although the AEV has no trainable parameters and no force term needs its gradient: "
    "storing the features once (`feature_cache`) gave 49 epochs instead of 21 in the same 150 CPU-s and cut the "
    "validation MAE from 1.76 to 1.25 kcal/mol with nothing else changed. The previous 50k run (584 CPU-s) had "
    "got 4 epochs.",
    "- **Schedule:** unlike ethanol, the budget cosine at lr 1e-3 was no better than the plateau schedule at this "
    "budget (1.34 vs 1.25); what helped was a higher starting rate under the cosine: 3e-3 and 1e-2 (1.18, 1.16) "
    "against 1e-3 (1.32), all at batch 32.",
    "- **Batch size:** 32 and 64 were equal (1.32 vs 1.34 at lr 1e-3).",
    "- **Width:** [256, 128, 64] was no better than [128, 64] in the same CPU time (1.30 vs 1.32 at lr 1e-3, "
    "1.22 vs 1.18 at lr 3e-3), with about a third fewer epochs.",
    "- Chosen for the learning curve: [128, 64], budget cosine from lr 3e-3 (the lower of the two equal rates), "
    "batch 32, stored AEVs.",
]


def _settings_text(parts):
    texts = []
    for kind in ("ani", "schnet"):
        part = parts.get(f"ethanol-{kind}")
        if part is None:
            continue
        c, spec = part["config"], {k: v for k, v in part["spec"].items() if k not in ("type", "elements", "seed")}
        texts.append(f"{kind}-style {spec}, lr {c['lr']:g} ({c['schedule']} to {c['min_lr']:g}), batch "
                     f"{c['batch_size']}, force weight {c['force_weight']:g}, "
                     f"{'float64' if part.get('float64') else 'float32'}, cap {c.get('max_cpu_s')} CPU-s")
    return "; ".join(texts) + "."


def _ablation_lines():
    """The ablation table (bench/train_ablation.py) and what it showed (ABLATION_FINDINGS)."""
    path = os.path.join(PARTS_DIR, "ablation.json")
    if not os.path.exists(path):
        return []
    sys.path.insert(0, HERE)
    from train_ablation import load_results, table_lines

    results = load_results()
    budget = sorted({r["cpu_budget_s"] for r in results.values()})
    return (["", "### Where the ethanol error comes from: ablation (ANI-style)", "",
             "`bench/train_ablation.py`: short controlled runs, one change each from the reference named in the "
             f"row, the same 950 training frames, a budget of {', '.join(f'{b:g}' for b in budget)} CPU-s each "
             "(one torch thread; training stops at the first epoch past it), scored on the time-blocked "
             "validation set only (the test trajectories were not looked at to choose settings).", ""]
            + table_lines(results) + [""] + ABLATION_FINDINGS)


ABLATION_FINDINGS = [  # read from the table above (2026-11-30 run, 60 CPU-s per variant)
    "What the table shows (each row against the row it changes; one seed, so differences of ~10% are noise):",
    "",
    "- **The learning-rate schedule was the largest error source.** With the previous bench's plateau schedule "
    "(lr 1e-3, patience 8 epochs) the validation energy MAE after 60 CPU-s was 1.76 kcal/mol; annealing the rate "
    "to 1e-5 over the budget (`budget_cosine`) gave 0.31 at the same CPU time (5.7x), and a higher start (3e-3) "
    "0.22 with forces 2.13 -> 1.25; lr 1e-2 was no better than 3e-3 (0.22 / 1.49). The full run's history "
    "(.cache/bench_train/ethanol-ani/history.csv) shows why: while the rate is high the validation energy MAE "
    "swings between ~1 and ~8 kcal/mol from epoch to epoch (the energy offset follows the last updates; the "
    "forces are steadier), and it settles only as the rate falls (0.09 kcal/mol at lr 8e-4, epoch 150).",
    "- **Force weight:** 100 (forces dominate the loss) beat 10 on both energy and forces (0.31 -> 0.24, "
    "2.13 -> 1.22), 1 was worse on both (0.50 / 3.36): 27 force components per frame carry far more "
    "information about the surface than its one energy, and learning them also fixes the energy. With one "
    "molecule (always 9 atoms) per-atom energy normalisation is the same as a constant energy weight, i.e. "
    "covered by these rows; self-energy fitting is a single least-squares mean for one composition and cannot "
    "matter here.",
    "- **Batch size:** 4 and 16 were close (4: more updates but 2.2x the CPU per epoch), 64 was clearly worse "
    "(0.62 / 3.80: too few updates in the budget); 8 vs 16 at the best settings: equal (0.18 / 0.95 vs "
    "0.17 / 0.96).",
    "- **Precision:** float64 was 18% slower per epoch and no better; float32 stays.",
    "- **AEV:** the ANI-1x-derived parameters suit ethanol (every atom pair lies within the 0.52 nm radial "
    "cutoff; the 0.35 nm angular cutoff covers all bonded triplets); widening the angular cutoff to 0.45 nm "
    "(5 shells) made it worse (0.39 / 2.49), so the features are not what limits accuracy.",
    "- **Width:** [256, 128, 64] beat [128, 64] (forces 2.13 -> 1.45 alone; 0.96 -> 0.84 with lr 3e-3 and "
    "force weight 100) at the same CPU time despite fewer epochs.",
    "- Chosen for the bench: budget cosine from lr 3e-3, force weight 100, batch 16, [256, 128, 64], float32 "
    "(validation 0.18 kcal/mol, 0.84 kcal/mol/A after 60 CPU-s). The SchNet-style model gets the same training "
    "settings (not ablated separately).",
]
ERROR_SOURCES = [  # the verdict on where the error came from (the ablation and the runs above, 2026-11-30)
    "- Where the error came from: the previous bench (ANI-style 0.608 kcal/mol and 1.816 kcal/mol/A on the test "
    "trajectory of the same script and seeds, after 105 CPU-s of a 10-minute wall cap on a machine at load "
    "9-12) was limited first by its learning-rate schedule and loss weighting, then by CPU time: at an equal "
    "60 CPU-s the ablation's settings reach 0.18 / 0.84 on the validation block where the previous settings reach 1.76 / 2.21, and the "
    "full 570 CPU-s budget takes the ANI-style model to the numbers above. Features (AEV cutoffs) and "
    "precision were not the limit.",
    "- What is left is extrapolation: on the hotter 700 K trajectory, outside the 500 K training distribution, "
    "the errors are 1.8-2.4x (ANI-style) those at 500 K, and the force RMSE grows more than the MAE (rare, "
    "strained geometries).",
]


def _verdicts(parts, previous=""):
    notes = []
    for kind in ("schnet", "ani"):
        part = parts.get(f"ethanol-{kind}")
        if part is None or "metrics_by_set" not in part:
            kept = [line for line in previous.split("\n") if line.startswith(f"- ethanol {kind}-style:")]
            notes.extend(kept or [f"- ethanol {kind}-style: not run in this session."])
            continue
        by = part["metrics_by_set"]
        m = by["test-500K"]
        missed = []
        if m["energy_mae_kcal_mol"] > 0.3:
            missed.append(f"energy MAE {m['energy_mae_kcal_mol']:.2f} > 0.3 kcal/mol")
        if m["force_mae_kcal_mol_a"] > 1.0:
            missed.append(f"force MAE {m['force_mae_kcal_mol_a']:.2f} > 1.0 kcal/mol/A")
        hot = by["test-700K"]["force_mae_kcal_mol_a"] / m["force_mae_kcal_mol_a"] - 1
        block = by["validation"]["force_mae_kcal_mol_a"] / m["force_mae_kcal_mol_a"] - 1
        verdict = f"missed ({'; '.join(missed)})" if missed else "goals met"
        notes.append(
            f"- ethanol {kind}-style: {verdict}, trained {part['epochs']} epochs in {part['train_cpu_s']:.0f} CPU-s "
            f"({part['train_s']:.0f} s wall, load average {part['load_start']:.1f}-{part['load_end']:.1f}); best "
            f"epoch {part['best_epoch']} (the CPU budget ended the run, the learning rate annealed to its end). "
            f"On the hotter (700 K) trajectory the force MAE is {100 * hot:+.0f}% (geometries beyond the 500 K "
            f"training distribution); the time-blocked validation set differs from the independent 500 K test by "
            f"{100 * block:+.0f}%.")
    notes.extend(ERROR_SOURCES)
    part = parts.get("qm9-50000")
    if part is None or "train_cpu_s" not in part:
        notes.append("- QM9 50k: not run in this checkout.")
    else:
        mae = part["metrics"]["energy_mae_kcal_mol"]
        curve = ", ".join(f"{size // 1000}k: {parts[f'qm9-{size}']['metrics']['energy_mae_kcal_mol']:.2f}"
                          for size in (1000, 10000, 50000) if f"qm9-{size}" in parts)
        verdict = "goal met" if mae <= 1.5 else f"goal missed ({mae:.2f} > 1.5 kcal/mol)"
        notes.append(f"- QM9 50k: {verdict}: test MAE {mae:.3f} kcal/mol after {part['epochs']} epochs in "
                     f"{part['train_cpu_s']:.0f} CPU-s ({part['train_s']:.0f} s wall, load average "
                     f"{part['load_start']:.1f}-{part['load_end']:.1f}); learning curve (kcal/mol) {curve}. The previous "
                     "run (2026-11-21: plateau schedule, batch 64, AEVs recomputed every batch, 600 s wall cap, 584 "
                     "CPU-s) measured 1.971 after 4 epochs. The issue sets no time limit for QM9; this run had "
                     f"{part['train_cpu_s'] / 60:.0f} CPU-minutes of one thread, {part['train_cpu_s'] / part['epochs']:.1f} "
                     "CPU-s per epoch over 50k molecules with the stored AEVs (the previous run: ~146).")
    return notes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=PARTS + ["report", "data", "qm9-ablation"],
                        help="run one part (default: all but the ablation)")
    parser.add_argument("--variants", nargs="*", help=f"qm9-ablation variants (default: all of {list(QM9_VARIANTS)})")
    args = parser.parse_args()
    if args.part == "qm9-ablation":
        run_qm9_ablation(args.variants)
    todo = PARTS if args.part is None else ([] if args.part in ("report", "data", "qm9-ablation") else [args.part])
    if args.part == "data":
        for which in ETHANOL_TRAJECTORIES:
            print(which, ethanol_dataset(which), flush=True)
    for name in todo:
        print(f"== {name}", flush=True)
        if name.startswith("ethanol-"):
            run_ethanol(name.split("-", 1)[1])
        else:
            run_qm9(int(name.split("-", 1)[1]))
        write_report()
    if args.part in (None, "report"):
        write_report()
