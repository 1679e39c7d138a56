"""The demo's report: ``report.html``, self-contained (figures embedded, the 3D viewer embedded with its licence,
nothing loaded from elsewhere), built with the shared engine :mod:`nnforce._html`; one function per section."""
import json
import os

from .._html import esc, figure, fmt, structures, table, write_page
from .measure import BASINS

TITLE = "nnforce demo: alanine dipeptide"


def _header(info):
    s, ens = info["settings"], info["ensemble"]
    d = info["distillation"]
    return f"""<h1>nnforce demo: alanine dipeptide in vacuum</h1>
<p>{esc(info['mode'])} mode, seed {info['seed']}, finished {esc(info['finished_utc'])} in
{info['total_time_s']:.0f} s on {esc(info['host'])}.</p>
<p class="flow">amber14 sampling ({s['sample_temperature_k']:g} K) &rarr; ANI-1x labels &rarr; distillation by active
learning ({len(d['rounds'])} rounds: a committee explores with metadynamics on phi/psi, ANI-1x labels what it
disagrees on and where the data are thin) &rarr; the student ({esc(s['model']['type'].upper())}-style, .pt2) &rarr;
production with issue 25's protocol (metadynamics builds a bias, {ens['replicas']} replicas under it held fixed, one
Context) &rarr; reweighted phi/psi free energy and basins vs the teacher ANI-1x &rarr; TICA, k-means, MSM &rarr; this
report</p>
"""


def _training(info):
    m, d = info["metrics"], info["distillation"]
    test, base, traj = m["test"], m["baseline"], m.get("trajectory_vs_teacher") or {}
    parts = ['<section id="training"><h2>1. Distillation: a small student learns ANI-1x by active learning</h2>']
    rows = [(r["round"], r["frames"], r.get("test_energy_mae_kj_mol", "n/a"), r.get("test_force_mae_kj_mol_nm", "n/a"),
             r.get("explored_ps", "-"), _range(r.get("explored_torsion_range_deg")),
             r.get("explored_uncovered_fraction", "-"), r.get("fresh_energy_mae_kj_mol", "-"),
             r.get("fresh_force_mae_kj_mol_nm", "-"), r.get("added", "-"),
             {True: "yes", False: "no"}.get(r.get("converged"), "-")) for r in d["rounds"]]
    parts.append("<p>The loop is the library's (<code>nnforce.train.learn</code>, as run by <code>nnforce learn</code>): "
                 f"each round trains a committee of {info['settings']['distil']['members']} small ANI-style models on "
                 "the data, explores with it at 300 K under well-tempered metadynamics on phi/psi "
                 "(<code>openmm.app.Metadynamics</code>), measures its error on fresh explored frames labelled by "
                 "ANI-1x, and labels the frames its members disagree on most (raised where no training frame lies "
                 "within 20 deg in phi/psi). "
                 + ("Each round's members continue from the previous round's weights. " if d.get("warm_start") else "")
                 + f"It stops when the fresh frames' errors are within {d['stop_ratio']:g}x the test errors "
                 + (f"(after at least {d['min_rounds']} rounds of exploration) " if d.get("min_rounds") else "")
                 + "or after the last round. "
                 + ("It converged." if d["converged"] else "It did not converge within the rounds.") + "</p>")
    parts.append(table(rows, header=("round", "training frames", "committee test E MAE (kJ/mol)",
                                     "test F MAE (kJ/mol/nm)", "explored (ps)", "phi / psi range explored (deg)",
                                     "explored frames > 20 deg from the data", "fresh E MAE (offset-free)",
                                     "fresh F MAE", "frames added", "converged")))
    parts.append(figure(info["files"]["training_png"], "training curve",
                        "The student (member 0 of the last committee, trained on on all the data). Left: loss per "
                        "epoch. Middle: validation MAEs with the trivial baselines (dotted). Right: test-set "
                        "energies, student vs the ANI-1x teacher."))
    rows = [("energy MAE (kJ/mol)", test["energy_mae_kj_mol"], base["energy_mae_kj_mol"],
             traj.get("energy_mae_offset_free_kj_mol", "n/a")),
            ("energy RMSE (kJ/mol)", test["energy_rmse_kj_mol"], base["energy_rmse_kj_mol"],
             traj.get("energy_rmse_kj_mol", "n/a")),
            ("force MAE (kJ/mol/nm)", test["force_mae_kj_mol_nm"], base["force_mae_kj_mol_nm"],
             traj.get("force_mae_kj_mol_nm", "n/a")),
            ("force RMSE (kJ/mol/nm)", test["force_rmse_kj_mol_nm"], base["force_rmse_kj_mol_nm"],
             traj.get("force_rmse_kj_mol_nm", "n/a"))]
    parts.append(table(rows, header=("metric", f"test set ({test['n_frames']} amber14 frames, never trained on)",
                                     "baseline (mean energy, zero force)",
                                     f"{traj.get('n_frames', 0)} random production frames vs ANI-1x "
                                     "(energy: offset-free)")))
    if traj:
        ok = traj["energy_ratio_to_test"] <= 2 and traj["force_ratio_to_test"] <= 2
        parts.append(f'<p class="{"" if ok else "warn"}">On frames of its own production run the student is '
                     f"{traj['energy_ratio_to_test']:.2f}x its test energy MAE (offset-free; mean offset "
                     f"{traj['energy_offset_kj_mol']:.3g} kJ/mol) and {traj['force_ratio_to_test']:.2f}x its test "
                     "force MAE (goal: at most 2x each) "
                     + ("&mdash; met." if ok else "&mdash; <strong>not met</strong>: the production visits "
                        "configurations the data do not cover well.") + "</p>")
    parts.append(f"<p>Student training: {info['training']['epochs_run']} epochs (best epoch "
                 f"{info['training']['best_epoch'] + 1}), started from {esc(info['training']['started_from'])}; "
                 f"{d['initial_frames']} initial frames"
                 + (f" ({d['initial_amber_frames']} amber14 frames at 500 K, {d['stretched_bond_frames']} copies "
                    f"with one covalent bond stretched and {d.get('close_contact_frames', 0)} with two atoms three or "
                    "more bonds apart pushed together, all labelled by ANI-1x: the teacher's walls)"
                    if d.get("initial_amber_frames") is not None else "")
                 + f", {d['final_frames']} after active learning.</p>")
    if info["files"].get("learning_curve_png"):
        parts.append(figure(info["files"]["learning_curve_png"], "learning curve",
                            "The committee's test errors and the training frames per round (nnforce learn)."))
    parts.append("</section>")
    return "".join(parts)


