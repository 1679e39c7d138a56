"""The demo's report: ``report.html``, self-contained (figures embedded, the 3D viewer embedded with its licence,
nothing loaded from elsewhere), built with the shared engine :mod:`nnforce._html`; one function per section."""
import json
import os

from .._html import esc, figure, fmt, structures, table, write_page
from ..units import KJ_PER_KCAL
from .measure import BASINS

TITLE = "nnforce demo: alanine dipeptide"


def _header(info):
    s = info["settings"]
    return f"""<h1>nnforce demo: alanine dipeptide in vacuum</h1>
<p>{esc(info['mode'])} mode, seed {info['seed']}, finished {esc(info['finished_utc'])} in
{info['total_time_s']:.0f} s on {esc(info['host'])}.</p>
<p class="flow">amber14 sampling ({s['sample_temperature_k']:g} K) &rarr; ANI-1x labels &rarr; train
{esc(s['model']['type'].upper())}-style model &rarr; export &rarr; {info['ensemble']['replicas']} NNForce replicas
seeded across C7eq/beta, alpha_R, C7ax, alpha_L, one Context ({s['ensemble_temperature_k']:g} K) &rarr; TICA
&rarr; k-means &rarr; MSM (implied timescales, CK test, PCCA+ states) &rarr; populations vs amber14 &rarr; this
report</p>
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
                                     f"NNForce ensemble frames ({traj.get('n_frames', 0)}) vs ANI-1x")))
    parts.append(f"<p>{info['training']['epochs_run']} epochs in {info['timings_s']['train']:.0f} s "
                 f"(best epoch {info['training']['best_epoch'] + 1}"
                 f"{', stopped early' if info['training']['stopped_early'] else ''}); "
                 f"{s['split'][0]} training / {s['split'][1]} validation / {s['split'][2]} test frames. "
                 "The last column re-labels frames of the NNForce replicas with ANI-1x: the model's error where "
                 "it actually ran.</p>")
    if traj and traj["energy_mae_kj_mol"] > 3.0 * test["energy_mae_kj_mol"] + 5.0:
        parts.append('<p class="warn"><strong>Warning:</strong> on its own replicas the model is much worse than '
                     f'on the test set ({traj["energy_mae_kj_mol"]:.3g} vs {test["energy_mae_kj_mol"]:.3g} kJ/mol): '
                     "the dynamics left the configurations it was trained on (a small model with minutes of "
                     "training has holes). Add those frames to the training data, train longer, or simulate at a "
                     "lower temperature.</p>")
    parts.append("</section>")
    return "".join(parts)


def _ensemble(info):
    s, ens, ana = info["settings"], info["ensemble"], info["analysis"]
    starts = {name: ens["start_basins"].count(name) for name in BASINS}
    built = sum(1 for source in ens["start_sources"] if source < 0)
    return "".join([
        '<section id="ensemble"><h2>2. The ensemble: replicas in one Context</h2>',
        f"<p>{ens['replicas']} replicas of alanine dipeptide, "
        + ", ".join(f"{n} in {esc(name)}" for name, n in starts.items())
        + ", picked from the amber14 sampling of that basin by clustering (nnforce.simulate.seeding)"
        + (f"; {built} built by turning the checked-in structure into a basin the sampling never reached" if built
           else "")
        + ". All replicas run in one OpenMM Context with one NNForce: one model call per step for all of them "
          "(nnforce.simulate.replicas). The same starts, seeds and protocol were run with amber14 as the reference.</p>",
        figure(info["files"]["ensemble_png"], "ensemble trace",
               f"Kinetic temperature of each replica (LangevinMiddle, {s['ensemble_timestep_fs']:g} fs, friction "
               f"{s['ensemble_friction_per_ps']:g}/ps, {s['ensemble_temperature_k']:g} K) and the potential energy "
               "per replica during production."),
        table([("replicas x production", f"{ens['replicas']} x {ens['steps']:,} steps = {ens['replicas']} x "
                                         f"{ens['steps'] * s['ensemble_timestep_fs'] / 1000:g} ps "
                                         f"(after minimization and {ens['equilibration_steps']:,} equilibration steps)"),
               ("frames", f"{ana['frames']:,} (one every {ana['dt_ps']:g} ps per replica)"),
               ("mean temperature (K)", ens["temperature_mean_k"]),
               ("NNForce, all replicas in one Context (ms per step)", ens["ms_per_step"]),
               ("aggregate replica steps per second", ens["aggregate_steps_per_s"]),
               ("amber14 reference ensemble (wall s)", ens["reference_wall_s"]),
               ("NNForce vs Python energy, same frame (kJ/mol)", info["metrics"]["nnforce_vs_python_kj_mol"])]),
        "</section>"])


def _phi_psi(info):
    files = info["files"]
    return "".join([
        '<section id="phi-psi"><h2>3. phi/psi free energy of the ensemble and its metastable states</h2>',
        figure(files["phi_psi_png"], "phi/psi free energy with states",
               f"-kT ln p(phi, psi) at {info['settings']['ensemble_temperature_k']:g} K. Left: all frames as "
               "sampled (the replicas started in every basin, so this is biased by the starts). Right: the frames "
               "reweighted by the MSM's stationary distribution; dots: the frames of each PCCA+ state S1, S2, ...; "
               "stars: each state's representative structure (shown in 3D below). White: never visited."),
        figure(files["coverage_png"], "phi/psi coverage", "Training configurations (grey) and the ensemble (blue)."),
        "</section>"])


def _msm(info):
    ana, files = info["analysis"], info["files"]
    its = ana["implied_timescales_ps"]
    lower, upper = ana["slowest_timescale_interval_ps"]
    rows = [(f"{lag:g}", *[f"{t:.3g} [{lo:.3g}, {hi:.3g}]" for t, lo, hi in zip(ts, los, his)])
            for lag, ts, los, his in zip(its["lags_ps"], its["timescales"], its["lower"], its["upper"])]
    parts = ['<section id="msm"><h2>4. Markov state model: implied timescales and CK test</h2><div class="row">',
             figure(files["timescales_png"], "implied timescales",
                    f"Implied timescales of a reversible MSM on {info['settings']['clusters']} k-means clusters of "
                    f"the TICA coordinates, against the lag; bands: {100 * its['confidence']:.0f}% bootstrap "
                    "intervals (replicas drawn with replacement, seeded). Grey: timescale < lag (not resolvable).")]
    if files.get("ck_png"):
        parts.append(figure(files["ck_png"], "Chapman-Kolmogorov test",
                            "Chapman-Kolmogorov test of the PCCA+ states (panel i -> j: set i is state S(i+1)): the "
                            "MSM's prediction (line) against MSMs estimated at multiples of the lag (dots)."))
    parts.append("</div>")
    parts.append(table([("MSM lag", f"{ana['msm_lag_ps']:g} ps"),
                        ("slowest implied timescale", f"{ana['slowest_timescale_ps']:.3g} ps "
                                                      f"(95% interval {lower:.3g}-{upper:.3g} ps)"),
                        ("next timescales (ps)", ", ".join(f"{t:.3g}" for t in ana["timescales_ps"][1:]) or "n/a"),
                        ("connected clusters (active set)", f"{ana['msm_active_states']} of "
                                                            f"{info['settings']['clusters']}; "
                                                            f"{100 * ana['msm_active_fraction']:.1f}% of the counts"),
                        ("CK test", f"largest deviation {ana['ck_max_deviation']:.3f}" if ana.get("ck_max_deviation")
                         is not None else f"skipped: {ana.get('ck_skipped')}")]))
    parts.append(table(rows, header=("lag (ps)",) + tuple(f"process {k + 1} (ps) [95% interval]"
                                                          for k in range(len(its["timescales"][0])))))
    parts.append("</section>")
    return "".join(parts)


def _states(info):
    ana = info["analysis"]
    states = ana.get("states") or []
    parts = ['<section id="states"><h2>5. Metastable states (PCCA+)</h2>']
    if not states:
        return parts[0] + "<p>No metastable states: the MSM has fewer than two connected states.</p></section>"
    parts.append(f"<p>PCCA+ into {len(states)} sets (as many as the basins the MSM's connected clusters lie in). "
                 "Each state's representative is the frame nearest the center of its most typical cluster; its PDB "
                 "file (and a PDB of sampled member frames) is in <code>analysis/states/</code>.</p>")
    parts.append(structures([{"name": f"S{st['state'] + 1}", "pdb": st["representative"],
                              "caption": f"{st['basin']}, population {st['population']:.3f}, phi {st['phi_deg']:.0f}, "
                                         f"psi {st['psi_deg']:.0f} deg"}
                             for st in states if st.get("representative")],
                            os.path.join(info["out_dir"], "figures", "states")))
    parts.append(table([(f"S{st['state'] + 1}", st["population"], st["frames"], st["basin"],
                         ", ".join(f"{name} {share:.2f}" for name, share in st["composition"].items() if share >= 0.01),
                         os.path.relpath(st["representative"], info["out_dir"]) if st.get("representative") else "n/a")
                        for st in states],
                       header=("state", "MSM population", "frames", "main basin", "basins (MSM-weighted share)",
                               "representative PDB")))
    parts.append("</section>")
    return "".join(parts)


def _populations(info):
    pops = info["analysis"]["populations"]

    def cell(key, name):
        value = pops[key][name]
        interval = pops.get(key + "_interval")
        return f"{value:.3f}" + (f" [{interval[name][0]:.3f}, {interval[name][1]:.3f}]" if interval else "")

    rows = [(name, cell("nnforce_msm", name), cell("nnforce_frames", name), cell("reference_msm", name),
             cell("reference_frames", name), cell("training_500k", name)) for name in BASINS]
    return "".join([
        '<section id="populations"><h2>6. Basin populations: NNForce against amber14</h2>',
        figure(info["files"]["populations_png"], "basin populations",
               "Population of each basin: the MSM's (frames reweighted by the stationary distribution; error bars "
               "95% bootstrap over replicas) and the plain frame fractions, for the NNForce ensemble and the amber14 "
               "ensemble run from the same starts with the same protocol (assigned to the same TICA coordinates and "
               "clusters); and the 500 K amber14 sampling the model was trained on."),
        table(rows, header=("basin", "NNForce MSM [95%]", "NNForce frames", "amber14 MSM [95%]", "amber14 frames",
                            "training data, 500 K")),
        "<p>The model learned ANI-1x (a quantum-chemistry potential), not amber14, so the two need not agree: "
        "amber14 is a reference for what a conventional force field does with the same sampling, not the truth. "
        "Frame fractions reflect where the replicas were started as much as the potential.</p>",
        "</section>"])


def _not_converged(info):
    notes = info["analysis"].get("not_converged") or []
    items = "".join(f"<li>{esc(note)}</li>" for note in notes) or "<li>No warning was raised by the checks.</li>"
    return ('<section id="not-converged"><h2>7. What is not converged</h2><div class="warn"><ul>' + items
            + "</ul></div><p>Checks: MSM connectivity, slowest timescale against the replica length and its bootstrap "
              "interval, implied timescales flat beyond the lag, CK test deviations, replicas that never left their "
              "basin, bootstrap intervals of the populations.</p></section>")


def _tica(info):
    s, ana, files = info["settings"], info["analysis"], info["files"]
    parts = ['<section id="tica"><h2>8. TICA and clusters</h2>']
    if files.get("tica_png"):
        parts.append(figure(files["tica_png"], "TICA free energy",
                            f"-kT ln p on the first two TICA coordinates (features: sin/cos of phi and psi; lag "
                            f"{s['tica_lag_frames']} frames = {ana['tica_lag_ps']:g} ps); dots: k-means centers."))
    parts.append(table([(c["cluster"], c["frames"], c["population"], c["msm_population"], c["phi_deg"], c["psi_deg"],
                         c["basin"]) for c in ana["clusters"]],
                       header=("cluster", "frames", "frame fraction", "MSM population", "mean phi (deg)",
                               "mean psi (deg)", "basin")))
    parts.append("</section>")
    return "".join(parts)


def _pt2_line(info):
    pt2 = info.get("pt2")
    if not pt2:
        return "; the ensemble runs the TorchScript file"
    return (f"; the ensemble runs model.pt2 (AOTInductor, {pt2['precision']} precision, compiled in "
            f"{pt2['compile_s']:.0f} s, cached; NNForce vs Python {pt2['nnforce_vs_python_kj_mol']:.2g} kJ/mol)")


def _settings_rows(info):
    s = info["settings"]
    checks = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in info["export_checks"].items())
    budget = f", fitted to a {s['ensemble_time_budget_s']:g} s budget" if s.get("ensemble_time_budget_s") else ""
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
                       "contract checks " + checks + _pt2_line(info)),
            ("ensemble", f"{4 * s['ensemble_replicas_per_basin']} NNForce replicas in one Context, OpenMM CPU "
                         f"platform, 1 torch thread, LangevinMiddle {s['ensemble_timestep_fs']:g} fs, "
                         f"{s['ensemble_temperature_k']:g} K, friction {s['ensemble_friction_per_ps']:g}/ps, "
                         f"minimization ({s['ensemble_minimize_iterations']} iterations), "
                         f"{s['ensemble_equilibration_steps']} + {info['ensemble']['steps']} steps (at most "
                         f"{s['ensemble_steps']}{budget}), a frame every {s['ensemble_trajectory_interval']} steps; "
                         "amber14 (no cutoff, no constraints) with the same starts and protocol"),
            ("analysis", f"features phi/psi (sin, cos); TICA lag {s['tica_lag_frames']} frames, {s['tica_dim']} dims; "
                         f"k-means k={s['clusters']} (seeded); reversible MSM lag {s['msm_lag_frames']} frames; "
                         f"implied timescales at lags {s['its_lags_frames']} frames, {s['bootstrap_samples']} bootstrap "
                         f"samples; PCCA+ (at most {s['max_metastable_sets']} sets); CK test to "
                         f"{s['ck_multiples'] - 1}x the lag"),
            ("seeds", f"sampling {1 + 1000 * info['seed']}+start, split/training/k-means/bootstrap/start picking "
                      f"{info['seed']} (+ basin), ensemble velocities/noise from {info['seed'] + 1}")]


def _what_was_run(info):
    timing_rows = [(name, seconds) for name, seconds in info["timings_s"].items()]
    timing_rows.append(("total", info["total_time_s"]))
    file_rows = [(key, os.path.relpath(value, info["out_dir"])) for key, value in info["files"].items()
                 if isinstance(value, str) and not key.endswith("_png")]
    return "".join([
        '<section id="run"><h2>9. What was run</h2>',
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
        What :func:`nnforce.demo.run_demo` collected (settings, metrics, ensemble, analysis, files, timings,
        versions).

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> write_report("demo-output/report.html", info)  # doctest: +SKIP
    """
    body = "\n".join([_header(info), _training(info), _ensemble(info), _phi_psi(info), _msm(info), _states(info),
                      _populations(info), _not_converged(info), _tica(info), _what_was_run(info)])
    return write_page(path, TITLE, body, icon=True)
