"""The stages of :func:`nnforce.analysis.pipeline.analyze`, each a function that returns what it made.

Every stage takes the run's fixed inputs (:class:`Run`) and the values of the stages before it, and returns its own
values plus a :class:`Part` of the report (files written, key numbers, figure sections, structures for the 3D
viewer, entries of the result dict); ``analyze`` joins the parts. Stages: :func:`featurize_stage` (every file read
once: the requested features, plus sin/cos phi/psi for the Ramachandran plot when the topology has them) ->
:func:`phi_psi_stage` -> :func:`reduce_stage` -> :func:`cluster_stage` -> :func:`populations_stage` (which runs
:func:`msm_stage` and :func:`metastable_stage`).
"""
import os
from dataclasses import dataclass, field
from typing import Any, Dict, List

import numpy as np

from .._io import atomic_save
from .._viewer import MAX_INTERACTIVE
from . import plots
from .adapt import flag_timescales, histogram_bins
from .cluster import make_clusterer
from .features import Featurizer, Torsions, parse_features
from .msm import MSM, ck_test, implied_timescales
from .reduce import PCA, TICA
from .specs import parse_spec
from .stream import featurize, featurize_dask, iter_chunks, save_features
from .structures import representative_frames, state_representatives, write_state_structures


@dataclass(frozen=True)
class Run:
    """The fixed inputs of one analysis: files, topology, output folder, stride, temperature, seeds, time unit."""
    out_dir: str
    traj_files: List[str]
    topology: Any
    stride: int
    temperature_k: float
    seed: int
    n_samples: int
    dt: float = 1.0
    unit: str = "frames"
    longest_time: float = None  # the longest trajectory in report units (for flagging timescales)

    def path(self, name):
        return os.path.join(self.out_dir, name)


@dataclass
class Part:
    """What one stage adds to the report."""
    files: Dict[str, Any] = field(default_factory=dict)
    numbers: Dict[str, Any] = field(default_factory=dict)
    sections: List[tuple] = field(default_factory=list)  # (heading, file, caption)
    viewer: List[dict] = field(default_factory=list)  # {"name", "pdb", "caption"}
    result: Dict[str, Any] = field(default_factory=dict)

    def section(self, heading, key, caption):
        self.sections.append((heading, self.files[key], caption))

    def add(self, other):
        """Join ``other`` into this part (its viewer entries replace none already chosen)."""
        self.files.update(other.files)
        self.numbers.update(other.numbers)
        self.sections.extend(other.sections)
        self.viewer = self.viewer or other.viewer
        self.result.update(other.result)
        return self


def frame_interval_ps(path, top):
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


def phi_psi_from_features(data, labels):
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


def _ramachandran_feature(featurizer, topology):
    """sin/cos phi/psi to compute alongside ``featurizer`` when it has none and the topology has backbone torsions
    (so the files are read once), else None."""
    if phi_psi_from_features([np.zeros((1, featurizer.n_features))], featurizer.labels) is not None:
        return None
    try:
        return Torsions(("phi", "psi"), sincos=True).bind(topology)
    except ValueError:  # the one error bind raises: no residue of this topology has backbone torsions
        return None


def featurize_stage(run, features, top, chunk, scheduler, n_workers, dt_ps, progress, complete_frames_only=False):
    """Featurize every trajectory once (in-process or with Dask) and save ``features.npz``.

    Returns (data, labels, phi/psi angles or None, the Run with its time unit set, Part)."""
    reference = top if isinstance(top, (str, os.PathLike)) else None
    featurizer = parse_features(list(features), reference=reference).bind(run.topology)
    labels = featurizer.labels
    extra = _ramachandran_feature(featurizer, run.topology)
    combined = featurizer if extra is None else Featurizer(featurizer.features + [extra]).bind(run.topology)
    files, stride = run.traj_files, run.stride
    if scheduler:
        data = featurize_dask(files, run.topology, combined, chunk=chunk, stride=stride,
                              scheduler=None if scheduler == "local" else scheduler, n_workers=n_workers,
                              complete_frames_only=complete_frames_only)
    else:
        data = featurize(files, run.topology, combined, chunk=chunk, stride=stride, progress=progress,
                         complete_frames_only=complete_frames_only)
    n = len(labels)
    angles = phi_psi_from_features(data, labels) if extra is None else phi_psi_from_features(
        [d[:, n:] for d in data], extra.labels)
    data = [d[:, :n] for d in data] if extra is not None else data
    if dt_ps is None:
        dt_ps = frame_interval_ps(files[0], run.topology)
    dt, unit = (dt_ps or 1.0) * stride, "ps" if dt_ps else "frames"
    part = Part()
    part.files["features"] = save_features(run.path("features.npz"), data, labels, files, stride=stride,
                                           dt_ps=dt_ps or np.nan)
    part.numbers.update({"trajectories": len(data), "frames": int(sum(len(d) for d in data)),
                         "features": len(labels), "frame interval": f"{dt:g} {unit}"})
    if part.numbers["frames"] == 0:
        raise ValueError("the trajectories contain no frames")
    part.result.update({"features": data, "labels": labels})
    run = Run(run.out_dir, run.traj_files, run.topology, run.stride, run.temperature_k, run.seed, run.n_samples,
              dt, unit, max(len(d) for d in data) * dt)
    return data, labels, angles, run, part


