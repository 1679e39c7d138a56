"""Reweighting and comparison for issue 25's static-bias sampling (:mod:`nnforce.simulate.metadynamics`): frame
weights exp(+V/kT), the (phi, psi) free energy, basin populations with bootstrap intervals over replicas, the
RMS difference of two surfaces, the noise of one, and the unbiased stationary distribution of a biased MSM."""
import math
import os

import numpy as np

from ..units import MOLAR_GAS_CONSTANT_KJ_MOL_K

__all__ = ["frame_weights", "reweighted_fes", "basin_populations", "fes_rms_difference", "fes_comparison",
           "fes_noise", "reweight_stationary", "TEACHER_FES", "load_teacher_fes"]

TEACHER_FES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo", "data",
                           "teacher_fes.npz")
"""The teacher's (ANI-1x) reference made by ``bench/teacher_fes.py`` with this protocol (package data)."""


def frame_weights(bias_kj_mol, temperature_k):
    """Unbiased weights of frames sampled under a static bias: ``w ~ exp(+V/kT)``, normalised to sum 1 over all
    frames (same shape as ``bias_kj_mol``)."""
    v = np.asarray(bias_kj_mol, dtype=np.float64)
    if v.size == 0:
        raise ValueError("frame_weights: no frames (the bias array is empty)")
    if not np.isfinite(v).all():
        raise ValueError("frame_weights: the bias values are not all finite")
    if not (isinstance(temperature_k, (int, float, np.floating)) and temperature_k > 0):
        raise ValueError(f"frame_weights: temperature_k must be positive, got {temperature_k!r}")
    x = v / (MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k)
    w = np.exp(x - x.max())
    return w / w.sum()


def _angles(phi, psi, weights=None):
    phi = np.asarray(phi, dtype=np.float64)
    psi = np.asarray(psi, dtype=np.float64)
    if phi.shape != psi.shape:
        raise ValueError(f"phi and psi differ in shape: {phi.shape} vs {psi.shape}")
    if weights is None:
        weights = np.ones_like(phi)
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != phi.shape:
        raise ValueError(f"weights have shape {weights.shape} but the angles {phi.shape}: one weight per frame")
    if phi.size == 0:
        raise ValueError("no frames")
    if not (np.isfinite(phi).all() and np.isfinite(psi).all() and np.isfinite(weights).all()) or (weights < 0).any():
        raise ValueError("angles and weights must be finite and the weights non-negative")
    return phi, psi, weights


def reweighted_fes(phi_rad, psi_rad, weights=None, temperature_k=300.0, bins=36):
    """The (phi, psi) free energy from weighted frames, on ``bins`` x ``bins`` bins over [-pi, pi)^2.

    Returns
    -------
    dict
        ``fes_kt`` [bins, bins] (phi, psi) in kT with minimum 0, NaN where no frame falls; ``fes_kj_mol`` (the same
        in kJ/mol); ``counts`` (frames per bin); ``probability`` (weights per bin, summing to 1); ``edges_rad``;
        ``temperature_k``.
    """
    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"bins must be a whole number >= 2, got {bins!r}")
    edges = np.linspace(-math.pi, math.pi, bins + 1)
    wrap = lambda a: np.mod(a.ravel() + math.pi, 2 * math.pi) - math.pi  # noqa: E731
    p, _, _ = np.histogram2d(wrap(phi), wrap(psi), bins=[edges, edges], weights=w.ravel())
    counts, _, _ = np.histogram2d(wrap(phi), wrap(psi), bins=[edges, edges])
    total = p.sum()
    if not total > 0:
        raise ValueError("the weights sum to zero")
    p = p / total
    with np.errstate(divide="ignore"):
        fes = np.where(counts > 0, -np.log(np.where(p > 0, p, np.nan)), np.nan)
    fes = fes - np.nanmin(fes)
    kt = MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k
    return {"fes_kt": fes, "fes_kj_mol": fes * kt, "counts": counts, "probability": p, "edges_rad": edges,
            "temperature_k": float(temperature_k)}


def _fes_grid(fes):
    grid = np.asarray(fes["fes_kt"] if isinstance(fes, dict) else fes, dtype=np.float64)
    if grid.ndim != 2:
        raise ValueError(f"a free-energy surface is a 2D grid (or reweighted_fes's dict), got shape {grid.shape}")
    return grid


