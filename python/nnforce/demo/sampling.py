"""Stages 5 and 6 of the demo: production with issue 25's sampling protocol (:mod:`nnforce.simulate.metadynamics`)
and the analysis of its replicas (reweighted free energy and basins against the teacher's reference, the MSM of
the biased dynamics, the student against ANI-1x on production frames)."""
import numpy as np

from .measure import basin_populations, errors, phi_psi_of, predict, uncovered_fraction
from .stages import log

__all__ = ["production", "analyze"]


def production(run):
    """5. Issue 25's sampling protocol with the student (:mod:`nnforce.simulate.metadynamics`): well-tempered
    metadynamics on phi/psi builds a bias (one walker), then replicas run under it held fixed, batched in one
    Context, DCDs into ``ensemble/``; the student's cost per step.

    Parameters
    ----------
    run : DemoRun
    """
    from ..force import build_ml_system
    from ..simulate.metadynamics import SamplingProtocol, build_bias, pick_starts, run_biased_replicas
    from ..train.stability import ml_cutoff
    from .figures import plot_production
    from .measure import nnforce_ms_per_step

    s = run.settings
    protocol = SamplingProtocol(metad_steps=int(s["metad_steps"]), replicas=int(s["replicas"]),
                                production_steps=int(s["production_steps"]))
    with run.stage("production", f"metadynamics on phi/psi ({protocol.metad_steps} steps), then "
                                 f"{protocol.replicas} replicas x {protocol.production_steps} steps under the bias "
                                 "held fixed, one Context"):
        model_path = run.files["simulation_model"]
        system = build_ml_system(model_path, run.topology, neighbor_cutoff_nm=ml_cutoff(model_path))
        run.student_ms_per_step = nnforce_ms_per_step(model_path, run.topology, run.positions, steps=500)
        run.student_cpu_ms_per_step = nnforce_ms_per_step.last_cpu_ms
        bias = build_bias(system, run.topology, run.positions, protocol, seed=run.seed + 1,
                          max_wall_s=s.get("metad_max_wall_s"))
        log(f"metadynamics: {bias.steps} steps, {bias.ms_per_step:.2f} ms/step")
        starts = pick_starts(bias, protocol.replicas, seed=run.seed + 2)
        produced = run_biased_replicas(system, run.topology, starts, bias, protocol, seed=run.seed + 3,
                                       out_dir=run.path("ensemble"), max_wall_s=s.get("production_max_wall_s"),
                                       workers=int(s.get("production_workers", 1)))
        log(f"production: {produced.ms_per_step:.2f} ms/step for all {protocol.replicas} replicas")
        run.bias, run.produced, run.protocol = bias, produced, protocol
        run.files["trajectories"] = list(produced.dcd_paths)
        from .._io import atomic_save

        run.files["production_npz"] = run.path("ensemble", "production.npz")
        arrays = {"phi_rad": produced.phi_rad, "psi_rad": produced.psi_rad, "bias_kj_mol": produced.bias_kj_mol,
                  "bias_grid_kj_mol": bias.bias_kj_mol, "grid_rad": bias.grid_rad,
                  "temperature_k": np.float64(protocol.temperature_k), "walker_phi_rad": bias.phi_rad,
                  "walker_psi_rad": bias.psi_rad}
        atomic_save(run.files["production_npz"], lambda tmp: np.savez(tmp, **arrays))
        start_phi, start_psi = phi_psi_of(starts, run.topology)
        from .measure import basin

        run.start_basins = [basin(np.degrees(a), np.degrees(b)) for a, b in zip(start_phi, start_psi)]
        run.files["ensemble_png"] = plot_production(run.path("figures", "ensemble.png"), bias, produced,
                                                    protocol.temperature_k)
        run.ensemble = {"replicas": protocol.replicas, "steps": produced.steps, "metad_steps": bias.steps,
                        "frame_interval_ps": produced.frame_interval_ps, "protocol": protocol.as_dict(),
                        "student_ms_per_step": run.student_ms_per_step,
                        "student_cpu_ms_per_step": run.student_cpu_ms_per_step,
                        "metad_ms_per_step": bias.ms_per_step, "metad_wall_s": bias.wall_s, "metad_cpu_s": bias.cpu_s,
                        "production_ms_per_step_all_replicas": produced.ms_per_step,
                        "production_wall_s": produced.wall_s, "production_cpu_s": produced.cpu_s,
                        "batched": produced.batched, "start_basins": run.start_basins,
                        "temperature_mean_k": float(np.mean(produced.temperature_k)),
                        "metad_temperature_mean_k": float(np.mean(bias.temperature_k))
                        if len(bias.temperature_k) else None}
        run.info["ensemble"] = run.ensemble


