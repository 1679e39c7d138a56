"""The demo's stages, one function each, in order; every stage calls the library for its work (labelling:
:mod:`nnforce.data.label`; training: :mod:`nnforce.train`; export: :mod:`nnforce.export`; MD:
:mod:`nnforce.simulate`; features and analysis: :mod:`nnforce.analysis`; report: :mod:`nnforce._html`).

Each stage reads and extends a :class:`DemoRun` (settings, files, what earlier stages produced).
"""
import contextlib
import datetime
import os
import platform
import sys
import time

import numpy as np

from .measure import BASINS, basin_populations, errors, uncovered_fraction, nnforce_energy, phi_psi_of, predict
from .molecule import alanine_dipeptide, atomic_numbers, sample_configurations, write_pdb


def log(message):
    """One progress line on stderr.

    Parameters
    ----------
    message : str

    Examples
    --------
    >>> log("starting")  # doctest: +SKIP
    """
    print(f"[nnforce demo] {message}", file=sys.stderr, flush=True)


class DemoRun:
    """What a demo run knows: its settings, output folder, files, timings, and each stage's products.

    Parameters
    ----------
    out_dir : str
    small : bool
    seed : int
    settings : dict
        ``nnforce.demo.settings.SETTINGS["small"|"full"]``.

    Examples
    --------
    >>> from nnforce.demo.settings import SETTINGS
    >>> run = DemoRun("/tmp/demo", True, 0, SETTINGS["small"])
    >>> run.path("report.html")
    '/tmp/demo/report.html'
    """

    def __init__(self, out_dir, small, seed, settings):
        self.out_dir, self.seed, self.settings = out_dir, seed, settings
        self.files, self.timings = {}, {}
        self.started = time.perf_counter()
        self.info = {"out_dir": out_dir, "mode": "small" if small else "full", "seed": seed, "settings": settings,
                     "files": self.files, "timings_s": self.timings,
                     "host": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"}
        self._count = 0

    def path(self, *parts):
        """A path in the output folder."""
        return os.path.join(self.out_dir, *parts)

    @contextlib.contextmanager
    def stage(self, name, what, total=7):
        """Log the start of a numbered stage and record its wall time under ``name``."""
        self._count += 1
        log(f"step {self._count}/{total} {name}: {what} ...")
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        log(f"step {self._count}/{total} {name}: done in {self.timings[name]:.1f} s")


# ----------------------------------------------------------------------------------------------------------
# the stages
# ----------------------------------------------------------------------------------------------------------

def molecule(run):
    """1. Alanine dipeptide at the first sampling start, written as ``alanine_dipeptide.pdb``.

    Parameters
    ----------
    run : DemoRun
    """
    with run.stage("molecule", "alanine dipeptide (ACE-ALA-NME) from the checked-in structure"):
        phi0, psi0 = run.settings["sample_starts_deg"][0]
        run.topology, positions = alanine_dipeptide(phi0, psi0)
        run.files["structure"] = write_pdb(run.path("alanine_dipeptide.pdb"), run.topology, positions)
        run.numbers = atomic_numbers(run.topology)
        run.info["n_atoms"] = len(run.numbers)


def reference_data(run):
    """2. amber14 sampling labelled with the ANI-1x ensemble (batched teacher labels); ``data/ani1x_labels.npz``.

    Parameters
    ----------
    run : DemoRun
    """
    from ..data import Dataset
    from ..data.label import label_frames
    from ..models import ani1x

    s = run.settings
    n_frames = len(s["sample_starts_deg"]) * s["sample_frames_per_start"]
    with run.stage("reference_data", f"{n_frames} amber14 frames at {s['sample_temperature_k']:g} K, "
                                     "labelled with ANI-1x"):
        _, _, frames, _ = sample_configurations(s, run.seed)
        run.teacher = ani1x()  # float64
        energies, forces = label_frames(run.teacher, run.numbers, frames, batch_frames=64)
        run.dataset = Dataset.from_frames(run.numbers, list(frames), energies, list(forces),
                                          name="alanine-dipeptide-ani1x")
        run.files["dataset"] = run.path("data", "ani1x_labels.npz")
        run.dataset.save(run.files["dataset"])
        run.phi_ref, run.psi_ref = phi_psi_of(frames, run.topology)


def train(run):
    """3. A small ANI-style model (energies + forces, seeded, time-capped), tested against the trivial baselines.

    Parameters
    ----------
    run : DemoRun
    """
    import torch

    from ..data import split
    from ..train import TrainConfig, build_model, evaluate, fit
    from .figures import plot_training

    s, seed = run.settings, run.seed
    run.spec = dict(s["model"])
    cap = s["train"]["max_time_s"]
    with run.stage("train", f"{run.spec['type'].upper()}-style model, energies + forces, "
                            + (f"at most {cap:g} s" if cap else f"{s['train']['epochs']} epochs")):
        train_set, val_set, test_set = split(run.dataset, s["split"], seed=seed)
        config = TrainConfig(**s["train"], seed=seed, log_dir=run.path("train"), progress=run.info["mode"] == "full",
                             threads=1)
        torch.manual_seed(seed)
        model = build_model(dict(run.spec, seed=seed) if run.spec["type"] in ("ani", "schnet") else run.spec)
        result = fit(model, train_set, val_set, config, model_spec=dict(run.spec, seed=seed),
                     metadata={"data_hash": run.dataset.content_hash(), "teacher": "ANI-1x"})
        run.model = result.model.double().eval()
        run.test_metrics = evaluate(run.model, test_set)
        train_mean = float(train_set.energies_kj_mol.mean())
        test_e, test_f = test_set.energies_kj_mol, test_set.forces_kj_mol_nm
        run.baseline = errors(np.full_like(test_e, train_mean), np.zeros_like(test_f), test_e, test_f)
        run.test_frames = test_set.positions_nm.reshape(len(test_set), -1, 3)
        test_predicted, _ = predict(run.model, run.numbers, run.test_frames)
        run.files["history_csv"] = run.path("train", "history.csv")
        run.files["checkpoint"] = result.checkpoint
        run.files["training_png"] = plot_training(run.path("figures", "training.png"), result.history, test_e,
                                                  test_predicted, run.baseline)
        run.info["training"] = {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                                "stopped_early": result.stopped_early, "history": result.history}


def export(run):
    """4. TorchScript + metadata with the contract checks on a test frame; the plugin's energy vs Python's.

    Parameters
    ----------
    run : DemoRun
    """
    from ..export import export_model

    with run.stage("export", "TorchScript + metadata, contract checks on a test frame; the .pt2 the ensemble runs"):
        run.files["model"] = run.path("model.pt")
        exported = export_model(run.model, run.files["model"], {
            "model_spec": dict(run.spec, seed=run.seed), "data_hash": run.dataset.content_hash(),
            "teacher": "ANI-1x", "metrics": run.test_metrics,
            "training_epochs": run.info["training"]["epochs_run"], "demo": run.info["mode"]},
            structure=(run.numbers, run.test_frames[0]))
        run.info["export_checks"] = exported.get("checks", {})
        python_energy = float(predict(run.model, run.numbers, run.test_frames[:1])[0][0])
        plugin_energy, _ = nnforce_energy(run.files["model"], run.topology, run.test_frames[0])
        run.nnforce_vs_python = abs(plugin_energy - python_energy)
        run.files["simulation_model"] = run.files["model"]
        if run.settings.get("model_format", "torchscript") == "pt2":
            _export_pt2(run, python_energy)


def _export_pt2(run, python_energy):
    """Compile the trained model into ``model.pt2`` (AOTInductor; cached by nnforce.export.to_pt2), check it through
    NNForce against the eager model, and make it the model the ensemble runs."""
    from .._pt2 import contract_example
    from ..export import to_pt2

    start = time.perf_counter()
    run.files["model_pt2"] = run.path("model.pt2")
    info = to_pt2(run.model, run.files["model_pt2"], contract_example(run.numbers, run.test_frames[0]),
                  precision=run.settings["pt2_precision"])
    compile_s = time.perf_counter() - start
    energy, _ = nnforce_energy(run.files["model_pt2"], run.topology, run.test_frames[0])
    run.info["pt2"] = {"compile_s": compile_s, "precision": run.settings["pt2_precision"],
                       "checks": info.get("checks", {}), "nnforce_vs_python_kj_mol": abs(energy - python_energy)}
    log(f".pt2 compiled in {compile_s:.0f} s (cached for the next run); NNForce vs Python {abs(energy - python_energy):.2e} "
        f"kJ/mol")
    run.files["simulation_model"] = run.files["model_pt2"]


def ensemble(run):
    """5. Replicas seeded across C7eq/beta, alpha_R, C7ax and alpha_L, run with NNForce batched in one Context
    (:mod:`nnforce.simulate.replicas`); the same protocol with amber14 as the reference; temperature figure.

    Parameters
    ----------
    run : DemoRun
    """
    from .ensemble import run_nnforce_ensemble, run_reference_ensemble, seed_starts
    from .figures import plot_ensemble_trace

    s = run.settings
    n = 4 * s["ensemble_replicas_per_basin"]
    with run.stage("ensemble", f"{n} NNForce replicas seeded across 4 basins, one Context, "
                               f"{s['ensemble_temperature_k']:g} K; the same with amber14"):
        starts = seed_starts(run.dataset.positions_nm.reshape(len(run.dataset), -1, 3), run.phi_ref, run.psi_ref,
                             run.topology, s["ensemble_replicas_per_basin"], run.seed)
        run.starts = starts
        budget = s["ensemble_time_budget_s"]
        if budget is not None and "pt2" in run.info:  # the compile time comes out of the ensemble's budget
            s = dict(s, ensemble_time_budget_s=max(s["ensemble_min_budget_s"], budget - run.info["pt2"]["compile_s"]))
        result = run_nnforce_ensemble(run.files["simulation_model"], run.topology, starts["positions"], s, run.seed + 1,
                                      run.path("ensemble"), progress=run.info["mode"] == "full", log=log)
        reference = run_reference_ensemble(run.topology, starts["positions"], s, result["steps"], run.seed + 1,
                                           run.path("reference_ensemble"))
        run.files["trajectories"] = result["trajectories"]
        run.files["reference_trajectories"] = reference["trajectories"]
        run.files["ensemble_png"] = plot_ensemble_trace(run.path("figures", "ensemble.png"), result,
                                                        s["ensemble_temperature_k"])
        run.ensemble = dict({k: v for k, v in result.items() if k not in ("temperatures_k",
                                                                          "potential_per_replica_kj_mol")},
                            temperature_mean_k=float(result["temperatures_k"].mean()),
                            reference_wall_s=reference["wall_s"], start_basins=starts["basins"],
                            start_sources=starts["sources"])
        run.info["ensemble"] = run.ensemble


def analyze(run):
    """6. TICA -> k-means -> MSM with bootstrap timescales, PCCA+ states, CK test, basin populations vs amber14
    (:mod:`nnforce.demo.conformations`); the model against ANI-1x on frames of the ensemble.

    Parameters
    ----------
    run : DemoRun
    """
    import mdtraj

    from ..analysis import plots
    from ..data.label import label_frames
    from .conformations import analyze_ensemble
    from .figures import plot_basin_populations, plot_coverage, plot_states

    s, files = run.settings, run.files
    with run.stage("analyze", "TICA, k-means, MSM, PCCA+, CK test; populations vs amber14; the model vs ANI-1x"):
        dt_ps = run.ensemble["frame_interval_ps"]
        conf = analyze_ensemble(files["trajectories"], files["reference_trajectories"], files["structure"],
                                run.path("analysis"), s, run.seed, dt_ps, run.ensemble["start_basins"])
        conf["populations"]["training_500k"] = basin_populations(run.phi_ref, run.psi_ref)
        phi, psi = conf["phi_rad"], conf["psi_rad"]
        conf["uncovered_fraction"] = uncovered_fraction(phi, psi, run.phi_ref, run.psi_ref, 20.0)
        if conf["uncovered_fraction"] > 0.02:
            conf["not_converged"].append(
                f"{100 * conf['uncovered_fraction']:.0f}% of the ensemble's frames lie more than 20 deg (phi/psi) from "
                "every training frame: there the model extrapolates, and the populations and timescales there are "
                "the model's guess, not ANI-1x's (more sampling there and retraining would fix it).")
        files["phi_psi_png"] = plot_states(run.path("figures", "phi_psi.png"), conf, s["ensemble_temperature_k"],
                                           s["phi_psi_bins"])
        its = conf["its"]
        files["timescales_png"] = plots.plot_timescales(
            run.path("figures", "timescales.png"), its["lags"], its["timescales"], dt_ps, "ps", its["lower"],
            its["upper"], f"{100 * its['confidence']:.0f}% bootstrap interval (replicas resampled)")
        files["populations_png"] = plot_basin_populations(run.path("figures", "populations.png"), conf["populations"])
        files["coverage_png"] = plot_coverage(run.path("figures", "coverage.png"), run.phi_ref, run.psi_ref, phi, psi)
        files["analysis_html"] = conf["files"]["analysis_html"]
        files["tica_png"] = conf["files"]["tica_png"]
        if conf.get("ck_png"):
            files["ck_png"] = conf["ck_png"]
        run.conformations = conf
        run.info["analysis"] = {key: conf[key] for key in (
            "phi_rad", "psi_rad", "populations", "clusters", "replicas", "reference_replicas", "states",
            "slowest_timescale_ps", "slowest_timescale_interval_ps", "timescales_ps", "msm_active_fraction",
            "msm_active_states", "not_converged", "dt_ps", "uncovered_fraction") if key in conf}
        run.info["analysis"].update({
            "frames": int(len(phi)), "basins": conf["populations"]["nnforce_frames"],
            "n_sets": conf.get("n_sets"), "ck_max_deviation": conf.get("ck_max_deviation"),
            "ck_skipped": conf.get("ck_skipped"), "msm_lag_ps": s["msm_lag_frames"] * dt_ps,
            "tica_lag_ps": s["tica_lag_frames"] * dt_ps,
            "implied_timescales_ps": {"lags_ps": (its["lags"] * dt_ps).tolist(),
                                      "timescales": (its["timescales"] * dt_ps).tolist(),
                                      "lower": (its["lower"] * dt_ps).tolist(), "upper": (its["upper"] * dt_ps).tolist(),
                                      "confidence": its["confidence"]}})
        stacked = [(t, f) for t, d in enumerate(conf["dtrajs"]) for f in range(len(d))]
        pick = [stacked[i] for i in np.unique(np.linspace(0, len(stacked) - 1, min(s["teacher_check_frames"],
                                                                                  len(stacked))).round().astype(int))]
        sim_frames = []
        for t in sorted({t for t, _ in pick}):
            xyz = mdtraj.load(files["trajectories"][t], top=files["structure"]).xyz
            sim_frames += [xyz[f] for u, f in pick if u == t]
        sim_frames = np.asarray(sim_frames, dtype=np.float64)
        run.trajectory_check = dict(n_frames=int(len(pick)), **errors(
            *predict(run.model, run.numbers, sim_frames), *label_frames(run.teacher, run.numbers, sim_frames)))


def report(run, versions):
    """7. ``report.html`` (self-contained) and ``summary.json``.

    Parameters
    ----------
    run : DemoRun
    versions : dict
        Package versions for the report.
    """
    import json

    from .._io import atomic_write
    from .report import write_report

    info, files = run.info, run.files
    with run.stage("report", "report.html (self-contained)"):
        info.update({
            "metrics": {"test": run.test_metrics, "baseline": run.baseline,
                        "trajectory_vs_teacher": run.trajectory_check,
                        "nnforce_vs_python_kj_mol": run.nnforce_vs_python},
            "versions": versions,
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        info["total_time_s"] = time.perf_counter() - run.started
        files["summary"] = run.path("summary.json")
        files["report"] = run.path("report.html")
        write_report(files["report"], info)
        summary = {k: v for k, v in info.items() if k not in ("analysis",)}
        summary["analysis"] = {k: v for k, v in info["analysis"].items() if k not in ("phi_rad", "psi_rad")}
        analysis = info["analysis"]
        summary["basin_populations"] = {
            "basins": list(BASINS), "nnforce_msm": analysis["populations"]["nnforce_msm"],
            "nnforce_msm_interval_95": analysis["populations"]["nnforce_msm_interval"],
            "nnforce_frames": analysis["populations"]["nnforce_frames"],
            "amber14_msm": analysis["populations"]["reference_msm"],
            "amber14_msm_interval_95": analysis["populations"]["reference_msm_interval"],
            "amber14_frames": analysis["populations"]["reference_frames"],
            "training_data_500k_frames": analysis["populations"]["training_500k"]}
        summary["slowest_implied_timescale_ps"] = analysis["slowest_timescale_ps"]
        summary["slowest_implied_timescale_interval_95_ps"] = analysis["slowest_timescale_interval_ps"]
        summary["msm_lag_ps"] = analysis["msm_lag_ps"]
        with atomic_write(files["summary"], "w") as handle:
            json.dump(_json_ready(summary), handle, indent=1, default=str)


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value