def fes_comparison(fes_a, fes_b, within_kt=4.0):
    """Two (phi, psi) free energies compared over the bins within ``within_kt`` of the minimum of either surface
    (each measured from its own minimum), after removing the best constant offset (least squares: the mean
    difference).

    Returns
    -------
    dict
        ``rms_kt``; ``offset_kt`` (mean of b - a over the bins); ``bins`` (compared); ``missing_in_a`` /
        ``missing_in_b`` (bins within ``within_kt`` on one surface that the other never sampled: excluded from the
        RMS, reported so a missing basin does not pass unseen).
    """
    a, b = _fes_grid(fes_a), _fes_grid(fes_b)
    if a.shape != b.shape:
        raise ValueError(f"the two surfaces have different grids: {a.shape} vs {b.shape} (use the same bins)")
    if not (np.isfinite(a).any() and np.isfinite(b).any()):
        raise ValueError("a surface has no sampled bin")
    a, b = a - np.nanmin(a), b - np.nanmin(b)
    low_a, low_b = np.isfinite(a) & (a <= within_kt), np.isfinite(b) & (b <= within_kt)
    both = np.isfinite(a) & np.isfinite(b)
    mask = (low_a | low_b) & both
    if not mask.any():
        raise ValueError(f"no bin is sampled on both surfaces within {within_kt} kT of a minimum")
    d = b[mask] - a[mask]
    offset = d.mean()
    return {"rms_kt": float(np.sqrt(np.mean((d - offset) ** 2))), "offset_kt": float(offset), "bins": int(mask.sum()),
            "missing_in_a": int((low_b & ~np.isfinite(a)).sum()), "missing_in_b": int((low_a & ~np.isfinite(b)).sum())}


def fes_rms_difference(fes_a, fes_b, within_kt=4.0):
    """RMS difference in kT between two (phi, psi) free energies over the bins within ``within_kt`` of the minimum
    of either surface, after removing the best constant offset (:func:`fes_comparison` gives the details).

    Examples
    --------
    >>> a = np.array([[0.0, 1.0], [2.0, 9.0]])
    >>> round(fes_rms_difference(a, a + 3.0), 12)
    0.0
    """
    return fes_comparison(fes_a, fes_b, within_kt)["rms_kt"]


def _replica_units(phi, psi, w, blocks):
    """Split frames into bootstrap units: replicas ([R, T] input) or ``blocks`` contiguous blocks (1-D input)."""
    if phi.ndim == 2 and phi.shape[0] > 1:
        return [(phi[k], psi[k], w[k]) for k in range(phi.shape[0])]
    phi, psi, w = phi.ravel(), psi.ravel(), w.ravel()
    chunks = np.array_split(np.arange(phi.size), min(blocks, phi.size))
    return [(phi[c], psi[c], w[c]) for c in chunks]


def basin_populations(phi_rad, psi_rad, weights=None, n_boot=200, seed=0, blocks=10):
    """Weighted populations of the four basins of :data:`nnforce.demo.measure.BASINS`, with 95% bootstrap intervals.

    Parameters
    ----------
    phi_rad, psi_rad, weights : array [R, T]
        Per replica and frame (the bootstrap resamples whole replicas, which are independent); 1-D arrays are
        split into ``blocks`` contiguous blocks instead. Weights from :func:`frame_weights` (one normalisation for
        all frames: a static bias makes every replica's weights comparable).
    n_boot : int
    seed : int

    Returns
    -------
    dict
        basin name -> (population, 2.5th percentile, 97.5th percentile).
    """
    from ..demo.measure import BASINS, basin_indices

    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive whole number, got {n_boot!r}")
    units = _replica_units(phi, psi, w, blocks)
    sums = np.zeros((len(units), len(BASINS)))
    for u, (a, b, weight) in enumerate(units):
        sums[u] = np.bincount(basin_indices(a, b), weights=weight, minlength=len(BASINS))
    if not sums.sum() > 0:
        raise ValueError("the weights sum to zero")
    value = sums.sum(axis=0) / sums.sum()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(units), size=(n_boot, len(units)))
    boot = sums[draws].sum(axis=1)
    boot = boot / np.maximum(boot.sum(axis=1, keepdims=True), 1e-300)
    low, high = np.percentile(boot, [2.5, 97.5], axis=0)
    return {name: (float(value[i]), float(low[i]), float(high[i])) for i, name in enumerate(BASINS)}


