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
from .._viewer import MAX_INTERACTIVE
from . import plots
from .cluster import make_clusterer
from .features import Torsions, parse_features
from .msm import MSM, ck_test, implied_timescales
from .reduce import PCA, TICA
from .adapt import adapt_to_data, flag_timescales, histogram_bins
from .specs import parse_spec
from .stream import featurize, featurize_dask, iter_chunks, load_topology, save_features, trajectory_paths
from .structures import representative_frames, state_representatives, write_state_structures

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
    with both). Returns (path, phi_rad, psi_rad).

    Parameters
    ----------
    traj_files : list of str
    top : str or mdtraj.Topology
    path : str
    temperature_k : float
    stride : int
    residue : str, optional

    Examples
    --------
    >>> path, phi, psi = phi_psi_free_energy_png(["traj.dcd"], "ala2.pdb", "phi_psi.png")  # doctest: +SKIP
    """
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


def write_html(path, title, sections, numbers, structures=None, viewer=None):
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
    viewer : list of dict, optional
        Structures shown in the page in 3D with a static picture as fallback (``{"name", "pdb", "caption"}``,
        :func:`nnforce._html.structures`); the pictures go to ``figures/`` beside the page.

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
    if viewer:
        body.append('<section id="structures-3d"><h2>representative structures</h2>'
                    + _html.structures(viewer, os.path.join(os.path.dirname(os.path.abspath(path)), "figures"))
                    + "</section>")
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


class _Report:
    """What the pipeline has produced so far: the result dict, its files and numbers, the HTML sections."""

    def __init__(self, out_dir, traj_files, topology, stride, temperature_k, seed, n_samples):
        self.out_dir, self.traj_files, self.topology = out_dir, traj_files, topology
        self.stride, self.temperature_k, self.seed, self.n_samples = stride, temperature_k, seed, n_samples
        self.result = {"out_dir": out_dir, "files": {}, "numbers": {}}
        self.files, self.numbers = self.result["files"], self.result["numbers"]
        self.sections = []
        self.dt, self.unit = 1.0, "frames"
        self.longest_time = None  # the longest trajectory in report units (for flagging timescales)
        self.viewer = []  # representative structures shown in 3D: {"name", "pdb", "caption"}

    def path(self, name):
        return os.path.join(self.out_dir, name)

    def section(self, heading, key, caption):
        self.sections.append((heading, self.files[key], caption))


_NUMBER_RULES = {  # argument: (command-line flag, smallest allowed, whether it must be a whole number, None allowed)
    "stride": ("--stride", 1, True, False), "chunk": ("--chunk", 1, True, False),
    "temperature_k": ("--temperature", 0, False, False), "n_samples": ("--samples", 0, True, False),
    "dt_ps": ("--dt-ps", 0, False, True), "n_workers": ("--workers", 1, True, True),
}


def _check_numbers(**values):
    """Raise ValueError naming the flag for a number outside its domain (a negative --dt-ps gave negative
    timescales; a NaN temperature NaN free energies)."""
    import math

    for name, value in values.items():
        flag, smallest, whole, optional = _NUMBER_RULES[name]
        if value is None and optional:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        ok = ok and (value >= smallest if whole else value > smallest) and (not whole or float(value).is_integer())
        if not ok:
            what = f"a whole number >= {smallest}" if whole else "a positive number"
            raise ValueError(f"{name} ({flag}) must be {what}, got {value!r}")


def _features(report, features, top, chunk, scheduler, n_workers, dt_ps, progress, complete_frames_only=False):
    """Featurize every trajectory (in-process or with Dask) and save ``features.npz``."""
    reference = top if isinstance(top, (str, os.PathLike)) else None
    featurizer = parse_features(list(features), reference=reference)
    files, stride = report.traj_files, report.stride
    if scheduler:
        data = featurize_dask(files, report.topology, featurizer, chunk=chunk, stride=stride,
                              scheduler=None if scheduler == "local" else scheduler, n_workers=n_workers,
                              complete_frames_only=complete_frames_only)
    else:
        data = featurize(files, report.topology, featurizer, chunk=chunk, stride=stride, progress=progress,
                         complete_frames_only=complete_frames_only)
    labels = featurizer.labels
    if dt_ps is None:
        dt_ps = _frame_interval_ps(files[0], report.topology)
    report.dt, report.unit = (dt_ps or 1.0) * stride, "ps" if dt_ps else "frames"
    report.files["features"] = save_features(report.path("features.npz"), data, labels, files, stride=stride,
                                             dt_ps=dt_ps or np.nan)
    report.numbers.update({"trajectories": len(data), "frames": int(sum(len(d) for d in data)),
                           "features": len(labels), "frame interval": f"{report.dt:g} {report.unit}"})
    if report.numbers["frames"] == 0:
        raise ValueError("the trajectories contain no frames")
    report.longest_time = max(len(d) for d in data) * report.dt
    report.result.update({"features": data, "labels": labels})
    return data, labels


def _phi_psi_and_series(report, data, labels):
    """The phi/psi free energy (when the topology has backbone torsions) and the feature time series."""
    phi = psi = None
    t = report.temperature_k
    angles = _phi_psi_from_features(data, labels)
    if angles is not None:  # reuse the sin/cos torsion columns instead of reading the files again
        residue, phi, psi = angles
        report.files["phi_psi"] = plots.plot_phi_psi(report.path("phi_psi.png"), phi, psi, temperature_k=t,
                                                     title=f"{residue} phi/psi free energy, T = {t:g} K",
                                                     bins=histogram_bins(len(phi), 72))
    else:
        try:
            report.files["phi_psi"], phi, psi = phi_psi_free_energy_png(
                report.traj_files, report.topology, report.path("phi_psi.png"), t, report.stride)
        except ValueError:
            pass
    if phi is not None:
        report.section("phi/psi free energy", "phi_psi", "-kT ln p(phi, psi) over all frames.")
    report.result["phi_psi"] = (phi, psi)
    report.files["time_series"] = plots.plot_time_series(report.path("features_time_series.png"), data[0], labels,
                                                         report.dt, report.unit)
    report.section("feature time series", "time_series",
                   f"First features of {os.path.basename(report.traj_files[0])}.")


def _reduce(report, data, spec):
    """PCA, TICA or nothing; returns (projected data, axis name)."""
    method, options = parse_spec(spec or "none", "reduce")
    numbers, dt, unit = report.numbers, report.dt, report.unit
    if method in (None, "none"):
        return data, "feature"
    if method == "tica":
        lag = options.pop("lag", 10)
        options.setdefault("dim", 2)
        reducer = TICA(lag, **options).fit(data)
        numbers["TICA lag"] = f"{lag} frames ({lag * dt:g} {unit})"
        numbers["TICA timescales"] = flag_timescales([t * dt for t in reducer.timescales[:5]], report.longest_time, unit)
        report.result["tica"] = reducer
        return reducer.transform(data), "TIC"
    if method == "pca":
        options.setdefault("dim", 2)
        reducer = PCA(**options).fit(data)
        numbers["PCA explained variance"] = ", ".join(f"{v:.3f}" for v in reducer.explained_variance_ratio)
        report.result["pca"] = reducer
        return reducer.transform(data), "PC"
    raise ValueError(f"unknown reduction {method!r}: use tica:lag=N, pca or none")


def _cluster(report, projected, axis, spec):
    """Cluster the projection (unless ``spec`` is none), plot the free energy of the first two coordinates and
    save ``projection.npz``; returns (clusterer, dtrajs) or (None, None)."""
    clusterer = dtrajs = None
    if spec and str(spec).lower() != "none":
        clusterer = make_clusterer(spec, seed=report.seed)
        if clusterer.name == "kmedoids":
            raise ValueError("kmedoids clusters structures, not features; use it from Python (KMedoidsRMSD)")
        clusterer.fit(projected)
        dtrajs = clusterer.labels
        report.numbers["clusters"] = clusterer.n_clusters
        report.result["clusterer"] = clusterer
    stacked = np.concatenate(projected)
    if stacked.shape[1] >= 2:
        centers = clusterer.centers[:, :2] if clusterer is not None else None
        report.files["fes"] = plots.plot_free_energy(
            report.path("fes.png"), stacked[:, 0], stacked[:, 1], xlabel=f"{axis} 1", ylabel=f"{axis} 2",
            temperature_k=report.temperature_k, points=centers, bins=histogram_bins(len(stacked)))
        report.section(f"free energy on {axis} 1/2", "fes", "-kT ln p on the first two coordinates; dots: cluster centers.")
    arrays = {f"projection_{i:05d}": p for i, p in enumerate(projected)}
    if dtrajs is not None:
        arrays.update({f"dtraj_{i:05d}": d for i, d in enumerate(dtrajs)})
    atomic_save(report.path("projection.npz"), lambda tmp: np.savez_compressed(tmp, **arrays))
    report.files["projection"] = report.path("projection.npz")
    report.result["projection"] = projected
    return clusterer, dtrajs


def _metastable_sets(report, model, dtrajs, lag, options):
    """PCCA+ sets, their structures and the Chapman-Kolmogorov test, when ``n_sets`` >= 2 asks for them."""
    n_sets = int(options.get("n_sets", 0) or 0)
    if n_sets < 2 or len(model.active_set) < n_sets:
        return
    sets = model.pcca(n_sets)
    report.result["pcca"] = sets
    report.numbers["metastable populations"] = ", ".join(f"{p:.3f}" for p in sets["populations"])
    state_dtrajs = [np.where(d >= 0, sets["assignment"][np.maximum(d, 0)], -1) for d in dtrajs]
    clusterer = report.result["clusterer"]
    representatives = state_representatives(sets["memberships"], model.active_set, report.result["projection"],
                                            dtrajs, clusterer.centers)
    report.files["state_structures"] = write_state_structures(
        report.traj_files, report.topology, state_dtrajs, report.path("structures"), stride=report.stride,
        n_samples=report.n_samples, seed=report.seed, representatives=representatives, prefix="state")
    report.viewer = [{"name": f"state {s}", "pdb": entry["representative"],
                      "caption": f"population {sets['populations'][s]:.3f}"}
                     for s, entry in sorted(report.files["state_structures"].items()) if "representative" in entry]
    try:
        lt, pred, est = ck_test(dtrajs, lag, n_sets, mlags=int(options.get("mlags", 4)))
        report.files["ck_test"] = plots.plot_ck_test(report.path("ck_test.png"), lt, pred, est, report.dt,
                                                     report.unit)
        report.section("Chapman-Kolmogorov test", "ck_test",
                       "Metastable-set transition probabilities: MSM prediction vs direct estimate.")
    except ValueError as error:
        report.numbers["CK test"] = f"skipped: {error}"


def _msm(report, dtrajs, n_clusters, options):
    """An MSM with implied timescales and metastable sets; returns (stationary populations, title)."""
    lag = int(options.get("lag", 10))
    model = MSM(dtrajs, lag, reversible=bool(options.get("reversible", 1)), n_states=n_clusters)
    report.result["msm"] = model
    dt, unit = report.dt, report.unit
    report.numbers["MSM lag"] = f"{lag} frames ({lag * dt:g} {unit})"
    report.numbers["MSM active states"] = f"{len(model.active_set)} of {n_clusters}"
    report.numbers["MSM timescales"] = flag_timescales([t * dt for t in model.timescales(5)], report.longest_time, unit)
    longest = max(len(d) for d in dtrajs)
    lags = options.get("lags") or [l for l in (1, 2, 5, 10, 20, 50, 100, 200) if l < longest // 2] or [lag]
    lags = [int(l) for l in (lags if isinstance(lags, list) else [lags]) if int(l) < longest]
    lags, its = implied_timescales(dtrajs, lags, n_its=min(5, max(len(model.active_set) - 1, 1)))
    report.files["timescales"] = plots.plot_timescales(report.path("timescales.png"), lags, its, dt, unit)
    report.section("implied timescales", "timescales", "MSM implied timescales vs lag; converged where flat.")
    report.result["implied_timescales"] = (lags, its)
    _metastable_sets(report, model, dtrajs, lag, options)
    return model.cluster_populations(), f"MSM stationary populations (lag {lag})"


def _populations_and_structures(report, clusterer, dtrajs, projected, msm, msm_lag_given=True):
    """Populations (MSM stationary, or frame counts without an MSM) and representative cluster structures.

    An MSM whose lag was chosen from the data (``msm_lag_given`` False) and still fails (too few transitions,
    say) is reported as skipped, and the rest of the report is written."""
    _, options = parse_spec(msm, "msm") if msm and str(msm).lower() != "none" else (None, None)
    populations = np.bincount(np.concatenate(dtrajs)[np.concatenate(dtrajs) >= 0],
                              minlength=clusterer.n_clusters) / sum(len(d) for d in dtrajs)
    title = "cluster populations (frame counts)"
    if options is not None:
        try:
            populations, title = _msm(report, dtrajs, clusterer.n_clusters, options)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
            if msm_lag_given:  # the lag asked for does not work: say so instead of a partial report
                raise
            text = str(error).strip()
            report.numbers["MSM"] = f"skipped: {text.splitlines()[0] if text else type(error).__name__}"
    report.files["populations"] = plots.plot_populations(report.path("populations.png"), populations, title=title)
    report.section("populations", "populations", title)
    report.result["populations"] = populations
    reps = representative_frames(projected, dtrajs, clusterer.centers)
    report.files["cluster_structures"] = written = write_state_structures(
        report.traj_files, report.topology, dtrajs, report.path("structures"), stride=report.stride,
        n_samples=report.n_samples, seed=report.seed, representatives=reps, prefix="cluster")
    if not report.viewer:  # no metastable states: the most populated clusters' representatives
        order = [int(c) for c in np.argsort(-np.asarray(populations)) if "representative" in written.get(int(c), {})]
        model = report.result.get("msm")
        outside = set() if model is None else set(range(clusterer.n_clusters)) - {int(c) for c in model.active_set}
        report.viewer = [{"name": f"cluster {c}", "pdb": written[c]["representative"],
                          "caption": _population_caption(populations[c], c in outside)} for c in order[:MAX_INTERACTIVE]]


def _population_caption(population, outside_active_set):
    """A cluster's caption: its population, or that it lies outside the MSM's active set (no stationary population,
    not a population of 0)."""
    if outside_active_set:
        return "outside the MSM's active set (no stationary population)"
    return f"population {population:.3f}"


def analyze(traj_files, top, out_dir, features=("phi_psi",), reduce="tica:dim=2", cluster="kmeans",
            msm="n_sets=3", stride=1, chunk=10000, temperature_k=300.0, seed=0, n_samples=5, scheduler=None,
            n_workers=None, dt_ps=None, progress=False, complete_frames_only=False):
    """Run the analysis pipeline and write the report.

    A TICA or MSM lag and a k-means ``k`` left out of the specs are chosen from the data (:func:`adapt_to_data`)
    and the report says so; timescales longer than the data are flagged; the report links the structure files.

    Parameters
    ----------
    traj_files : str or list of str
        Trajectories (any mdtraj format).
    top : str or mdtraj.Topology
        Topology/structure file.
    features : list of str
        Feature specs (:func:`nnforce.analysis.features.parse_features`), e.g.
        ``["phi_psi", "distances:selection=name CA"]``.
    reduce : str
        ``"tica:lag=10,dim=2"``, ``"pca:dim=2"`` or ``"none"`` (a TICA lag left out is chosen from the data).
    cluster : str
        ``"kmeans:k=50"``, ``"regspace:dmin=0.3"``, ... or ``"none"`` (a k-means ``k`` left out is chosen).
    msm : str
        ``"lag=10,n_sets=3,lags=1+2+5+10+20"`` or ``"none"``. Lags are in (strided) frames.
    stride, chunk : int
        Every ``stride``-th frame, read ``chunk`` frames at a time.
    temperature_k : float
        For the free energies -kT ln p.
    seed, n_samples : int
        Clustering and structure sampling; structures written per cluster/state.
    scheduler, n_workers : optional
        Featurize with Dask (``scheduler="local"`` or an address) instead of in-process.
    dt_ps : float, optional
        Time between saved frames (read from the first file when None).
    progress : bool
    complete_frames_only : bool
        Analyse the complete frames of a trajectory that was cut short (else it is refused, naming the frame).

    Returns
    -------
    dict
        ``files`` (paths, ``html`` the report), ``numbers`` (the report's key numbers), ``features``, ``labels``,
        ``projection``, ``dtrajs``, ``phi_psi``, and the fitted ``tica``/``pca``, ``clusterer``, ``msm``,
        ``pcca``, ``populations``, ``implied_timescales`` where they were made.

    Examples
    --------
    >>> result = analyze(["traj.dcd"], "mol.pdb", "analysis", msm="none")  # doctest: +SKIP
    >>> result["files"]["html"]  # doctest: +SKIP
    'analysis/analysis.html'
    """
    _check_numbers(stride=stride, chunk=chunk, temperature_k=temperature_k, n_samples=n_samples, dt_ps=dt_ps,
                   n_workers=n_workers)
    traj_files = trajectory_paths(traj_files)
    topology = load_topology(top)
    make_output_dir(out_dir)
    report = _Report(out_dir, traj_files, topology, stride, temperature_k, seed, n_samples)
    data, labels = _features(report, features, top, chunk, scheduler, n_workers, dt_ps, progress, complete_frames_only)
    msm_lag_given = bool(msm) and str(msm).lower() != "none" and "lag" in parse_spec(msm, "msm")[1]
    reduce, cluster, msm, chosen = adapt_to_data(reduce, cluster, msm, [len(d) for d in data])
    if chosen:
        report.numbers["chosen for the data"] = "; ".join(chosen)
    _phi_psi_and_series(report, data, labels)
    projected, axis = _reduce(report, data, reduce)
    clusterer, dtrajs = _cluster(report, projected, axis, cluster)
    if dtrajs is not None:
        _populations_and_structures(report, clusterer, dtrajs, projected, msm, msm_lag_given)
    report.result["dtrajs"] = dtrajs
    files, numbers = report.files, report.numbers
    summary = {"numbers": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in numbers.items()},
               "files": {k: v for k, v in files.items() if isinstance(v, str)}, "trajectories": traj_files,
               "features": list(features), "reduce": reduce, "cluster": cluster, "msm": msm, "stride": stride}
    with atomic_write(report.path("summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    files["summary"] = report.path("summary.json")
    structures = {heading: files[key] for heading, key in (("cluster structures", "cluster_structures"),
                                                           ("metastable-state structures", "state_structures"))
                  if isinstance(files.get(key), dict)}
    files["html"] = write_html(report.path("analysis.html"), "nnforce trajectory analysis", report.sections, numbers,
                               structures, report.viewer)
    return report.result