def analyze(run):
    """6. The production replicas: the reweighted phi/psi free energy and basin populations (with 95% bootstrap
    intervals over replicas) against the teacher's reference file; TICA -> k-means -> an MSM of the biased dynamics
    with its stationary distribution reweighted per cluster (:mod:`nnforce.demo.conformations`); 200 random
    production frames re-labelled with ANI-1x.

    Parameters
    ----------
    run : DemoRun
    """
    from ..simulate.metadynamics import basin_populations as weighted_basins
    from ..simulate.metadynamics import frame_weights, reweighted_fes
    from .conformations import analyze_ensemble
    from .teacher import load_teacher

    s, files, produced = run.settings, run.files, run.produced
    temperature = run.protocol.temperature_k
    with run.stage("analyze", "reweighted FES and basins vs the teacher; TICA, k-means, MSM (biased dynamics, "
                              "reweighted); the student vs ANI-1x on production frames"):
        dt_ps = produced.frame_interval_ps
        biases = [np.asarray(v, dtype=np.float64) for v in produced.bias_kj_mol]
        conf = analyze_ensemble(files["trajectories"], None, files["structure"], run.path("analysis"), s, run.seed,
                                dt_ps, run.start_basins, biases=biases, temperature_k=temperature)
        conf["populations"]["training_data"] = basin_populations(run.phi_data, run.psi_data)
        weights = frame_weights(produced.bias_kj_mol, temperature)
        bins = int(s["phi_psi_bins"])
        fes = reweighted_fes(produced.phi_rad, produced.psi_rad, weights, temperature, bins)
        student = weighted_basins(produced.phi_rad, produced.psi_rad, weights, n_boot=int(s["bootstrap_samples"]) * 2,
                                  seed=run.seed)
        conf["populations"]["student_reweighted"] = {k: v[0] for k, v in student.items()}
        conf["populations"]["student_reweighted_interval"] = {k: (v[1], v[2]) for k, v in student.items()}
        phi, psi = conf["phi_rad"], conf["psi_rad"]
        conf["uncovered_fraction"] = uncovered_fraction(phi, psi, run.phi_data, run.psi_data, 20.0)
        if conf["uncovered_fraction"] > 0.02:
            conf["not_converged"].append(
                f"{100 * conf['uncovered_fraction']:.0f}% of the production frames lie more than 20 deg (phi/psi) "
                "from every training frame: there the student extrapolates.")
        _check_bonds(run, conf)
        teacher = load_teacher(s.get("teacher_file"), bins)
        run.teacher_comparison = _teacher_comparison(run, conf, fes, student, teacher)
        _figures(run, conf, fes, student, teacher, bins)
        run.conformations = conf
        run.fes = fes
        run.info["analysis"] = _analysis_info(conf, fes, s, dt_ps)
        run.trajectory_check = _trajectory_check(run)