def _num(value):
    return "n/a" if value is None else fmt(value)


def _range(ranges):
    if not ranges:
        return "-"
    return " / ".join(f"{low:.0f}..{high:.0f}" for low, high in ranges)


def _ensemble(info):
    ens, ana, comp = info["ensemble"], info["analysis"], info.get("teacher_comparison") or {}
    p = ens["protocol"]
    return "".join([
        '<section id="ensemble"><h2>2. Production: metadynamics, then replicas under the bias held fixed</h2>',
        "<p>Issue 25's protocol (<code>nnforce.simulate.metadynamics</code>, the same settings as the teacher's "
        "reference; only the lengths differ): phase 1, one walker with well-tempered metadynamics on phi/psi "
        "(<code>openmm.app.Metadynamics</code>) builds a bias that fills the basins; phase 2, replicas started from "
        "the walker's frames run under that bias <em>held fixed</em>, all in one OpenMM Context with one NNForce, so "
        "every frame's unbiased weight is exactly exp(V/kT).</p>",
        figure(info["files"]["ensemble_png"], "ensemble trace",
               "Top: the metadynamics walker's phi and psi. Bottom: the replicas' kinetic temperature."),
        table([("protocol", ", ".join(f"{k} {v}" for k, v in p.items())),
               ("phase 1", f"{ens['metad_steps']:,} steps ({ens['metad_steps'] * p['timestep_fs'] / 1000:g} ps), "
                           f"{ens['metad_ms_per_step']:.3f} ms/step, {ens['metad_wall_s']:.0f} s"),
               ("phase 2", f"{ens['replicas']} replicas x {ens['steps']:,} steps "
                           f"({ens['steps'] * p['timestep_fs'] / 1000:g} ps each), "
                           f"{ens['production_ms_per_step_all_replicas']:.3f} ms/step for all, "
                           f"{ens['production_wall_s']:.0f} s"),
               ("frames", f"{ana['frames']:,} (one every {ana['dt_ps']:g} ps per replica)"),
               ("mean temperature (K)", ens["temperature_mean_k"]),
               ("student, plain MD (ms/step, CPU platform, 1 thread): wall / CPU received",
                f"{ens['student_ms_per_step']:.3f} / {ens['student_cpu_ms_per_step']:.3f}"),
               ("teacher ANI-1x, plain MD (ms/step, same probe, from its reference run): wall / CPU received",
                f"{_num(comp.get('teacher_ms_per_step'))} / {_num(comp.get('teacher_cpu_ms_per_step'))}"),
               ("teacher / student cost per step: wall / CPU", f"{_num(comp.get('speedup'))} / "
                                                                f"{_num(comp.get('speedup_cpu'))} (goal: >= 5)"),
               ("student, phase 1 with the bias (ms/step, wall)", ens["metad_ms_per_step"]),
               ("NNForce vs Python energy, same frame (kJ/mol)", info["metrics"]["nnforce_vs_python_kj_mol"])]),
        "</section>"])


