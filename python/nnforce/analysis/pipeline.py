"""The whole analysis in one call: featurize -> reduce -> cluster -> MSM -> plots, structures and an HTML report.

``analyze(traj_files, top, out_dir, ...)`` writes into ``out_dir``:
``features.npz`` (features + labels), ``projection.npz`` (reduced coordinates, cluster labels),
PNG figures, PDB structures per cluster and per metastable set, ``summary.json`` and ``analysis.html``
(self-contained: figures embedded as base64 PNG, no scripts or external stylesheets).
"""
import datetime
import json
import os

import numpy as np

from .. import _html
from .._io import atomic_save, atomic_write, make_output_dir
from . import plots
from .cluster import make_clusterer
from .features import Torsions, parse_features
from .msm import MSM, ck_test, implied_timescales
from .reduce import PCA, TICA
from .specs import parse_spec
from .stream import featurize, featurize_dask, iter_chunks, load_topology, save_features
from .structures import representative_frames, write_state_structures

__all__ = ["analyze", "phi_psi_free_energy_png", "parse_options", "write_html"]

parse_options = parse_spec  # the old name of the one spec parser


def _frame_interval_ps(path, top):
    """Time between saved frames from the file's own header (DCD: NSAVC x DELTA, which OpenMM and nnforce
    simulate write) or time stamps; None when the file does not say, so reports then use frames as the unit."""
    from .trajfile import trajectory_layout

    if str(path).lower().endswith(".dcd"):
        layout = trajectory_layout(path)
        return None if layout is None else layout["frame_interval_ps"]
    if str(path).lower().endswith((".pdb", ".gro")):
        return None
    try:
        chunk = next(iter_chunks(path, top, chunk=2))
        if chunk.n_frames > 1 and chunk.time[1] > chunk.time[0]:
            return float(chunk.time[1] - chunk.time[0])
    except StopIteration:
        pass
    return None


def phi_psi_free_energy_png(traj_files, top, path, temperature_k=300.0, stride=1, residue=None):
    """Ramachandran free-energy surface (-kT ln p of phi/psi) of all trajectories, written as a PNG.

    ``residue``: an mdtraj selection restricting which residue's phi/psi is used (default: the first residue
    with both). Returns (path, phi_rad, psi_rad)."""
    from .stream import featurize as _featurize

    feat = Torsions(("phi", "psi"), selection=residue, sincos=False)
    from .features import Featurizer

    featurizer = Featurizer([feat])
    data = _featurize(traj_files, top, featurizer, stride=stride)
    labels = feat.angle_labels
    phis = [i for i, l in enumerate(labels) if l.startswith("phi ")]
    psis = [i for i, l in enumerate(labels) if l.startswith("psi ")]
    pair = next(((i, j) for i in phis for j in psis if labels[i][4:] == labels[j][4:]), None)
    if pair is None:
        raise ValueError("phi/psi free energy: no residue has both phi and psi in this topology/selection")
    phi = np.concatenate([d[:, pair[0]] for d in data])
    psi = np.concatenate([d[:, pair[1]] for d in data])
    plots.plot_phi_psi(path, phi, psi, temperature_k=temperature_k,
                       title=f"{labels[pair[0]][4:]} phi/psi free energy, T = {temperature_k:g} K")
    return path, phi, psi


def _phi_psi_from_features(data, labels):
    """(residue, phi, psi) in radians from 'phi R sin/cos' and 'psi R sin/cos' columns of the first residue
    having all four, or None."""
    where = {label: i for i, label in enumerate(labels)}
    for label in labels:
        if label.startswith("phi ") and label.endswith(" sin"):
            residue = label[4:-4]
            keys = [f"phi {residue} sin", f"phi {residue} cos", f"psi {residue} sin", f"psi {residue} cos"]
            if all(k in where for k in keys):
                cols = [where[k] for k in keys]
                phi = np.concatenate([np.arctan2(d[:, cols[0]], d[:, cols[1]]) for d in data])
                psi = np.concatenate([np.arctan2(d[:, cols[2]], d[:, cols[3]]) for d in data])
                return residue, phi, psi
    return None


