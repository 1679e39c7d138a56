"""The demo's report: ``report.html``, self-contained (figures embedded, no scripts, stylesheets or fonts from
elsewhere), built with the shared engine :mod:`nnforce._html`; one function per section."""
import json
import os

from .._html import esc, figure, fmt, table, write_page
from ..units import FS_PER_PS, KJ_PER_KCAL

TITLE = "nnforce demo: alanine dipeptide"


def _header(info):
    s = info["settings"]
    return f"""<h1>nnforce demo: alanine dipeptide in vacuum</h1>
<p>{esc(info['mode'])} mode, seed {info['seed']}, finished {esc(info['finished_utc'])} in
{info['total_time_s']:.0f} s on {esc(info['host'])}.</p>
<p class="flow">amber14 sampling ({s['sample_temperature_k']:g} K) &rarr; ANI-1x labels &rarr; train
{esc(s['model']['type'].upper())}-style model &rarr; export (TorchScript) &rarr; NNForce MD
({s['sim_temperature_k']:g} K) &rarr; phi/psi, TICA, k-means &rarr; this report</p>
"""


def _training(info):
    s, m = info["settings"], info["metrics"]
    test, base, traj = m["test"], m["baseline"], m.get("trajectory_vs_teacher") or {}
    parts = ['<section id="training"><h2>1. Training: a small model learns ANI-1x</h2>',
             figure(info["files"]["training_png"], "training curve",
                    "Left: loss per epoch (energy MSE / Var(E) + force weight x force MSE / mean(F^2)). Middle: "
                    "validation MAEs with the trivial baselines (dotted). Right: test-set energies, trained "
                    "model vs the ANI-1x teacher.")]
    rows = [("energy MAE (kJ/mol)", test["energy_mae_kj_mol"], base["energy_mae_kj_mol"],
             traj.get("energy_mae_kj_mol", "n/a")),
            ("energy RMSE (kJ/mol)", test["energy_rmse_kj_mol"], base["energy_rmse_kj_mol"],
             traj.get("energy_rmse_kj_mol", "n/a")),
            ("energy MAE (kcal/mol)", test["energy_mae_kcal_mol"], base["energy_mae_kj_mol"] / KJ_PER_KCAL,
             traj.get("energy_mae_kj_mol", float("nan")) / KJ_PER_KCAL if traj else "n/a"),
            ("force MAE (kJ/mol/nm)", test["force_mae_kj_mol_nm"], base["force_mae_kj_mol_nm"],
             traj.get("force_mae_kj_mol_nm", "n/a")),
            ("force RMSE (kJ/mol/nm)", test["force_rmse_kj_mol_nm"], base["force_rmse_kj_mol_nm"],
             traj.get("force_rmse_kj_mol_nm", "n/a"))]
    parts.append(table(rows, header=("metric", f"test set ({test['n_frames']} frames)",
                                     "baseline (mean energy, zero force)",
                                     f"NNForce trajectory frames ({traj.get('n_frames', 0)}) vs ANI-1x")))
    parts.append(f"<p>{info['training']['epochs_run']} epochs in {info['timings_s']['train']:.0f} s "
                 f"(best epoch {info['training']['best_epoch'] + 1}"
                 f"{', stopped early' if info['training']['stopped_early'] else ''}); "
                 f"{s['split'][0]} training / {s['split'][1]} validation / {s['split'][2]} test frames. "
                 "The last column re-labels frames of the NNForce trajectory with ANI-1x: the model's error where "
                 "it actually ran.</p>")
    if traj and traj["energy_mae_kj_mol"] > 3.0 * test["energy_mae_kj_mol"] + 5.0:
        parts.append('<p class="warn"><strong>Warning:</strong> on its own trajectory the model is much worse than '
                     f'on the test set ({traj["energy_mae_kj_mol"]:.3g} vs {test["energy_mae_kj_mol"]:.3g} kJ/mol): '
                     "the dynamics left the configurations it was trained on (a small model with minutes of "
                     "training has holes). Add those frames to the training data, train longer, or simulate at a "
                     "lower temperature.</p>")
    parts.append("</section>")
    return "".join(parts)


def _simulation(info):
    s, sim, ana = info["settings"], info["simulation"], info["analysis"]
    return "".join([
        '<section id="simulation"><h2>2. Simulation with NNForce</h2>',
        figure(info["files"]["energy_png"], "energy trace",
               f"Langevin dynamics (LangevinMiddle, {s['sim_timestep_fs']:g} fs, friction "
               f"{s['sim_friction_per_ps']:g}/ps) at {s['sim_temperature_k']:g} K with the exported model "
               "in NNForce on OpenMM's CPU platform."),
        table([("production", f"{sim['steps']:,} steps = {sim['steps'] * s['sim_timestep_fs'] / FS_PER_PS:g} ps "
                              f"(+ {sim['equilibration_steps']:,} equilibration steps)"),
               ("trajectory frames", ana["frames"]),
               ("mean temperature (K)", sim["temperature_mean_k"]),
               ("speed (ns/day)", sim["ns_per_day"]),
               ("NNForce vs Python energy, same frame (kJ/mol)", info["metrics"]["nnforce_vs_python_kj_mol"])]),
        "</section>"])