def _phi_psi(info):
    files, comp = info["files"], info.get("teacher_comparison") or {}
    if comp.get("available"):
        verdict = (f"RMS difference {comp['fes_rms_kt']:.2f} kT over the {comp['bins']} bins within 4 kT of either "
                   f"minimum, after removing the mean offset ({comp['offset_kt']:.2f} kT); bins within 4 kT on one "
                   f"surface the other never sampled: {comp['missing_in_a']} (student), {comp['missing_in_b']} "
                   f"(teacher). Goal: at most 1 kT &mdash; {'met' if comp['fes_rms_kt'] <= 1 else 'not met'}.")
    else:
        verdict = f"No teacher reference: {esc(comp.get('note', ''))}"
    return "".join([
        '<section id="phi-psi"><h2>3. phi/psi free energy: student against teacher</h2>',
        figure(files["fes_png"], "phi/psi free energy student vs teacher",
               "-ln p(phi, psi) in kT from the production frames reweighted by exp(V/kT) (the bias held fixed), "
               "student and teacher (ANI-1x, the same protocol; bench/teacher_fes.py), and their difference over "
               "the bins within 4 kT of either minimum (mean removed). White: never visited."),
        f"<p>{verdict}</p>",
        figure(files["phi_psi_png"], "phi/psi free energy with states",
               f"The student's production at {info['ensemble']['protocol']['temperature_k']:g} K. Left: frames as "
               "sampled (under the bias). Right: reweighted by the MSM's stationary distribution with the bias "
               "removed; dots: the frames of each PCCA+ state S1, S2, ...; stars: each state's representative."),
        figure(files["coverage_png"], "phi/psi coverage",
               "Training configurations after active learning (grey) and the production frames (blue)."),
        "</section>"])


