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

from .measure import BASINS, errors, nnforce_energy, phi_psi_of, predict
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
        run.positions = np.asarray(positions.value_in_unit(positions.unit), dtype=np.float64)
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


def distil(run):
    """3. Distillation by active learning (:func:`nnforce.train.learn.learn`): a committee of small ANI-style models
    trained on the amber14 frames explores with well-tempered metadynamics on phi/psi; frames its members disagree
    on, raised where the data's phi/psi coverage is thin, get ANI-1x labels; retrain; until the error on fresh
    exploration frames is close to the test error (or the rounds are used). The student is member 0 of the last
    committee, trained on on all the data; tested against the trivial baselines.

    Parameters
    ----------
    run : DemoRun
    """
    import torch

    from ..data import split
    from ..simulate.metadynamics import backbone_torsions
    from ..train import TrainConfig, evaluate, fit, model_from_checkpoint
    from ..train.learn import LearnConfig, learn
    from .figures import plot_training

    s, seed, d = run.settings, run.seed, run.settings["distil"]
    run.spec = dict(s["model"])
    with run.stage("distil", f"active learning from ANI-1x: a {d['members']}-member committee explores with "
                             f"metadynamics on phi/psi, at most {d['rounds']} rounds; the student"):
        pool, test_set = split(run.dataset, (s["split"][0] + s["split"][1], s["split"][2]), seed=seed)
        amber_frames = len(pool)
        pool, walls = _with_walls(run, pool)
        folder = run.path("distil")
        os.makedirs(folder, exist_ok=True)
        pool.save(os.path.join(folder, "initial.npz"))
        test_set.save(os.path.join(folder, "test.npz"))
        teacher_path = os.path.join(folder, "teacher_ani1x.pt")  # the teacher learn labels with (TorchScript)
        from .._io import atomic_save

        scripted = torch.jit.script(run.teacher)
        atomic_save(teacher_path, lambda tmp: scripted.save(tmp))
        phi_atoms, psi_atoms = backbone_torsions(run.topology)
        config = LearnConfig(
            data=os.path.join(folder, "initial.npz"), output=folder, label=teacher_path,
            test=os.path.join(folder, "test.npz"), rounds=d["rounds"], members=d["members"], model=dict(run.spec),
            train=dict(d["train"], threads=1), explore=dict(d["explore"]), select=dict(d["select"]), stability=None,
            validation_fraction=d["validation_fraction"], seed=seed, torsions=[list(phi_atoms), list(psi_atoms)],
            check_frames=d["check_frames"], stop_ratio=d["stop_ratio"], min_rounds=d["min_rounds"],
            warm_start=d["warm_start"], workers=d["workers"])
        learned = learn(config)
        rows = learned["rounds"]
        from ..data import Dataset

        data = Dataset.load(learned["data"])
        member, _ = model_from_checkpoint(os.path.join(folder, f"round_{rows[-1]['round']}", "member0", "best.ckpt"))
        n_val = max(1, int(round(d["validation_fraction"] * len(data))))
        train_set, val_set = split(data, (len(data) - n_val, n_val), seed=seed)
        # the student continues member 0's function: its self energies and energy scale are kept
        config = TrainConfig(**{"threads": 1, "self_energies": "keep", "energy_scale": "keep", **s["student_train"]},
                             seed=seed, log_dir=run.path("train"), progress=run.info["mode"] == "full")
        torch.manual_seed(seed)
        result = fit(member.float().train(), train_set, val_set, config, model_spec=dict(run.spec, seed=seed),
                     metadata={"data_hash": data.content_hash(), "teacher": "ANI-1x"})
        run.model = result.model.double().eval()
        run.data = data
        run.test_metrics = evaluate(run.model, test_set)
        train_mean = float(train_set.energies_kj_mol.mean())
        test_e, test_f = test_set.energies_kj_mol, test_set.forces_kj_mol_nm
        run.baseline = errors(np.full_like(test_e, train_mean), np.zeros_like(test_f), test_e, test_f)
        run.test_frames = test_set.positions_nm.reshape(len(test_set), -1, 3)
        test_predicted, _ = predict(run.model, run.numbers, run.test_frames)
        run.files["distil"] = folder
        run.files["distilled_data"] = learned["data"]
        run.files["rounds_md"] = os.path.join(folder, "rounds.md")
        if os.path.exists(os.path.join(folder, "learning_curve.png")):
            run.files["learning_curve_png"] = os.path.join(folder, "learning_curve.png")
        run.files["history_csv"] = run.path("train", "history.csv")
        run.files["checkpoint"] = result.checkpoint
        run.files["training_png"] = plot_training(run.path("figures", "training.png"), result.history, test_e,
                                                  test_predicted, run.baseline)
        _record_distillation(run, rows, pool, data, test_set, result)
        run.info["distillation"]["initial_amber_frames"] = amber_frames
        run.info["distillation"]["stretched_bond_frames"] = walls["stretched_bonds"]
        run.info["distillation"]["close_contact_frames"] = walls["close_contacts"]