def _check_bonds(run, conf):
    """Replicas in which a covalent bond broke (the student made another molecule: a hole in its surface) are
    listed in ``run.ensemble["bond_breaks"]`` and said in "what is not converged"; their frames stay in every
    estimate (the estimates are the student's, holes included)."""
    from ..train.stability import bond_breaks

    dt_ps = run.produced.frame_interval_ps
    breaks = bond_breaks(run.numbers, run.positions, run.produced.positions_nm)
    names = [f"{atom.residue.name}{atom.residue.index + 1}-{atom.name}" for atom in run.topology.atoms()]
    for item in breaks:
        item["time_ps"] = round(item["frame"] * dt_ps, 3)
        item["atoms"] = [names[i] for i in item["bond"]]
    run.ensemble["bond_breaks"] = breaks
    run.info["ensemble"] = run.ensemble
    if breaks:
        where = "; ".join(f"replica {b['trajectory']} at {b['time_ps']:g} ps ({'-'.join(b['atoms'])} at "
                          f"{b['ratio']:.2f}x its length)" for b in breaks)
        conf["not_converged"].append(
            f"{len(breaks)} of {len(run.produced.positions_nm)} replicas broke a covalent bond: {where}. The student "
            "has a hole there (a region its training data never reached); those frames are in the estimates.")


def _figures(run, conf, fes, student, teacher, bins):
    """The analysis' figures: the two FES, the basins against the teacher, the states, timescales, coverage."""
    from ..analysis import plots
    from .figures import plot_coverage, plot_fes_comparison, plot_states, plot_teacher_populations

    files, dt_ps = run.files, run.produced.frame_interval_ps
    files["fes_png"] = plot_fes_comparison(run.path("figures", "fes.png"), fes,
                                           teacher["fes"] if teacher["available"] else None)
    files["teacher_populations_png"] = plot_teacher_populations(run.path("figures", "basins_vs_teacher.png"),
                                                                student, teacher.get("basins"))
    files["phi_psi_png"] = plot_states(run.path("figures", "phi_psi.png"), conf, run.protocol.temperature_k, bins)
    its = conf["its"]
    files["timescales_png"] = plots.plot_timescales(
        run.path("figures", "timescales.png"), its["lags"], its["timescales"], dt_ps, "ps", its["lower"],
        its["upper"], f"{100 * its['confidence']:.0f}% bootstrap interval (replicas resampled)")
    files["coverage_png"] = plot_coverage(run.path("figures", "coverage.png"), run.phi_data, run.psi_data,
                                          conf["phi_rad"], conf["psi_rad"])
    files["analysis_html"] = conf["files"]["analysis_html"]
    files["tica_png"] = conf["files"]["tica_png"]
    if conf.get("ck_png"):
        files["ck_png"] = conf["ck_png"]


def _teacher_comparison(run, conf, fes, student, teacher):
    """The student's reweighted FES and basins against the teacher's reference, and both costs per step."""
    from ..simulate.metadynamics import fes_comparison
    from .teacher import same_protocol

    comparison = {"teacher_file": teacher.get("path"), "available": teacher["available"]}
    if teacher["available"]:
        comparison.update(fes_comparison(fes, teacher["fes"]))
        comparison["fes_rms_kt"] = comparison.pop("rms_kt")
        comparison["within_kt"] = 4.0
        comparison["teacher_basins"] = teacher["basins"]
        comparison["teacher_ms_per_step"] = teacher.get("ms_per_step")
        comparison["teacher_cpu_ms_per_step"] = teacher.get("cpu_ms_per_step")
        comparison["teacher_costs_ms_per_step"] = teacher.get("costs_ms_per_step")
        comparison["teacher_lengths"] = teacher.get("lengths")
        comparison["teacher_date"] = teacher.get("date")
        comparison["protocol_differs_in"] = same_protocol(run.protocol.as_dict(), teacher.get("protocol"))
        if comparison["protocol_differs_in"]:
            conf["not_converged"].append("The teacher's reference ran a different protocol (" + ", ".join(
                comparison["protocol_differs_in"]) + "): the comparison is not like for like.")
        if comparison["fes_rms_kt"] > 1.0:
            conf["not_converged"].append(
                f"The student's phi/psi free energy differs from the teacher's by {comparison['fes_rms_kt']:.2f} "
                "kT RMS over the bins within 4 kT of the minimum (goal: 1 kT).")
    else:
        comparison["note"] = teacher["note"]
        conf["not_converged"].append(f"No teacher comparison: {teacher['note']}")
    comparison["student_basins"] = student
    comparison["student_ms_per_step"] = run.student_ms_per_step
    comparison["student_cpu_ms_per_step"] = run.student_cpu_ms_per_step
    comparison["student_metad_ms_per_step"] = run.bias.ms_per_step
    if comparison.get("teacher_ms_per_step"):  # both: plain MD of one molecule, CPU platform, 1 thread
        comparison["speedup"] = comparison["teacher_ms_per_step"] / run.student_ms_per_step
    if comparison.get("teacher_cpu_ms_per_step"):
        comparison["speedup_cpu"] = comparison["teacher_cpu_ms_per_step"] / run.student_cpu_ms_per_step
    return comparison