def _msm(info):
    ana, files = info["analysis"], info["files"]
    its = ana["implied_timescales_ps"]
    lower, upper = ana["slowest_timescale_interval_ps"]
    rows = [(f"{lag:g}", *[f"{t:.3g} [{lo:.3g}, {hi:.3g}]" for t, lo, hi in zip(ts, los, his)])
            for lag, ts, los, his in zip(its["lags_ps"], its["timescales"], its["lower"], its["upper"])]
    parts = ['<section id="msm"><h2>4. Markov state model: implied timescales and CK test</h2>',
             "<p>The MSM is built on the production replicas, which ran under the static bias: its implied "
             "timescales are those of the <strong>biased</strong> dynamics (barriers lowered by the bias), not the "
             "molecule's. Its stationary distribution is reweighted per cluster, pi_i ~ pi_b,i &lt;exp(V/kT)&gt;_i, "
             "for the populations below.</p><div class=\"row\">",
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
    pops, comp = info["analysis"]["populations"], info.get("teacher_comparison") or {}
    student, teacher = comp.get("student_basins") or {}, comp.get("teacher_basins") or {}

    def cell(values, name):
        if name not in values:
            return "n/a"
        value, low, high = values[name]
        return f"{value:.3f} [{low:.3f}, {high:.3f}]"

    msm = pops["nnforce_msm"]
    interval = pops["nnforce_msm_interval"]
    rows = [(name, cell(student, name), cell(teacher, name),
             f"{msm[name]:.3f} [{interval[name][0]:.3f}, {interval[name][1]:.3f}]",
             f"{pops['nnforce_frames'][name]:.3f}", f"{pops['training_data'][name]:.3f}") for name in BASINS]
    return "".join([
        '<section id="populations"><h2>6. Basin populations: student against teacher</h2>',
        figure(info["files"]["teacher_populations_png"], "basin populations",
               "The four basins' populations from the frames reweighted by exp(V/kT), with 95% bootstrap intervals "
               "over replicas, for the student and the teacher (ANI-1x, the same protocol)."),
        table(rows, header=("basin", "student, reweighted [95%]", "teacher ANI-1x, reweighted [95%]",
                            "student, MSM reweighted [95%]", "student, frames (biased)", "training data, frames")),
        "</section>"])


def _not_converged(info):
    notes = info["analysis"].get("not_converged") or []
    items = "".join(f"<li>{esc(note)}</li>" for note in notes) or "<li>No warning was raised by the checks.</li>"
    return ('<section id="not-converged"><h2>7. What is not converged</h2><div class="warn"><ul>' + items
            + "</ul></div><p>Checks: MSM connectivity, slowest timescale against the replica length and its bootstrap "
              "interval, implied timescales flat beyond the lag, CK test deviations, replicas that never left their "
              "basin, bootstrap intervals of the populations, frames far from the training data, the free energy "
              "against the teacher's.</p></section>")


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
        return "; production runs the TorchScript file"
    return (f"; production runs model.pt2 (AOTInductor, {pt2['precision']} precision, compiled in "
            f"{pt2['compile_s']:.0f} s, cached; NNForce vs Python {pt2['nnforce_vs_python_kj_mol']:.2g} kJ/mol)")


def _settings_rows(info):
    s = info["settings"]
    checks = ", ".join(f"{k}={fmt(v) if isinstance(v, float) else v}" for k, v in info["export_checks"].items())
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
            ("initial split (active learning / test)", f"{s['split'][0] + s['split'][1]} / {s['split'][2]}"),
            ("model", json.dumps(s["model"])),
            ("distillation (nnforce.train.learn)", json.dumps(s["distil"])),
            ("student training", json.dumps(s["student_train"])),
            ("export", f"{os.path.basename(info['files']['model'])}: float32 TorchScript + metadata; "
                       "contract checks " + checks + _pt2_line(info)),
            ("production", f"nnforce.simulate.metadynamics.SamplingProtocol {json.dumps(info['ensemble']['protocol'])}"
                           "; OpenMM CPU platform, 1 torch thread"),
            ("analysis", f"reweighted FES on {s['phi_psi_bins']}x{s['phi_psi_bins']} bins; features phi/psi (sin, "
                         f"cos); TICA lag {s['tica_lag_frames']} frames, {s['tica_dim']} dims; k-means "
                         f"k={s['clusters']} (seeded); reversible MSM lag {s['msm_lag_frames']} frames; implied "
                         f"timescales at lags {s['its_lags_frames']} frames, {s['bootstrap_samples']} bootstrap "
                         f"samples; PCCA+ (at most {s['max_metastable_sets']} sets); CK test to "
                         f"{s['ck_multiples'] - 1}x the lag; {s['teacher_check_frames']} random production frames "
                         "re-labelled with ANI-1x"),
            ("seeds", f"sampling {1 + 1000 * info['seed']}+start, split/training/k-means/bootstrap {info['seed']}, "
                      f"active learning from {info['seed']} (learn's own offsets), metadynamics {info['seed'] + 1}, "
                      f"replica starts {info['seed'] + 2}, replicas {info['seed'] + 3}")]


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