def phi_psi_stage(run, data, labels, angles):
    """The phi/psi free energy (when the topology has backbone torsions) and the feature time series; returns Part."""
    part = Part()
    t = run.temperature_k
    phi = psi = None
    if angles is not None:
        residue, phi, psi = angles
        part.files["phi_psi"] = plots.plot_phi_psi(run.path("phi_psi.png"), phi, psi, temperature_k=t,
                                                   title=f"{residue} phi/psi free energy, T = {t:g} K",
                                                   bins=histogram_bins(len(phi), 72))
        part.section("phi/psi free energy", "phi_psi", "-kT ln p(phi, psi) over all frames.")
    part.result["phi_psi"] = (phi, psi)
    part.files["time_series"] = plots.plot_time_series(run.path("features_time_series.png"), data[0], labels,
                                                       run.dt, run.unit)
    part.section("feature time series", "time_series", f"First features of {os.path.basename(run.traj_files[0])}.")
    return part


def reduce_stage(run, data, spec):
    """PCA, TICA or nothing; returns (projected data, axis name, Part)."""
    method, options = parse_spec(spec or "none", "reduce")
    part = Part()
    if method in (None, "none"):
        return data, "feature", part
    if method == "tica":
        lag = options.pop("lag", 10)
        options.setdefault("dim", 2)
        reducer = TICA(lag, **options).fit(data)
        part.numbers["TICA lag"] = f"{lag} frames ({lag * run.dt:g} {run.unit})"
        part.numbers["TICA timescales"] = flag_timescales([t * run.dt for t in reducer.timescales[:5]],
                                                          run.longest_time, run.unit)
        part.result["tica"] = reducer
        return reducer.transform(data), "TIC", part
    if method == "pca":
        options.setdefault("dim", 2)
        reducer = PCA(**options).fit(data)
        part.numbers["PCA explained variance"] = ", ".join(f"{v:.3f}" for v in reducer.explained_variance_ratio)
        part.result["pca"] = reducer
        return reducer.transform(data), "PC", part
    raise ValueError(f"unknown reduction {method!r}: use tica:lag=N, pca or none")


def cluster_stage(run, projected, axis, spec):
    """Cluster the projection (unless ``spec`` is none), plot the free energy of the first two coordinates and
    save ``projection.npz``; returns (clusterer or None, dtrajs or None, Part)."""
    part = Part()
    clusterer = dtrajs = None
    if spec and str(spec).lower() != "none":
        clusterer = make_clusterer(spec, seed=run.seed)
        if clusterer.name == "kmedoids":
            raise ValueError("kmedoids clusters structures, not features; use it from Python (KMedoidsRMSD)")
        clusterer.fit(projected)
        dtrajs = clusterer.labels
        part.numbers["clusters"] = clusterer.n_clusters
        part.result["clusterer"] = clusterer
    stacked = np.concatenate(projected)
    if stacked.shape[1] >= 2:
        centers = clusterer.centers[:, :2] if clusterer is not None else None
        part.files["fes"] = plots.plot_free_energy(
            run.path("fes.png"), stacked[:, 0], stacked[:, 1], xlabel=f"{axis} 1", ylabel=f"{axis} 2",
            temperature_k=run.temperature_k, points=centers, bins=histogram_bins(len(stacked)))
        part.section(f"free energy on {axis} 1/2", "fes", "-kT ln p on the first two coordinates; dots: cluster centers.")
    arrays = {f"projection_{i:05d}": p for i, p in enumerate(projected)}
    if dtrajs is not None:
        arrays.update({f"dtraj_{i:05d}": d for i, d in enumerate(dtrajs)})
    atomic_save(run.path("projection.npz"), lambda tmp: np.savez_compressed(tmp, **arrays))
    part.files["projection"] = run.path("projection.npz")
    part.result["projection"] = projected
    return clusterer, dtrajs, part