def _trajectory_check(run):
    """The student against ANI-1x on random production frames (seeded): offset-free energy MAE and force MAE, and
    their ratios to the test MAEs."""
    from ..data.label import label_frames

    s, produced = run.settings, run.produced
    positions = np.asarray(produced.positions_nm, dtype=np.float64)
    flat = positions.reshape(-1, positions.shape[-2], 3)
    rng = np.random.default_rng(run.seed + 7)
    pick = np.sort(rng.choice(len(flat), size=min(int(s["teacher_check_frames"]), len(flat)), replace=False))
    frames = flat[pick]
    predicted_e, predicted_f = predict(run.model, run.numbers, frames)
    teacher_e, teacher_f = label_frames(run.teacher, run.numbers, frames)
    check = dict(n_frames=int(len(pick)), **errors(predicted_e, predicted_f, teacher_e, teacher_f))
    difference = np.asarray(predicted_e) - np.asarray(teacher_e)
    check["energy_mae_offset_free_kj_mol"] = float(np.abs(difference - difference.mean()).mean())
    check["energy_offset_kj_mol"] = float(difference.mean())
    check["energy_ratio_to_test"] = check["energy_mae_offset_free_kj_mol"] / run.test_metrics["energy_mae_kj_mol"]
    check["force_ratio_to_test"] = check["force_mae_kj_mol_nm"] / run.test_metrics["force_mae_kj_mol_nm"]
    check["frames"] = [[int(r), int(t)] for r, t in zip(*np.unravel_index(pick, positions.shape[:2]))]
    return check


def _analysis_info(conf, fes, s, dt_ps):
    """What ``run.info["analysis"]`` (and summary.json's ``analysis``) keeps of the analysis."""
    its = conf["its"]
    info = {key: conf[key] for key in (
        "phi_rad", "psi_rad", "populations", "clusters", "replicas", "states",
        "slowest_timescale_ps", "slowest_timescale_interval_ps", "timescales_ps", "msm_active_fraction",
        "msm_active_states", "not_converged", "dt_ps", "uncovered_fraction") if key in conf}
    info.update({
        "frames": int(len(conf["phi_rad"])), "basins": conf["populations"]["nnforce_frames"],
        "n_sets": conf.get("n_sets"), "ck_max_deviation": conf.get("ck_max_deviation"),
        "ck_skipped": conf.get("ck_skipped"), "msm_lag_ps": s["msm_lag_frames"] * dt_ps,
        "tica_lag_ps": s["tica_lag_frames"] * dt_ps, "msm_dynamics": "biased (static metadynamics bias); "
        "stationary distribution reweighted per cluster, pi_i ~ pi_b,i <exp(V/kT)>_i",
        "fes_kt": fes["fes_kt"], "fes_edges_rad": fes["edges_rad"],
        "implied_timescales_ps": {"lags_ps": (its["lags"] * dt_ps).tolist(),
                                  "timescales": (its["timescales"] * dt_ps).tolist(),
                                  "lower": (its["lower"] * dt_ps).tolist(), "upper": (its["upper"] * dt_ps).tolist(),
                                  "confidence": its["confidence"]}})
    return info
