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
from .._io import atomic_write, make_output_dir
from . import plots
from .adapt import adapt_to_data
from .features import Featurizer, Torsions
from .specs import parse_spec
from .stages import Run, cluster_stage, featurize_stage, phi_psi_stage, populations_stage, reduce_stage
from .stream import featurize, load_topology, trajectory_paths

__all__ = ["analyze", "phi_psi_free_energy_png", "parse_options", "write_html"]

parse_options = parse_spec  # the old name of the one spec parser


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
    feat = Torsions(("phi", "psi"), selection=residue, sincos=False)
    data = featurize(traj_files, top, Featurizer([feat]), stride=stride)
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


def _write_summary(run, report, settings):
    """summary.json: the report's numbers and files with the settings used; returns its path."""
    summary = {"numbers": {k: (v if isinstance(v, (int, float, str)) else str(v)) for k, v in report.numbers.items()},
               "files": {k: v for k, v in report.files.items() if isinstance(v, str)}, **settings}
    with atomic_write(run.path("summary.json"), "w") as handle:
        json.dump(summary, handle, indent=2, default=str)
    return run.path("summary.json")


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
    run = Run(out_dir, traj_files, topology, stride, temperature_k, seed, n_samples)
    data, labels, angles, run, report = featurize_stage(run, features, top, chunk, scheduler, n_workers, dt_ps,
                                                        progress, complete_frames_only)
    msm_lag_given = bool(msm) and str(msm).lower() != "none" and "lag" in parse_spec(msm, "msm")[1]
    reduce, cluster, msm, chosen = adapt_to_data(reduce, cluster, msm, [len(d) for d in data])
    if chosen:
        report.numbers["chosen for the data"] = "; ".join(chosen)
    report.add(phi_psi_stage(run, data, labels, angles))
    projected, axis, part = reduce_stage(run, data, reduce)
    report.add(part)
    clusterer, dtrajs, part = cluster_stage(run, projected, axis, cluster)
    report.add(part)
    if dtrajs is not None:
        report.add(populations_stage(run, clusterer, dtrajs, projected, msm, msm_lag_given))
    files, numbers = report.files, report.numbers
    files["summary"] = _write_summary(run, report, {"trajectories": traj_files, "features": list(features),
                                                    "reduce": reduce, "cluster": cluster, "msm": msm, "stride": stride})
    structures = {heading: files[key] for heading, key in (("cluster structures", "cluster_structures"),
                                                           ("metastable-state structures", "state_structures"))
                  if isinstance(files.get(key), dict)}
    files["html"] = write_html(run.path("analysis.html"), "nnforce trajectory analysis", report.sections, numbers,
                               structures, report.viewer)
    return {"out_dir": out_dir, "files": files, "numbers": numbers, "dtrajs": dtrajs, **report.result}
