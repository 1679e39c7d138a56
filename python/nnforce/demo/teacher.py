"""The teacher's reference: ANI-1x run once with issue 25's sampling protocol by ``bench/teacher_fes.py`` (the demo's
budget cannot hold ANI-1x's ~20 ms/step), stored as package data ``nnforce/demo/data/teacher_fes.npz``. The demo
compares its student against it on the same bins: the free energy is recomputed from the teacher's frames
(phi, psi, weights) when the file has them, so any bin count works."""
import json
import os

import numpy as np

__all__ = ["TEACHER_FILE", "load_teacher"]

TEACHER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "teacher_fes.npz")


def _scalar(data, *names):
    for name in names:
        if name in data.files:
            value = np.asarray(data[name])
            if value.size == 1:
                return float(value.reshape(()))
    return None


def _text(data, name):
    if name not in data.files:
        return None
    value = np.asarray(data[name])
    value = value.item() if value.size == 1 else value.tolist()
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_teacher(path=None, bins=36, n_boot=200, seed=0):
    """The teacher's reweighted phi/psi free energy on ``bins`` x ``bins`` bins, its basin populations with 95%
    intervals and its cost per step.

    Parameters
    ----------
    path : str, optional
        Default :data:`TEACHER_FILE`.
    bins : int
    n_boot, seed : int
        The bootstrap of the basin populations when the file has the frames but no populations.

    Returns
    -------
    dict
        ``available`` (False, with ``note``, when the file is missing or unreadable), ``path``, ``fes``
        (:func:`nnforce.simulate.metadynamics.reweighted_fes`'s dict), ``basins`` (basin -> (value, low, high)),
        ``ms_per_step`` (plain MD, one molecule, wall), ``cpu_ms_per_step`` (the same, CPU time received),
        ``costs_ms_per_step`` (every timing of the reference run), ``lengths``, ``protocol``, ``record``, ``note``.

    Examples
    --------
    >>> load_teacher(bins=36)["available"]  # doctest: +SKIP
    True
    """
    from ..simulate.metadynamics import basin_populations, reweighted_fes
    from .measure import BASINS

    path = TEACHER_FILE if path is None else os.fspath(path)
    if not os.path.isfile(path):
        return {"available": False, "path": path,
                "note": f"the teacher's reference {path} does not exist (run bench/teacher_fes.py)"}
    with np.load(path, allow_pickle=False) as data:
        out = {"available": True, "path": path}
        temperature = _scalar(data, "temperature_k") or 300.0
        if {"phi_rad", "psi_rad"} <= set(data.files):
            phi, psi = np.asarray(data["phi_rad"], dtype=np.float64), np.asarray(data["psi_rad"], dtype=np.float64)
            weights = np.asarray(data["weights"], dtype=np.float64) if "weights" in data.files else None
            out["fes"] = reweighted_fes(phi, psi, weights, temperature, int(bins))
            out["frames"] = int(phi.size)
        elif "fes_kt" in data.files and np.asarray(data["fes_kt"]).shape == (int(bins), int(bins)):
            grid = np.asarray(data["fes_kt"], dtype=np.float64)
            out["fes"] = {"fes_kt": grid, "edges_rad": np.linspace(-np.pi, np.pi, int(bins) + 1),
                          "temperature_k": temperature}
        else:
            return {"available": False, "path": path,
                    "note": f"{path} has neither the teacher's frames (phi_rad, psi_rad, weights) nor a "
                            f"{bins}x{bins} fes_kt grid"}
        if "basin_populations" in data.files and np.asarray(data["basin_populations"]).shape == (len(BASINS), 3):
            table = np.asarray(data["basin_populations"], dtype=np.float64)
            out["basins"] = {name: tuple(float(v) for v in table[k]) for k, name in enumerate(BASINS)}
        elif "frames" in out:
            out["basins"] = basin_populations(phi, psi, np.ones_like(phi) if weights is None else weights,
                                              n_boot=n_boot, seed=seed)
        out["ms_per_step"] = _scalar(data, "ms_per_step", "metad_ms_per_step")
        record = _text(data, "record")
        record = record if isinstance(record, dict) else {}
        out["record"] = record
        out["lengths"] = record.get("lengths") or _text(data, "lengths")
        out["protocol"] = record.get("protocol") or _text(data, "protocol")
        costs = record.get("ms_per_step") or {}
        out["cpu_ms_per_step"] = costs.get("single_molecule_cpu")
        out["costs_ms_per_step"] = costs
        out["note"] = _text(data, "note")
        out["date"] = record.get("date") or _text(data, "date")
    return out


def same_protocol(a, b):
    """Whether two :class:`~nnforce.simulate.metadynamics.SamplingProtocol` dicts agree on everything but the
    lengths (``metad_steps``, ``replicas``, ``production_steps``): the names that differ."""
    lengths = {"metad_steps", "replicas", "production_steps"}
    if not a or not b:
        return ["(no protocol recorded)"]
    return sorted(k for k in set(a) | set(b) if k not in lengths and a.get(k) != b.get(k))


def compare_output(out_dir, path=None, bins=36, n_boot=200, seed=0):
    """A finished demo's production (``out_dir/ensemble/production.npz``) against the teacher's reference, after the
    fact (e.g. when the reference file arrived after the run): the reweighted FES comparison and both sides' basin
    populations, computed exactly as the demo's analyze step does.

    Examples
    --------
    >>> compare_output("demo-output")["rms_kt"]  # doctest: +SKIP
    0.8
    """
    from ..simulate.metadynamics import basin_populations, fes_comparison, frame_weights, reweighted_fes

    with np.load(os.path.join(os.fspath(out_dir), "ensemble", "production.npz")) as data:
        phi, psi, bias = data["phi_rad"], data["psi_rad"], data["bias_kj_mol"]
        temperature = float(data["temperature_k"])
    weights = frame_weights(bias, temperature)
    student = reweighted_fes(phi, psi, weights, temperature, int(bins))
    teacher = load_teacher(path, bins, n_boot, seed)
    if not teacher["available"]:
        raise FileNotFoundError(teacher["note"])
    out = fes_comparison(student, teacher["fes"])
    out.update({"student_basins": basin_populations(phi, psi, weights, n_boot=n_boot, seed=seed),
                "teacher_basins": teacher["basins"], "teacher_ms_per_step": teacher["ms_per_step"],
                "teacher_cpu_ms_per_step": teacher["cpu_ms_per_step"], "teacher_lengths": teacher["lengths"],
                "teacher_protocol": teacher["protocol"]})
    return out