def fes_noise(phi_rad, psi_rad, weights, temperature_k=300.0, bins=36, within_kt=4.0, n_boot=50, seed=0,
              blocks=10):
    """How noisy a reweighted free energy is, from its own frames: (1) the bootstrap over replicas (or blocks) --
    the RMS over bins within ``within_kt`` of the per-bin standard deviation of the bootstrap surfaces; (2) a split
    into two halves (even/odd replicas) -- their :func:`fes_rms_difference` / 2, the noise of the whole (each half
    has sqrt(2) x the noise of the whole, their difference sqrt(2) x a half's).

    Returns
    -------
    dict
        ``bootstrap_rms_kt``, ``half_split_rms_kt``, ``half_split_difference_kt``, ``bins``.
    """
    phi, psi, w = _angles(phi_rad, psi_rad, weights)
    units = _replica_units(phi, psi, w, blocks)
    full = reweighted_fes(phi, psi, w, temperature_k, bins)["fes_kt"]
    mask = np.isfinite(full) & (full <= within_kt)
    rng = np.random.default_rng(seed)
    surfaces = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(units), size=len(units))
        a = np.concatenate([units[k][0] for k in pick])
        b = np.concatenate([units[k][1] for k in pick])
        c = np.concatenate([units[k][2] for k in pick])
        surfaces.append(reweighted_fes(a, b, c, temperature_k, bins)["fes_kt"])
    surfaces = np.array(surfaces)
    # per-bin std of the bootstrap surfaces, each aligned to the full one by its mean offset over the mask
    aligned = []
    for s in surfaces:
        ok = mask & np.isfinite(s)
        aligned.append(s - np.mean(s[ok] - full[ok]) if ok.any() else s)
    aligned = np.array(aligned)
    with np.errstate(invalid="ignore"):
        std = np.nanstd(aligned, axis=0)
    with np.errstate(invalid="ignore"):
        boot = float(np.sqrt(np.nanmean(std[mask] ** 2))) if np.isfinite(std[mask]).any() else float("nan")
    halves = [[u for k, u in enumerate(units) if k % 2 == h] for h in (0, 1)]
    half_fes = [reweighted_fes(np.concatenate([u[0] for u in half]), np.concatenate([u[1] for u in half]),
                               np.concatenate([u[2] for u in half]), temperature_k, bins) for half in halves]
    try:
        split = fes_rms_difference(half_fes[0], half_fes[1], within_kt)
    except ValueError:  # too few frames: the halves share no low bin
        split = float("nan")
    return {"bootstrap_rms_kt": boot, "half_split_difference_kt": split, "half_split_rms_kt": split / 2.0,
            "bins": int(mask.sum())}


def reweight_stationary(stationary_biased, bias_kj_mol, assignments, temperature_k):
    """The unbiased stationary distribution of a Markov model built on biased (static-bias) trajectories:
    ``pi_i ~ pi_b,i <exp(V/kT)>_i``, the average over the frames assigned to state i.

    Parameters
    ----------
    stationary_biased : array [S]
        The MSM's stationary distribution (of the biased dynamics).
    bias_kj_mol : array
        V of every frame.
    assignments : int array, the shape of ``bias_kj_mol``
        The state of every frame (index into ``stationary_biased``; negative = not in the active set, ignored).
    temperature_k : float

    Returns
    -------
    numpy.ndarray [S], summing to 1
    """
    pi = np.asarray(stationary_biased, dtype=np.float64)
    v = np.asarray(bias_kj_mol, dtype=np.float64).ravel()
    s = np.asarray(assignments).ravel()
    if v.shape != s.shape:
        raise ValueError(f"one state per frame: {s.shape} assignments for {v.shape} bias values")
    x = v / (MOLAR_GAS_CONSTANT_KJ_MOL_K * temperature_k)
    shift = x.max()
    keep = (s >= 0) & (s < len(pi))
    sums = np.bincount(s[keep], weights=np.exp(x[keep] - shift), minlength=len(pi))
    counts = np.bincount(s[keep], minlength=len(pi))
    if (counts[pi > 0] == 0).any():
        raise ValueError("a state with stationary weight has no frame assigned: cannot average its bias")
    mean = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0)
    out = pi * mean
    return out / out.sum()


def load_teacher_fes(path=None):
    """The teacher's reference (:data:`TEACHER_FES`, written by ``bench/teacher_fes.py``).

    Returns
    -------
    dict
        ``fes`` (as :func:`reweighted_fes` returns it: ``fes_kt``, ``counts``, ``edges_rad``, ``temperature_k``),
        ``basin_populations`` (name -> (value, low, high)), ``phi_rad``/``psi_rad``/``weights``/``bias_kj_mol``
        [R, T] of its frames, ``bias_grid_kj_mol``, ``ms_per_step`` (one molecule, wall, CPU platform, 1 thread)
        and ``record`` (protocol, lengths, seed, timings, noise, versions, date).

    Raises
    ------
    FileNotFoundError
        No reference file (run ``python bench/teacher_fes.py``).
    """
    import json

    path = TEACHER_FES if path is None else os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"teacher reference not found: {path}; make it with python bench/teacher_fes.py")
    with np.load(path, allow_pickle=False) as data:
        record = json.loads(str(data["record"]))
        fes = {"fes_kt": data["fes_kt"], "counts": data["counts"], "edges_rad": data["edges_rad"],
               "temperature_k": float(record["protocol"]["temperature_k"])}
        return {"fes": fes, "record": record,
                "basin_populations": {str(k): tuple(float(v) for v in row)
                                      for k, row in zip(data["basins"], data["basin_populations"])},
                "phi_rad": data["phi_rad"], "psi_rad": data["psi_rad"], "weights": data["weights"],
                "bias_kj_mol": data["bias_kj_mol_frames"], "bias_grid_kj_mol": data["bias_grid_kj_mol"],
                "ms_per_step": float(data["ms_per_step"])}