def write_html(path, title, sections, numbers, structures=None):
    """A self-contained HTML page: a table of key numbers, the figures embedded as base64 PNG, and links to the
    structure files written beside it.

    Parameters
    ----------
    path : str
    title : str
    sections : list of (heading, png path, caption)
    numbers : dict
        Shown as a two-column table.
    structures : dict, optional
        ``{heading: {name: {"representative": path, "samples": path}}}`` (from ``write_state_structures``); each
        file is linked relative to the page.

    Returns
    -------
    str
        ``path``.

    Examples
    --------
    >>> write_html("analysis.html", "analysis", [("FES", "fes.png", "-kT ln p")], {"frames": 100})  # doctest: +SKIP
    """
    generated = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    body = [f"<h1>{_html.esc(title)}</h1>", f"<p>Generated {_html.esc(generated)} by nnforce analyze.</p>",
            _html.table([(k, str(v)) for k, v in numbers.items()])]
    for heading, png, caption in sections:
        body.append(f"<section><h2>{_html.esc(heading)}</h2>{_html.figure(png, heading, caption)}</section>")
    for heading, written in (structures or {}).items():
        rows = []
        for name, kinds in sorted(written.items(), key=lambda item: str(item[0])):
            links = [f'<a href="{_html.esc(os.path.relpath(file, os.path.dirname(os.path.abspath(path))))}">{_html.esc(kind)}</a>'
                     for kind, file in sorted(kinds.items()) if isinstance(file, str)]
            rows.append(f"<li>{_html.esc(name)}: {' '.join(links)}</li>")
        if rows:
            body.append(f"<section><h2>{_html.esc(heading)}</h2><p>PDB files (open in a molecular viewer):</p>"
                        f"<ul>{''.join(rows)}</ul></section>")
    return _html.write_page(path, title, "\n".join(body))


