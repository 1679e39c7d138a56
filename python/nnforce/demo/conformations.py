"""The demo's conformational analysis of the production replicas, all with :mod:`nnforce.analysis` (deeptime
underneath): phi/psi features -> TICA -> k-means -> a reversible MSM; implied timescales with bootstrap confidence
intervals over replicas; PCCA+ metastable states with a representative structure each; a Chapman-Kolmogorov test;
basin populations (frame counts and MSM-reweighted, with bootstrap intervals); and a plain list of what is not
converged.

The replicas ran under a static metadynamics bias V(phi, psi) (issue 25's protocol): the MSM describes the biased
dynamics, so its implied timescales are those of the biased system, and its stationary distribution is reweighted
per cluster to the unbiased one, ``pi_i ~ pi_b,i <exp(V/kT)>_i``
(:func:`nnforce.simulate.metadynamics.reweight_stationary`); within a cluster the frames are weighted by
``exp(V/kT)``.
"""
import os
import warnings

import numpy as np

from .measure import BASINS, basin, basin_indices, basin_populations, circular_mean_deg

__all__ = ["analyze_ensemble"]


def _features(paths, structure):
    """sin/cos phi/psi of each trajectory (the featurizer ``nnforce analyze`` uses for ``phi_psi``)."""
    from ..analysis.features import parse_features
    from ..analysis.stream import featurize, load_topology

    return featurize(paths, load_topology(structure), parse_features(["phi_psi"]))


def _angles(features):
    """(phi, psi) radians per trajectory from sin/cos phi/psi features (columns: phi sin, phi cos, psi sin, psi cos)."""
    return [(np.arctan2(f[:, 0], f[:, 1]), np.arctan2(f[:, 2], f[:, 3])) for f in features]


def unbiased_frame_weights(model, biases=None, temperature_k=300.0):
    """Per-trajectory frame weights of an MSM fitted on trajectories run under a static bias: frame f of active
    cluster c gets ``pi_b,c exp(V_f/kT) / n_c`` (normalised over all frames), so cluster c's total is
    ``pi_b,c <exp(V/kT)>_c`` -- the reweighted stationary distribution -- and within the cluster the frames are
    weighted as the bias demands. Without ``biases``: the MSM's own weights ``pi_c / n_c``."""
    from ..units import MOLAR_GAS_CONSTANT_KJ_MOL_K

    weights = model.frame_weights()
    if biases is None:
        return weights
    x = [np.asarray(v, dtype=np.float64) / (MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k) for v in biases]
    shift = max(float(v.max()) for v in x)
    weights = [w * np.exp(v - shift) for w, v in zip(weights, x)]
    total = sum(float(w.sum()) for w in weights)
    return [w / total for w in weights]


def _msm_basins(dtrajs, angles, lag, n_states, biases=None, temperature_k=300.0):
    """Basin populations of the trajectories reweighted by their own MSM (frames outside its active set: 0), the
    static bias removed when ``biases`` (per trajectory, kJ/mol per frame) are given."""
    from ..analysis.msm import MSM

    model = MSM(dtrajs, lag, n_states=n_states)
    weights = np.concatenate(unbiased_frame_weights(model, biases, temperature_k))
    phi = np.concatenate([a[0] for a in angles])
    psi = np.concatenate([a[1] for a in angles])
    return basin_populations(phi, psi, weights), model