def _with_walls(run, pool):
    """The initial data plus copies of its frames that show the teacher's walls, labelled by ANI-1x (the test set
    stays thermal): ``stretched_bonds["frames"]`` with one covalent bond stretched
    (:func:`nnforce.data.augment.stretch_bonds`) and ``close_contacts["frames"]`` with two atoms three or more bonds
    apart pushed together (:func:`nnforce.data.augment.close_contacts`). Returns (data, {kind: frames})."""
    from ..data import Dataset, concatenate
    from ..data.augment import close_contacts, stretch_bonds
    from ..data.label import label_frames

    frames = pool.positions_nm.reshape(len(pool), -1, 3)
    parts, counts = [pool], {}
    for k, (kind, make) in enumerate((("stretched_bonds", stretch_bonds), ("close_contacts", close_contacts))):
        settings = run.settings.get(kind) or {}
        count = int(settings.get("frames", 0))
        counts[kind] = count
        if count == 0:
            continue
        made = make(run.numbers, frames, count, tuple(settings["ratio_range"]), seed=run.seed + 11 + k)
        energies, forces = label_frames(run.teacher, run.numbers, made["frames_nm"], batch_frames=64)
        parts.append(Dataset.from_frames(run.numbers, list(made["frames_nm"]), energies, list(forces),
                                         name=f"{kind}-ani1x"))
        log(f"{count} frames with {kind.replace('_', ' ')} ({settings['ratio_range'][0]:g}-"
            f"{settings['ratio_range'][1]:g}x), labelled by ANI-1x, join the initial data")
    return (concatenate(parts, name=pool.name) if len(parts) > 1 else pool), counts


def _record_distillation(run, rows, pool, data, test_set, result):
    """What the distillation leaves in ``run.info`` (rounds, frames, the student's training)."""
    d = run.settings["distil"]
    data_phi, data_psi = phi_psi_of(data.positions_nm.reshape(len(data), -1, 3), run.topology)
    run.phi_data, run.psi_data = data_phi, data_psi
    keep = ("round", "frames", "train_s", "test_energy_mae_kj_mol", "test_force_mae_kj_mol_nm", "explored_frames",
            "explored_ps", "explore_stopped_early", "uncertainty_max_kj_mol", "explored_torsion_range_deg",
            "explored_uncovered_fraction", "selected", "added", "label_failures", "fresh_frames",
            "fresh_energy_mae_kj_mol", "fresh_force_mae_kj_mol_nm", "converged", "wall_s", "cpu_s")
    run.info["distillation"] = {
        "rounds": [{k: row[k] for k in keep if k in row} for row in rows],
        "converged": bool(rows[-1].get("converged", False)),
        "initial_frames": len(pool), "final_frames": len(data), "test_frames": len(test_set),
        "stop_ratio": d["stop_ratio"], "min_rounds": d["min_rounds"], "warm_start": d["warm_start"],
        "workers": d["workers"]}
    run.info["training"] = {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                            "stopped_early": result.stopped_early, "history": result.history,
                            "started_from": f"round {rows[-1]['round']} member 0"}


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
            "teacher_comparison": run.teacher_comparison,
            "versions": versions,
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        info["total_time_s"] = time.perf_counter() - run.started
        files["summary"] = run.path("summary.json")
        files["report"] = run.path("report.html")
        write_report(files["report"], info)
        summary = {k: v for k, v in info.items() if k not in ("analysis",)}
        summary["analysis"] = {k: v for k, v in info["analysis"].items()
                               if k not in ("phi_rad", "psi_rad", "fes_kt", "fes_edges_rad")}
        analysis = info["analysis"]
        comparison = run.teacher_comparison
        summary["basin_populations"] = {
            "basins": list(BASINS),
            "student_reweighted": analysis["populations"]["student_reweighted"],
            "student_reweighted_interval_95": analysis["populations"]["student_reweighted_interval"],
            "teacher_reweighted": {k: v[0] for k, v in (comparison.get("teacher_basins") or {}).items()},
            "teacher_reweighted_interval_95": {k: [v[1], v[2]] for k, v in
                                               (comparison.get("teacher_basins") or {}).items()},
            "student_msm": analysis["populations"]["nnforce_msm"],
            "student_msm_interval_95": analysis["populations"]["nnforce_msm_interval"],
            "student_frames_biased": analysis["populations"]["nnforce_frames"],
            "training_data_frames": analysis["populations"]["training_data"]}
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
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value