def _msm_stage(result, dtrajs, clusterer, msm_options, traj_files, topology, out_dir, stride, n_samples, seed, dt,
               unit, longest_time, sections):
    """The MSM part of :func:`analyze` (estimate, timescales, PCCA+ sets, CK test); returns the populations and
    their title. Fills ``result``, its ``numbers`` and ``files``, and ``sections``."""
    numbers, files = result["numbers"], result["files"]
    lag = int(msm_options["lag"])
    model = MSM(dtrajs, lag, reversible=bool(msm_options.get("reversible", 1)), n_states=clusterer.n_clusters)
    result["msm"] = model
    populations, title = model.cluster_populations(), f"MSM stationary populations (lag {lag})"
    numbers["MSM lag"] = f"{lag} frames ({lag * dt:g} {unit})"
    numbers["MSM active states"] = f"{len(model.active_set)} of {clusterer.n_clusters}"
    numbers["MSM timescales"] = flag_timescales([t * dt for t in model.timescales(5)], longest_time, unit)
    longest = max(len(d) for d in dtrajs)
    lags = msm_options.get("lags") or [l for l in (1, 2, 5, 10, 20, 50, 100, 200) if l < longest // 2] or [lag]
    lags = [int(l) for l in (lags if isinstance(lags, list) else [lags]) if int(l) < longest]
    lags, its = implied_timescales(dtrajs, lags, n_its=min(5, max(len(model.active_set) - 1, 1)))
    files["timescales"] = plots.plot_timescales(os.path.join(out_dir, "timescales.png"), lags, its, dt, unit)
    sections.append(("implied timescales", files["timescales"], "MSM implied timescales vs lag; converged where flat."))
    result["implied_timescales"] = (lags, its)
    n_sets = int(msm_options.get("n_sets", 0) or 0)
    if n_sets >= 2 and len(model.active_set) >= n_sets:
        sets = model.pcca(n_sets)
        result["pcca"] = sets
        numbers["metastable populations"] = ", ".join(f"{p:.3f}" for p in sets["populations"])
        state_dtrajs = [np.where(d >= 0, sets["assignment"][np.maximum(d, 0)], -1) for d in dtrajs]
        files["state_structures"] = write_state_structures(
            traj_files, topology, state_dtrajs, os.path.join(out_dir, "structures"), stride=stride,
            n_samples=n_samples, seed=seed, prefix="state")
        try:
            lt, pred, est = ck_test(dtrajs, lag, n_sets, mlags=int(msm_options.get("mlags", 4)))
            files["ck_test"] = plots.plot_ck_test(os.path.join(out_dir, "ck_test.png"), lt, pred, est, dt, unit)
            sections.append(("Chapman-Kolmogorov test", files["ck_test"],
                             "Metastable-set transition probabilities: MSM prediction vs direct estimate."))
        except ValueError as error:
            numbers["CK test"] = f"skipped: {error}"
    return populations, title


def histogram_bins(n_points, most=60):
    """Bins per axis for a 2-D free-energy histogram of ``n_points``: about 10 points per occupied bin on a
    diagonal-ish distribution (``sqrt(n / 2)``), between 10 and ``most``, so short data do not leave the panel blank.

    Examples
    --------
    >>> histogram_bins(200), histogram_bins(100000)
    (10, 60)
    """
    return int(min(most, max(10, round((n_points / 2.0) ** 0.5))))


def flag_timescales(timescales, data_length, unit):
    """Timescales as report text, each longer than the data marked: such a process is not resolved by it.

    Parameters
    ----------
    timescales : sequence of float
        In ``unit``.
    data_length : float
        The longest trajectory, in ``unit``.
    unit : str

    Returns
    -------
    str

    Examples
    --------
    >>> flag_timescales([3.0, 250.0], 100.0, "ps")
    '3 ps, 250 ps (longer than the 100 ps of data: not resolved)'
    """
    parts = []
    for t in timescales:
        text = f"{t:.4g} {unit}"
        if t > data_length:
            text += f" (longer than the {data_length:.4g} {unit} of data: not resolved)"
        parts.append(text)
    return ", ".join(parts)


def _positive_int(options, key, what, spec):
    value = options[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} option {key}={value!r} in {spec!r} must be a positive whole number")
    return value


def adapt_to_data(reduce, cluster, msm, lengths):
    """Fill in the TICA lag, the k-means ``k`` and the MSM lag left out of the specs, from trajectories of
    ``lengths`` frames: lags of about 1/20 of the shortest trajectory (1 to 10 frames), ``k`` of about one cluster
    per 20 frames (2 to 50). Values given are kept (the stage that cannot use them says so); values that are not
    positive whole numbers are errors naming the option.

    Parameters
    ----------
    reduce, cluster, msm : str or None
        The specs (``"tica:dim=2"``, ``"kmeans"``, ``"n_sets=3"``, ...).
    lengths : sequence of int
        Frames per trajectory (after striding).

    Returns
    -------
    tuple
        ``(reduce, cluster, msm, chosen)``: the specs with the values filled in, and one sentence per choice.

    Examples
    --------
    >>> adapt_to_data("tica:dim=2", "kmeans", "n_sets=3", [200])[3]
    ['TICA lag 10 frames (default)', 'k-means k 10 for 200 frames (about 20 frames per cluster)', 'MSM lag 10 frames (default)']
    >>> adapt_to_data("tica:lag=abc", "none", "none", [200])
    Traceback (most recent call last):
    ValueError: reduce option lag='abc' in 'tica:lag=abc' must be a positive whole number
    """
    shortest, total, chosen = min(lengths), sum(lengths), []
    auto_lag = max(1, min(10, shortest // 20))

    def lag_for(options, key, what, spec, name):
        if key not in options:
            options[key] = auto_lag
            chosen.append(f"{name} lag {auto_lag} frames" + (" (default)" if auto_lag == 10 else
                                                              f" for a shortest trajectory of {shortest} frames"))
        else:
            _positive_int(options, key, what, spec)
        return options

    def join(name, options):
        text = ",".join(f"{k}={'+'.join(map(str, v)) if isinstance(v, list) else v}" for k, v in options.items())
        return f"{name}:{text}" if name else text

    method, options = parse_spec(reduce or "none", "reduce")
    if method == "tica":
        spec = reduce
        reduce = join("tica", lag_for(options, "lag", "reduce", spec, "TICA"))
        if "dim" in options:
            _positive_int(options, "dim", "reduce", spec)
    name, options = parse_spec(cluster or "none", "cluster")
    if name in ("kmeans", "minibatch", "kcenters"):
        if "k" not in options:
            options["k"] = auto_k = max(2, min(50, total // 20))
            chosen.append(f"k-means k {auto_k} for {total} frames (about 20 frames per cluster)" if auto_k < 50 else
                          "k-means k 50 (default)")
        else:
            _positive_int(options, "k", "cluster", cluster)
        cluster = join(name, options)
    if msm and str(msm).lower() != "none":
        spec = msm
        _, options = parse_spec(msm, "msm")
        msm = join(None, lag_for(options, "lag", "msm", spec, "MSM"))
        for key in ("n_sets", "mlags"):
            if key in options:
                _positive_int(options, key, "msm", spec)
    return reduce, cluster, msm, chosen


def analyze(traj_files, top, out_dir, features=("phi_psi",), reduce="tica:dim=2", cluster="kmeans",
            msm="n_sets=3", stride=1, chunk=10000, temperature_k=300.0, seed=0, n_samples=5, scheduler=None,
            n_workers=None, dt_ps=None, progress=False, complete_frames_only=False):
    """Run the analysis pipeline and write the report; returns a dict of paths and key numbers.

    A TICA or MSM lag and a k-means ``k`` left out of the specs are chosen from the data (:func:`adapt_to_data`:
    lags of about 1/20 of the shortest trajectory, up to 10 frames; about 20 frames per cluster, up to 50); values
    given that the data cannot support are lowered; either way the report says which were chosen. A stage that
    fails on the data (too few frames for an MSM, say) is reported as skipped and the report is still written.
    complete_frames_only: analyse the complete frames of a trajectory that was cut short (else it is refused).

    traj_files: trajectory paths (any mdtraj format); top: topology/structure file (or md.Topology).
    features: feature specs (see ``features.parse_features``), e.g. ``["phi_psi", "distances:selection=name CA"]``.
    reduce: ``"tica:lag=10,dim=2"``, ``"pca:dim=2"`` or ``"none"``. cluster: ``"kmeans:k=50"``, ``"regspace:dmin=0.3"``, ...
    msm: ``"lag=10,n_sets=3,lags=1+2+5+10+20"`` or ``"none"``. Lags are in (strided) frames.
    scheduler/n_workers: featurize with Dask (``scheduler="local"`` or an address) instead of in-process.
    dt_ps: time between saved frames (read from the first file when None).
    """
    traj_files = [os.fspath(p) for p in ([traj_files] if isinstance(traj_files, (str, os.PathLike)) else traj_files)]
    if not traj_files:
        raise ValueError("no trajectory files given")
    for p in traj_files:
        if not os.path.exists(p):
            raise FileNotFoundError(f"trajectory file not found: {p}")
    topology = load_topology(top)
    make_output_dir(out_dir)
    result = {"out_dir": out_dir, "files": {}, "numbers": {}}
    files, numbers = result["files"], result["numbers"]
    sections = []

    # -- features --------------------------------------------------------------------------------------
    reference = top if isinstance(top, (str, os.PathLike)) else None
    featurizer = parse_features(list(features), reference=reference)
    if scheduler:
        data = featurize_dask(traj_files, topology, featurizer, chunk=chunk, stride=stride,
                              scheduler=None if scheduler == "local" else scheduler, n_workers=n_workers,
                              complete_frames_only=complete_frames_only)
    else:
        data = featurize(traj_files, topology, featurizer, chunk=chunk, stride=stride, progress=progress,
                         complete_frames_only=complete_frames_only)
    labels = featurizer.labels
    if dt_ps is None:
        dt_ps = _frame_interval_ps(traj_files[0], topology)
    dt = (dt_ps or 1.0) * stride
    unit = "ps" if dt_ps else "frames"
    files["features"] = save_features(os.path.join(out_dir, "features.npz"), data, labels, traj_files, stride=stride,
                                      dt_ps=dt_ps or np.nan)
    numbers.update({"trajectories": len(data), "frames": int(sum(len(d) for d in data)), "features": len(labels),
                    "frame interval": f"{dt:g} {unit}"})
    if numbers["frames"] == 0:
        raise ValueError("the trajectories contain no frames")
    msm_lag_given = bool(msm) and str(msm).lower() != "none" and "lag" in parse_spec(msm, "msm")[1]
    reduce, cluster, msm, chosen = adapt_to_data(reduce, cluster, msm, [len(d) for d in data])
    if chosen:
        numbers["chosen for the data"] = "; ".join(chosen)
    longest_time = max(len(d) for d in data) * dt

    # phi/psi free energy when the topology has backbone torsions
    phi = psi = None
    angles = _phi_psi_from_features(data, labels)
    if angles is not None:  # reuse the sin/cos torsion columns instead of reading the files again
        residue, phi, psi = angles
        files["phi_psi"] = plots.plot_phi_psi(os.path.join(out_dir, "phi_psi.png"), phi, psi, temperature_k=temperature_k,
                                              title=f"{residue} phi/psi free energy, T = {temperature_k:g} K",
                                              bins=histogram_bins(len(phi), 72))
    else:
        try:
            files["phi_psi"], phi, psi = phi_psi_free_energy_png(traj_files, topology,
                                                                 os.path.join(out_dir, "phi_psi.png"), temperature_k,
                                                                 stride)
        except ValueError:
            pass
    if phi is not None:
        sections.append(("phi/psi free energy", files["phi_psi"], "-kT ln p(phi, psi) over all frames."))
    files["time_series"] = plots.plot_time_series(os.path.join(out_dir, "features_time_series.png"), data[0], labels,
                                                  dt, unit)
    sections.append(("feature time series", files["time_series"], f"First features of {os.path.basename(traj_files[0])}."))

    # -- reduction ---------------------------------------------------------------------------------------
    method, options = parse_spec(reduce or "none", "reduce")
    if method in (None, "none"):
        projected, axis = data, "feature"
    elif method == "tica":
        lag = options.pop("lag")
        options.setdefault("dim", 2)
        reducer = TICA(lag, **options).fit(data)
        projected, axis = reducer.transform(data), "TIC"
        numbers["TICA lag"] = f"{lag} frames ({lag * dt:g} {unit})"
        numbers["TICA timescales"] = flag_timescales([t * dt for t in reducer.timescales[:5]], longest_time, unit)
        result["tica"] = reducer
    elif method == "pca":
        options.setdefault("dim", 2)
        reducer = PCA(**options).fit(data)
        projected, axis = reducer.transform(data), "PC"
        numbers["PCA explained variance"] = ", ".join(f"{v:.3f}" for v in reducer.explained_variance_ratio)
        result["pca"] = reducer
    else:
        raise ValueError(f"unknown reduction {method!r}: use tica:lag=N, pca or none")
    stacked = np.concatenate(projected)

    # -- clustering ----------------------------------------------------------------------------------------
    clusterer = None
    dtrajs = None
    if cluster and str(cluster).lower() != "none":
        clusterer = make_clusterer(cluster, seed=seed)
        if clusterer.name == "kmedoids":
            raise ValueError("kmedoids clusters structures, not features; use it from Python (KMedoidsRMSD)")
        clusterer.fit(projected)
        dtrajs = clusterer.labels
        numbers["clusters"] = clusterer.n_clusters
        result["clusterer"] = clusterer
    if stacked.shape[1] >= 2:
        centers = clusterer.centers[:, :2] if clusterer is not None else None
        files["fes"] = plots.plot_free_energy(os.path.join(out_dir, "fes.png"), stacked[:, 0], stacked[:, 1],
                                              xlabel=f"{axis} 1", ylabel=f"{axis} 2", temperature_k=temperature_k,
                                              points=centers, bins=histogram_bins(len(stacked)))
        sections.append((f"free energy on {axis} 1/2", files["fes"],
                         "-kT ln p on the first two coordinates; dots: cluster centers."))
    arrays = {f"projection_{i:05d}": p for i, p in enumerate(projected)}
    if dtrajs is not None:
        arrays.update({f"dtraj_{i:05d}": d for i, d in enumerate(dtrajs)})
    atomic_save(os.path.join(out_dir, "projection.npz"),
                lambda tmp: np.savez_compressed(tmp, **arrays))
    files["projection"] = os.path.join(out_dir, "projection.npz")

    # -- MSM -----------------------------------------------------------------------------------------------
    _, msm_options = parse_spec(msm, "msm") if msm and str(msm).lower() != "none" else (None, None)
    if dtrajs is not None:
        populations = np.bincount(np.concatenate(dtrajs)[np.concatenate(dtrajs) >= 0],
                                  minlength=clusterer.n_clusters) / sum(len(d) for d in dtrajs)
        title = "cluster populations (frame counts)"
        if msm_options is not None:
            try:
                populations, title = _msm_stage(result, dtrajs, clusterer, msm_options, traj_files, topology, out_dir,
                                                 stride, n_samples, seed, dt, unit, longest_time, sections)
            except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:  # e.g. too few transitions
                if msm_lag_given:  # the lag the user asked for does not work: say so instead of a partial report
                    raise
                numbers["MSM"] = f"skipped: {str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__}"
        files["populations"] = plots.plot_populations(os.path.join(out_dir, "populations.png"), populations, title=title)
        sections.append(("populations", files["populations"], title))
        result["populations"] = populations
        reps = representative_frames(projected, dtrajs, clusterer.centers)
        files["cluster_structures"] = write_state_structures(
            traj_files, topology, dtrajs, os.path.join(out_dir, "structures"), stride=stride,
            n_samples=n_samples, seed=seed, representatives=reps, prefix="cluster")
    result["dtrajs"] = dtrajs
    result["projection"] = projected
    result["features"] = data
    result["labels"] = labels
    result["phi_psi"] = (phi, psi)

    summary = {"numbers": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in numbers.items()},
               "files": {k: v for k, v in files.items() if isinstance(v, str)}, "trajectories": traj_files,
               "features": list(features), "reduce": reduce, "cluster": cluster, "msm": msm, "stride": stride}
    with atomic_write(os.path.join(out_dir, "summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    files["summary"] = os.path.join(out_dir, "summary.json")
    structures = {heading: files[key] for heading, key in (("cluster structures", "cluster_structures"),
                                                           ("metastable-state structures", "state_structures"))
                  if isinstance(files.get(key), dict)}
    files["html"] = write_html(os.path.join(out_dir, "analysis.html"), "nnforce trajectory analysis", sections, numbers,
                               structures)
    return result