def _with_interval(dtrajs, angles, lag, n_states, n_samples, seed, biases=None, temperature_k=300.0):
    """MSM basin populations, and their 95% bootstrap interval over trajectories."""
    from ..analysis.msm import bootstrap

    estimate, model = _msm_basins(dtrajs, angles, lag, n_states, biases, temperature_k)
    biases = [None] * len(dtrajs) if biases is None else list(biases)
    triples = list(zip(dtrajs, angles, biases))

    def statistic(sample):
        v = [b for _, _, b in sample]
        return list(_msm_basins([d for d, _, _ in sample], [a for _, a, _ in sample], lag, n_states,
                                None if v[0] is None else v, temperature_k)[0].values())

    samples = bootstrap(triples, statistic, n_samples, seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # resamples without a basin's frames are NaN
        lower, upper = np.nanpercentile(samples, 2.5, axis=0), np.nanpercentile(samples, 97.5, axis=0)
    interval = {name: (float(lower[k]), float(upper[k])) for k, name in enumerate(BASINS)}
    return estimate, interval, model


def _cluster_table(dtrajs, angles, weights, n_clusters):
    """Frames, frame fraction, MSM population (unbiased), circular-mean phi/psi and basin of each cluster."""
    labels = np.concatenate(dtrajs)
    phi = np.concatenate([a[0] for a in angles])
    psi = np.concatenate([a[1] for a in angles])
    counts = np.bincount(labels, minlength=n_clusters)
    stationary = np.bincount(labels, weights=np.concatenate(weights), minlength=n_clusters)
    rows = []
    for c in range(n_clusters):
        chosen = labels == c
        mean_phi = circular_mean_deg(phi[chosen]) if chosen.any() else float("nan")
        mean_psi = circular_mean_deg(psi[chosen]) if chosen.any() else float("nan")
        rows.append({"cluster": c, "frames": int(counts[c]), "population": float(counts[c] / len(labels)),
                     "msm_population": float(stationary[c]), "phi_deg": mean_phi, "psi_deg": mean_psi,
                     "basin": basin(mean_phi, mean_psi) if chosen.any() else "empty"})
    return rows


def _n_sets(msm, dtrajs, angles, most):
    """PCCA+ sets: as many as the basins the MSM's active clusters lie in (by their frames' majority), 2..most."""
    labels = np.concatenate(dtrajs)
    index = np.concatenate([basin_indices(*a) for a in angles])
    seen = {int(np.bincount(index[labels == c], minlength=len(BASINS)).argmax()) for c in msm.active_set}
    return int(min(max(len(seen), 2), most, len(msm.active_set)))


def _metastable(result, msm, weights, dtrajs, angles, settings, seed, out_dir, dt_ps, structure):
    """PCCA+ states (populations, basins, a representative PDB and samples each) and the CK test."""
    from ..analysis import plots
    from ..analysis.msm import ck_test
    from ..analysis.structures import state_representatives, write_state_structures

    if len(msm.active_set) < 2:
        return {"states": [], "note": "the MSM has fewer than 2 connected states: no metastable states"}
    n_sets = _n_sets(msm, dtrajs, angles, int(settings["max_metastable_sets"]))
    while True:  # PCCA+ can fail on a nearly degenerate spectrum: then fewer sets
        try:
            sets = msm.pcca(n_sets)
            break
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
            if n_sets == 2:
                return {"states": [], "note": f"PCCA+ failed: {error}"}
            n_sets -= 1
    assignment = sets["assignment"]
    state_dtrajs = [np.where(d >= 0, assignment[np.maximum(d, 0)], -1) for d in dtrajs]
    reps = state_representatives(sets["memberships"], msm.active_set, result["projection"], dtrajs,
                                 result["clusterer"].centers)
    written = write_state_structures(result["trajectories"], structure, state_dtrajs, os.path.join(out_dir, "states"),
                                     n_samples=3, seed=seed, representatives=reps, prefix="state")
    states = []
    for s in range(n_sets):
        in_state = [w * (d == s) for w, d in zip(weights, state_dtrajs)]
        composition = basin_populations(np.concatenate([a[0] for a in angles]), np.concatenate([a[1] for a in angles]),
                                        np.concatenate(in_state)) if sum(x.sum() for x in in_state) > 0 else {}
        t, f = reps.get(s, (None, None))
        states.append({"state": s, "population": float(sum(x.sum() for x in in_state)),
                       "biased_population": float(sets["populations"][s]),
                       "basin": max(composition, key=composition.get) if composition else "n/a",
                       "composition": composition, "frames": int(sum((d == s).sum() for d in state_dtrajs)),
                       "representative": written.get(s, {}).get("representative"),
                       "samples": written.get(s, {}).get("samples"),
                       "representative_frame": None if t is None else {"replica": int(t), "frame": int(f)},
                       "phi_deg": None if t is None else float(np.degrees(angles[t][0][f])),
                       "psi_deg": None if t is None else float(np.degrees(angles[t][1][f]))})
    out = {"states": states, "n_sets": n_sets, "state_dtrajs": state_dtrajs}
    try:
        lagtimes, predicted, estimated = ck_test(dtrajs, int(settings["msm_lag_frames"]), n_sets,
                                                 mlags=int(settings["ck_multiples"]))
        out["ck_png"] = plots.plot_ck_test(os.path.join(out_dir, "ck_test.png"), lagtimes, predicted, estimated,
                                           dt_ps, "ps")
        out["ck_max_deviation"] = float(np.abs(predicted - estimated)[1:].max())
        out["ck_lagtimes_ps"] = (np.asarray(lagtimes) * dt_ps).tolist()
    except ValueError as error:
        out["ck_skipped"] = str(error)
    return out


def _replica_table(angles, start_basins):
    """Per replica: its start basin, the basins it visited and how often its basin changed between saved frames."""
    rows = []
    for k, (phi, psi) in enumerate(angles):
        index = basin_indices(phi, psi)
        rows.append({"replica": k, "start": start_basins[k], "visited": [BASINS[i] for i in sorted(set(index))],
                     "changes": int((index[1:] != index[:-1]).sum()), "last": BASINS[int(index[-1])]})
    return rows


def _not_converged(conf, settings, replica_ps, dt_ps):
    """Plain sentences on what the ensemble did not converge."""
    notes, its = [], conf["its"]
    if conf["msm_active_fraction"] < 0.999:
        outside = [name for name in BASINS if conf["populations"]["nnforce_frames"][name] > 0
                   and conf["populations"]["nnforce_msm"][name] == 0.0]
        notes.append(f"The MSM covers {100 * conf['msm_active_fraction']:.1f}% of the transitions: the rest were in "
                     "clusters never connected both ways to the others"
                     + (f" (basins {', '.join(outside)} get no MSM population)" if outside else "")
                     + ". No replica crossed between them and the others in both directions, so their relative "
                       "weights are unknown.")
    slow = conf["slowest_timescale_ps"]
    if slow > replica_ps:
        notes.append(f"The slowest implied timescale ({slow:.3g} ps, of the dynamics the replicas ran) is longer than "
                     f"one replica ({replica_ps:g} ps): that process is not sampled to equilibrium.")
    lower, upper = conf["slowest_timescale_interval_ps"]
    if np.isfinite(lower) and np.isfinite(upper) and lower > 0 and upper / lower > 2:
        notes.append(f"The slowest timescale's 95% bootstrap interval spans a factor {upper / lower:.1f} "
                     f"({lower:.3g}-{upper:.3g} ps): too few transitions to pin it down.")
    k = list(its["lags"]).index(int(settings["msm_lag_frames"]))
    if k + 1 < len(its["lags"]):
        later = its["timescales"][k + 1:, 0]
        if np.any(np.isfinite(later)) and np.nanmax(later) > 1.25 * its["timescales"][k, 0]:
            notes.append("The slowest implied timescale still grows with the lag after the MSM's lag "
                         f"({int(settings['msm_lag_frames']) * dt_ps:g} ps): the MSM is not Markovian at that lag.")
    if conf.get("ck_max_deviation", 0.0) > 0.1:
        notes.append(f"The Chapman-Kolmogorov test deviates by up to {conf['ck_max_deviation']:.2f} in a transition "
                     "probability between metastable states.")
    if not conf.get("states"):
        notes.append(f"No metastable states: {conf.get('note', 'PCCA+ was not run')}.")
    if "ck_skipped" in conf:
        notes.append(f"No Chapman-Kolmogorov test: {conf['ck_skipped']}")
    stuck = sum(1 for row in conf["replicas"] if row["changes"] == 0)
    if stuck:
        notes.append(f"{stuck} of {len(conf['replicas'])} replicas never left their starting basin.")
    wide = [name for name, (lo, hi) in conf["populations"]["nnforce_msm_interval"].items() if hi - lo > 0.2]
    if wide:
        notes.append("MSM basin populations with a 95% interval wider than 0.2: " + ", ".join(wide) + ".")
    return notes


def _reference(reference_paths, structure, result, populations, lag, k, s, seed):
    """Another potential's ensemble (if any) on the same TICA coordinates and clusters: its frame and MSM basin
    populations go into ``populations``; returns its angles per trajectory (None without one)."""
    if not reference_paths:
        return None
    reference = _features(reference_paths, structure)
    reference_dtrajs = result["clusterer"].predict(result["tica"].transform(reference))
    reference_angles = _angles(reference)
    populations["reference_frames"] = basin_populations(np.concatenate([a[0] for a in reference_angles]),
                                                        np.concatenate([a[1] for a in reference_angles]))
    populations["reference_msm"], populations["reference_msm_interval"], _ = _with_interval(
        reference_dtrajs, reference_angles, lag, k, int(s["bootstrap_samples"]), seed)
    return reference_angles


def analyze_ensemble(paths, reference_paths, structure, out_dir, settings, seed, dt_ps, start_basins, biases=None,
                     temperature_k=300.0):
    """The ensemble's MSM analysis (and, with ``reference_paths``, its comparison with another potential's ensemble
    on the same clusters).

    Parameters
    ----------
    paths : list of str
        The NNForce replicas' trajectories.
    reference_paths : list of str or None
        Another potential's replicas (same starts and protocol), or None.
    structure : str
        The molecule's PDB.
    out_dir : str
        Gets the analysis package's outputs (``analysis.html``, features, projections, structures) and the
        metastable states' PDB files (``states/``).
    settings : dict
        The demo's settings (``tica_*``, ``clusters``, ``msm_lag_frames``, ``its_*``, ``bootstrap_samples``, ...).
    seed : int
        k-means, bootstrap and structure sampling.
    dt_ps : float
        Time between saved frames.
    start_basins : list of str
        The basin each replica started in.
    biases : list of arrays, optional
        The static bias (kJ/mol) each trajectory's frames felt: populations and the MSM's stationary distribution
        are reweighted to the unbiased ensemble (:func:`unbiased_frame_weights`).
    temperature_k : float

    Returns
    -------
    dict
        ``phi_rad``/``psi_rad`` (all frames, replica after replica), ``angles`` (per replica), ``dtrajs``,
        ``msm`` (:class:`nnforce.analysis.msm.MSM`), ``its`` (:func:`~nnforce.analysis.msm.bootstrap_timescales`),
        ``slowest_timescale_ps`` and its interval, ``states`` (PCCA+), ``populations`` (``nnforce_frames``,
        ``nnforce_msm`` and interval, ``reference_frames``, ``reference_msm`` and interval), ``clusters``,
        ``replicas``, ``not_converged``, ``files`` and the analysis package's result (``result``).

    Examples
    --------
    >>> conf = analyze_ensemble(nn_files, amber_files, "ala2.pdb", "analysis", SETTINGS["small"], 0, 0.005,
    ...                         basins)  # doctest: +SKIP
    """
    from ..analysis import analyze
    from ..analysis.msm import bootstrap_timescales

    s = settings
    lag = int(s["msm_lag_frames"])
    its_lags = sorted(set(int(v) for v in s["its_lags_frames"]) | {lag})
    result = analyze(paths, structure, out_dir, features=["phi_psi"],
                     reduce=f"tica:lag={int(s['tica_lag_frames'])},dim={int(s['tica_dim'])}",
                     cluster=f"kmeans:k={int(s['clusters'])}", msm=f"lag={lag}",
                     temperature_k=temperature_k, seed=seed, n_samples=3, dt_ps=dt_ps)
    result["trajectories"] = list(paths)
    dtrajs, k = result["dtrajs"], int(s["clusters"])
    angles = _angles(result["features"])
    populations = {"nnforce_frames": basin_populations(np.concatenate([a[0] for a in angles]),
                                                       np.concatenate([a[1] for a in angles]))}
    populations["nnforce_msm"], populations["nnforce_msm_interval"], msm = _with_interval(
        dtrajs, angles, lag, k, int(s["bootstrap_samples"]), seed, biases, temperature_k)
    weights = unbiased_frame_weights(msm, biases, temperature_k)
    reference_angles = _reference(reference_paths, structure, result, populations, lag, k, s, seed)
    its = bootstrap_timescales(dtrajs, its_lags, n_its=int(s["its_processes"]), n_samples=int(s["bootstrap_samples"]),
                               seed=seed)
    at = its_lags.index(lag)
    conf = {"phi_rad": np.concatenate([a[0] for a in angles]), "psi_rad": np.concatenate([a[1] for a in angles]),
            "angles": angles, "dtrajs": dtrajs, "msm": msm, "its": its, "result": result, "populations": populations,
            "msm_active_fraction": msm.active_fraction, "msm_active_states": int(len(msm.active_set)),
            "slowest_timescale_ps": float(msm.timescales(1)[0] * dt_ps) if len(msm.active_set) > 1 else float("nan"),
            "slowest_timescale_interval_ps": (float(its["lower"][at, 0] * dt_ps), float(its["upper"][at, 0] * dt_ps)),
            "timescales_ps": (np.asarray(msm.timescales(int(s["its_processes"]))) * dt_ps).tolist(),
            "clusters": _cluster_table(dtrajs, angles, weights, k), "replicas": _replica_table(angles, start_basins),
            "dt_ps": dt_ps, "biased": biases is not None, "frame_weights": weights,
            "files": {"analysis_html": result["files"]["html"], "tica_png": result["files"].get("fes")}}
    if reference_angles is not None:
        conf["reference_replicas"] = _replica_table(reference_angles, start_basins)
    conf.update(_metastable(result, msm, weights, dtrajs, angles, s, seed, out_dir, dt_ps, structure))
    replica_ps = min(len(d) for d in dtrajs) * dt_ps
    conf["not_converged"] = _not_converged(conf, s, replica_ps, dt_ps)
    return conf