def _analysis(info):
    s, ana, files = info["settings"], info["analysis"], info["files"]
    parts = ['<section id="phi-psi"><h2>3. phi/psi free-energy surface</h2><div class="row">',
             figure(files["phi_psi_png"], "phi/psi free energy",
                    f"-kT ln p(phi, psi) of the NNForce trajectory at {s['sim_temperature_k']:g} K "
                    f"({360 / s['phi_psi_bins']:g} deg bins; white: never visited)."),
             figure(files["coverage_png"], "phi/psi coverage",
                    "Training configurations (grey) and the trajectory (blue)."),
             "</div></section>", '<section id="tica"><h2>4. TICA and clustering</h2>']
    if files.get("tica_png"):
        parts.append(figure(files["tica_png"], "TICA free energy",
                            f"-kT ln p on the first two TICA coordinates (features: sin/cos of phi and psi; lag "
                            f"{s['tica_lag_frames']} frames = {ana['tica_lag_ps']:g} ps); dots: k-means centers."))
    parts += [table([("TICA timescales", ana.get("tica_timescales", "n/a"))]), "</section>",
              '<section id="clusters"><h2>5. Cluster populations</h2>',
              figure(files["populations_png"], "cluster populations",
                     f"Fraction of trajectory frames in each of the {s['clusters']} k-means clusters."),
              table([(c["cluster"], c["population"], c["frames"], c["phi_deg"], c["psi_deg"], c["basin"])
                     for c in ana["clusters"]],
                    header=("cluster", "population", "frames", "mean phi (deg)", "mean psi (deg)", "region")),
              table([(name, value) for name, value in ana["basins"].items()], header=("region", "population")),
              "</section>"]
    return "".join(parts)


def _settings_rows(info):
    s = info["settings"]
    checks = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in info["export_checks"].items())
    budget = f", fitted to a {s['sim_time_budget_s']:g} s budget" if s.get("sim_time_budget_s") else ""
    return [("mode / seed", f"{info['mode']} / {info['seed']}"),
            ("molecule", f"alanine dipeptide (ACE-ALA-NME), {info['n_atoms']} atoms, vacuum"),
            ("sampling", f"amber14 (OpenMM), LangevinMiddle {s['sample_timestep_fs']:g} fs, "
                         f"{s['sample_temperature_k']:g} K, friction {s['sample_friction_per_ps']:g}/ps, "
                         f"{len(s['sample_starts_deg'])} starts (phi, psi) = "
                         + ", ".join(f"({a:g}, {b:g})" for a, b in s["sample_starts_deg"])
                         + f"; {s['sample_frames_per_start']} frames each, every "
                         f"{s['sample_interval_steps']} steps after {s['sample_equilibration_steps']}"),
            ("labels", "ANI-1x ensemble (8 networks, NeuroChem files of the torchani 2.1.1 wheel), float64; "
                       "energies kJ/mol, forces kJ/mol/nm"),
            ("split (train/val/test)", "/".join(str(v) for v in s["split"])),
            ("model", json.dumps(s["model"])),
            ("training", json.dumps(s["train"])),
            ("export", f"{os.path.basename(info['files']['model'])}: float32 TorchScript + metadata; "
                       "contract checks " + checks),
            ("simulation", f"NNForce, OpenMM CPU platform, 1 torch thread, LangevinMiddle "
                           f"{s['sim_timestep_fs']:g} fs, {s['sim_temperature_k']:g} K, friction "
                           f"{s['sim_friction_per_ps']:g}/ps, {s['sim_equilibration_steps']} + "
                           f"{info['sim_steps_run']} steps (at most {s['sim_steps']}{budget}), a frame every "
                           f"{s['sim_trajectory_interval']} steps"),
            ("analysis", f"features phi/psi (sin, cos); TICA lag {s['tica_lag_frames']} frames, 2 dims; "
                         f"k-means k={s['clusters']} (seeded); populations = frame counts"),
            ("seeds", f"sampling {1 + 1000 * info['seed']}+start, split/training/k-means {info['seed']}, "
                      f"MD velocities/noise {info['seed'] + 1}")]


def _what_was_run(info):
    timing_rows = [(name, seconds) for name, seconds in info["timings_s"].items()]
    timing_rows.append(("total", info["total_time_s"]))
    file_rows = [(key, os.path.relpath(value, info["out_dir"])) for key, value in info["files"].items()
                 if isinstance(value, str) and not key.endswith("_png")]
    return "".join([
        '<section id="run"><h2>6. What was run</h2>',
        '<div class="row"><div><h3>Timings (s)</h3>' + table(timing_rows, header=("step", "wall time (s)"))
        + "</div><div><h3>Versions</h3>" + table(list(info["versions"].items()), header=("package", "version"))
        + "</div></div>",
        "<h3>Settings</h3>" + table(_settings_rows(info)),
        "<h3>Files</h3>" + table(file_rows, header=("what", "path (in the output folder)")),
        "</section>"])


def write_report(path, info):
    """Write the demo's self-contained HTML report.

    Parameters
    ----------
    path : str
    info : dict
        What :func:`nnforce.demo.run_demo` collected (settings, metrics, simulation, analysis, files, timings,
        versions).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> write_report("demo-output/report.html", info)  # doctest: +SKIP
    """
    body = "\n".join([_header(info), _training(info), _simulation(info), _analysis(info), _what_was_run(info)])
    return write_page(path, TITLE, body, icon=True)