def metastable_stage(run, model, dtrajs, lag, options, projected, clusterer):
    """PCCA+ sets, their structures and the Chapman-Kolmogorov test, when ``n_sets`` >= 2 asks for them; returns
    Part."""
    part = Part()
    n_sets = int(options.get("n_sets", 0) or 0)
    if n_sets < 2 or len(model.active_set) < n_sets:
        return part
    sets = model.pcca(n_sets)
    part.result["pcca"] = sets
    part.numbers["metastable populations"] = ", ".join(f"{p:.3f}" for p in sets["populations"])
    state_dtrajs = [np.where(d >= 0, sets["assignment"][np.maximum(d, 0)], -1) for d in dtrajs]
    representatives = state_representatives(sets["memberships"], model.active_set, projected, dtrajs,
                                            clusterer.centers)
    part.files["state_structures"] = write_state_structures(
        run.traj_files, run.topology, state_dtrajs, run.path("structures"), stride=run.stride,
        n_samples=run.n_samples, seed=run.seed, representatives=representatives, prefix="state")
    part.viewer = [{"name": f"state {s}", "pdb": entry["representative"],
                    "caption": f"population {sets['populations'][s]:.3f}"}
                   for s, entry in sorted(part.files["state_structures"].items()) if "representative" in entry]
    try:
        lt, pred, est = ck_test(dtrajs, lag, n_sets, mlags=int(options.get("mlags", 4)))
        part.files["ck_test"] = plots.plot_ck_test(run.path("ck_test.png"), lt, pred, est, run.dt, run.unit)
        part.section("Chapman-Kolmogorov test", "ck_test",
                     "Metastable-set transition probabilities: MSM prediction vs direct estimate.")
    except ValueError as error:
        part.numbers["CK test"] = f"skipped: {error}"
    return part


def msm_stage(run, dtrajs, clusterer, options, projected):
    """An MSM with implied timescales and metastable sets; returns (stationary populations, title, Part)."""
    part = Part()
    n_clusters = clusterer.n_clusters
    lag = int(options.get("lag", 10))
    model = MSM(dtrajs, lag, reversible=bool(options.get("reversible", 1)), n_states=n_clusters)
    part.result["msm"] = model
    dt, unit = run.dt, run.unit
    part.numbers["MSM lag"] = f"{lag} frames ({lag * dt:g} {unit})"
    part.numbers["MSM active states"] = f"{len(model.active_set)} of {n_clusters}"
    part.numbers["MSM timescales"] = flag_timescales([t * dt for t in model.timescales(5)], run.longest_time, unit)
    longest = max(len(d) for d in dtrajs)
    lags = options.get("lags") or [l for l in (1, 2, 5, 10, 20, 50, 100, 200) if l < longest // 2] or [lag]
    lags = [int(l) for l in (lags if isinstance(lags, list) else [lags]) if int(l) < longest]
    lags, its = implied_timescales(dtrajs, lags, n_its=min(5, max(len(model.active_set) - 1, 1)))
    part.files["timescales"] = plots.plot_timescales(run.path("timescales.png"), lags, its, dt, unit)
    part.section("implied timescales", "timescales", "MSM implied timescales vs lag; converged where flat.")
    part.result["implied_timescales"] = (lags, its)
    part.add(metastable_stage(run, model, dtrajs, lag, options, projected, clusterer))
    return model.cluster_populations(), f"MSM stationary populations (lag {lag})", part


def populations_stage(run, clusterer, dtrajs, projected, msm, msm_lag_given=True):
    """Populations (MSM stationary, or frame counts without an MSM) and representative cluster structures;
    returns Part.

    An MSM whose lag was chosen from the data (``msm_lag_given`` False) and still fails (too few transitions,
    say) is reported as skipped, and the rest of the report is written."""
    part = Part()
    _, options = parse_spec(msm, "msm") if msm and str(msm).lower() != "none" else (None, None)
    populations = np.bincount(np.concatenate(dtrajs)[np.concatenate(dtrajs) >= 0],
                              minlength=clusterer.n_clusters) / sum(len(d) for d in dtrajs)
    title = "cluster populations (frame counts)"
    if options is not None:
        try:
            populations, title, msm_part = msm_stage(run, dtrajs, clusterer, options, projected)
            part.add(msm_part)
        except (ValueError, RuntimeError, np.linalg.LinAlgError) as error:
            if msm_lag_given:  # the lag asked for does not work: say so instead of a partial report
                raise
            text = str(error).strip()
            part.numbers["MSM"] = f"skipped: {text.splitlines()[0] if text else type(error).__name__}"
    part.files["populations"] = plots.plot_populations(run.path("populations.png"), populations, title=title)
    part.section("populations", "populations", title)
    part.result["populations"] = populations
    reps = representative_frames(projected, dtrajs, clusterer.centers)
    part.files["cluster_structures"] = written = write_state_structures(
        run.traj_files, run.topology, dtrajs, run.path("structures"), stride=run.stride,
        n_samples=run.n_samples, seed=run.seed, representatives=reps, prefix="cluster")
    if not part.viewer:  # no metastable states: the most populated clusters' representatives
        order = [int(c) for c in np.argsort(-np.asarray(populations)) if "representative" in written.get(int(c), {})]
        model = part.result.get("msm")
        outside = set() if model is None else set(range(clusterer.n_clusters)) - {int(c) for c in model.active_set}
        part.viewer = [{"name": f"cluster {c}", "pdb": written[c]["representative"],
                        "caption": population_caption(populations[c], c in outside)} for c in order[:MAX_INTERACTIVE]]
    return part


def population_caption(population, outside_active_set):
    """A cluster's caption: its population, or that it lies outside the MSM's active set (no stationary population,
    not a population of 0)."""
    if outside_active_set:
        return "outside the MSM's active set (no stationary population)"
    return f"population {population:.3f}"
