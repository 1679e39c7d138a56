"""The teacher's reference: ANI-1x run once with issue 25's sampling protocol by ``bench/teacher_fes.py`` (the demo's
15 minutes cannot hold ANI-1x sampling as long as the student), stored as package data
``nnforce/demo/data/teacher_fes.npz`` and read by :func:`nnforce.simulate.metadynamics.load_teacher_fes`. The demo
compares its student against it on the same bins: the free energy is recomputed from the teacher's frames (phi,
psi, weights), so any bin count works."""
import os

import numpy as np

__all__ = ["TEACHER_FILE", "load_teacher", "same_protocol", "compare_output"]

TEACHER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "teacher_fes.npz")


def load_teacher(path=None, bins=36):
    """The teacher's reference read by :func:`nnforce.simulate.metadynamics.load_teacher_fes`, its reweighted
    phi/psi free energy recomputed from its frames on ``bins`` x ``bins`` bins (the student's binning).

    Parameters
    ----------
    path : str, optional
        Default :data:`TEACHER_FILE`.
    bins : int

    Returns
    -------
    dict
        ``available`` (False, with ``note``, when the file is missing), ``path``, ``fes``
        (:func:`nnforce.simulate.metadynamics.reweighted_fes`'s dict), ``basins`` (basin -> (value, low, high), as
        the reference run measured them), ``ms_per_step`` (plain MD, one molecule, wall), ``cpu_ms_per_step`` (the
        same, CPU time received), ``costs_ms_per_step`` (every timing of the reference run), ``lengths``,
        ``protocol``, ``record``, ``date``.

    Examples
    --------
    >>> load_teacher(bins=36)["available"]  # doctest: +SKIP
    True
    """
    from ..simulate.metadynamics import load_teacher_fes, reweighted_fes

    path = TEACHER_FILE if path is None else os.fspath(path)
    try:
        reference = load_teacher_fes(path)
    except FileNotFoundError as error:
        return {"available": False, "path": path, "note": str(error)}
    record = reference["record"]
    costs = record.get("ms_per_step") or {}
    return {"available": True, "path": path, "record": record,
            "fes": reweighted_fes(reference["phi_rad"], reference["psi_rad"], reference["weights"],
                                  reference["fes"]["temperature_k"], int(bins)),
            "basins": reference["basin_populations"], "ms_per_step": reference["ms_per_step"],
            "cpu_ms_per_step": costs.get("single_molecule_cpu"), "costs_ms_per_step": costs,
            "lengths": record.get("lengths"), "protocol": record.get("protocol"), "date": record.get("date")}


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
    teacher = load_teacher(path, bins)
    if not teacher["available"]:
        raise FileNotFoundError(teacher["note"])
    out = fes_comparison(student, teacher["fes"])
    out.update({"student_basins": basin_populations(phi, psi, weights, n_boot=n_boot, seed=seed),
                "teacher_basins": teacher["basins"], "teacher_ms_per_step": teacher["ms_per_step"],
                "teacher_cpu_ms_per_step": teacher["cpu_ms_per_step"], "teacher_lengths": teacher["lengths"],
                "teacher_protocol": teacher["protocol"]})
    return out
