"""The demo's stages, one function each, in order; every stage calls the library for its work (labelling:
:mod:`nnforce.data.label`; training: :mod:`nnforce.train`; export: :mod:`nnforce.export`; MD:
:mod:`nnforce.simulate`; features and analysis: :mod:`nnforce.analysis`; report: :mod:`nnforce._html`).

Each stage reads and extends a :class:`DemoRun` (settings, files, what earlier stages produced).
"""
import contextlib
import csv
import datetime
import os
import platform
import sys
import time

import numpy as np

from ..units import FS_PER_PS
from .measure import basin, circular_mean_deg, errors, nnforce_energy, nnforce_ms_per_step, phi_psi_of, predict
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

    with run.stage("export", "TorchScript + metadata, contract checks on a test frame"):
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


def _production_steps(run):
    """Production steps: the settings' number, fitted to the time budget when there is one."""
    s = run.settings
    steps = s["sim_steps"]
    if s.get("sim_time_budget_s"):
        # keep the whole demo inside its time budget on a slow or busy machine: time NNForce first
        ms = nnforce_ms_per_step(run.files["model"], run.topology, run.test_frames[0])
        affordable = int(s["sim_time_budget_s"] * 1000.0 / ms) - s["sim_equilibration_steps"]
        steps = max(s["sim_min_steps"], min(steps, affordable))
        steps -= steps % s["sim_trajectory_interval"]
        log(f"NNForce takes {ms:.2f} ms/step here: {steps} production steps "
            f"(at most {s['sim_steps']}, budget {s['sim_time_budget_s']:g} s)")
    return steps


def simulate(run):
    """5. NNForce Langevin MD on OpenMM's CPU platform (one torch thread); energy trace figure.

    Parameters
    ----------
    run : DemoRun
    """
    from ..simulate import SimulationConfig, run as run_simulation
    from .figures import plot_energy_trace

    s = run.settings
    steps = run.info["sim_steps_run"] = _production_steps(run)
    ps = steps * s["sim_timestep_fs"] / FS_PER_PS
    with run.stage("simulate", f"NNForce Langevin MD, {ps:g} ps at {s['sim_temperature_k']:g} K, CPU platform"):
        config = SimulationConfig(
            model=run.files["model"], pdb=run.files["structure"], output_dir=run.path("simulation"), steps=steps,
            equilibration_steps=s["sim_equilibration_steps"], integrator="langevin-middle",
            temperature_k=s["sim_temperature_k"], friction_per_ps=s["sim_friction_per_ps"],
            timestep_fs=s["sim_timestep_fs"], platform="CPU", seed=run.seed + 1,
            report_interval=s["sim_report_interval"], trajectory="trajectory.dcd",
            trajectory_interval=s["sim_trajectory_interval"], checkpoint_interval=0,
            progress=run.info["mode"] == "full", threads=1)
        run.simulation = run_simulation(config)
        run.simulation.pop("positions_nm", None)
        run.files["trajectory"] = run.simulation["trajectory"]
        run.files["energies_csv"] = run.simulation["energy_csv"]
        with open(run.files["energies_csv"]) as handle:
            rows = list(csv.DictReader(handle))
        run.files["energy_png"] = plot_energy_trace(run.path("figures", "energy.png"), rows,
                                                    s["sim_equilibration_steps"])


def _cluster_table(labels, phi, psi, n_clusters):
    """Population, frame count, circular-mean phi/psi and basin of each cluster; and the basin populations."""
    populations = np.bincount(labels, minlength=n_clusters) / len(labels)
    clusters = []
    for c in range(n_clusters):
        chosen = labels == c
        mean_phi = circular_mean_deg(phi[chosen]) if chosen.any() else float("nan")
        mean_psi = circular_mean_deg(psi[chosen]) if chosen.any() else float("nan")
        clusters.append({"cluster": c, "population": float(populations[c]), "frames": int(chosen.sum()),
                         "phi_deg": mean_phi, "psi_deg": mean_psi,
                         "basin": basin(mean_phi, mean_psi) if chosen.any() else "empty"})
    frame_basins = [basin(a, b) for a, b in zip(np.degrees(phi), np.degrees(psi))]
    basins = {name: frame_basins.count(name) / len(frame_basins)
              for name in ("C7eq / C5 / beta / PPII", "alpha_R", "alpha_L / C7ax")}
    return populations, clusters, basins


def analyze(run):
    """6. phi/psi, TICA and k-means (:func:`nnforce.analysis.analyze`); the model against ANI-1x on frames of its
    own trajectory.

    Parameters
    ----------
    run : DemoRun
    """
    import mdtraj

    from ..analysis import analyze as analyze_trajectories, plots
    from ..data.label import label_frames
    from .figures import plot_coverage

    s, files = run.settings, run.files
    with run.stage("analyze", "phi/psi, TICA, k-means; the model vs ANI-1x on trajectory frames"):
        dt_ps = s["sim_trajectory_interval"] * s["sim_timestep_fs"] / FS_PER_PS
        analysis = analyze_trajectories(
            [files["trajectory"]], files["structure"], run.path("analysis"), features=["phi_psi"],
            reduce=f"tica:lag={s['tica_lag_frames']},dim=2", cluster=f"kmeans:k={s['clusters']}", msm="none",
            temperature_k=s["sim_temperature_k"], seed=run.seed, n_samples=3, dt_ps=dt_ps)
        phi, psi = (np.asarray(a, dtype=np.float64) for a in analysis["phi_psi"])
        populations, clusters, basins = _cluster_table(np.concatenate(analysis["dtrajs"]), phi, psi, s["clusters"])
        # coarser bins than the analysis report's (5 deg) suit a few hundred frames
        files["phi_psi_png"] = plots.plot_phi_psi(
            run.path("figures", "phi_psi.png"), phi, psi, temperature_k=s["sim_temperature_k"],
            bins=s["phi_psi_bins"], title=f"phi/psi free energy, T = {s['sim_temperature_k']:g} K")
        files["tica_png"] = analysis["files"].get("fes")
        files["populations_png"] = analysis["files"]["populations"]
        files["analysis_html"] = analysis["files"]["html"]
        files["coverage_png"] = plot_coverage(run.path("figures", "coverage.png"), run.phi_ref, run.psi_ref, phi, psi)
        tica = analysis.get("tica")
        run.info["analysis"] = {
            "frames": int(len(phi)), "phi_rad": phi, "psi_rad": psi, "populations": populations,
            "clusters": clusters, "basins": basins, "tica_lag_ps": s["tica_lag_frames"] * dt_ps,
            "tica_timescales": (", ".join(f"{t * dt_ps:.3g}" for t in tica.timescales[:2]) + " ps")
            if tica is not None else "n/a"}
        traj = mdtraj.load(files["trajectory"], top=files["structure"])
        pick = np.unique(np.linspace(0, traj.n_frames - 1, min(s["teacher_check_frames"], traj.n_frames))
                         .round().astype(int))
        sim_frames = traj.xyz[pick].astype(np.float64)
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
            "simulation": run.simulation, "versions": versions,
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        info["total_time_s"] = time.perf_counter() - run.started
        files["summary"] = run.path("summary.json")
        files["report"] = run.path("report.html")
        write_report(files["report"], info)
        summary = {k: v for k, v in info.items() if k not in ("analysis",)}
        summary["analysis"] = {k: v for k, v in info["analysis"].items() if k not in ("phi_rad", "psi_rad")}
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
