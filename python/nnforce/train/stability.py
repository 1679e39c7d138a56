"""Is a trained model fit to drive MD? :func:`md_stability` runs it through NNForce: seeded Langevin MD at a
(high) temperature, checking that every covalent bond stays within a window of its reference length, then a
short NVE run whose total-energy drift is measured.

Covalent bonds are the pairs of the reference structure closer than ``bond_tolerance`` times the sum of the
atoms' covalent radii (Cordero et al. 2008, Dalton Trans. 2832); their reference lengths are those distances.
Units: nm, ps, fs (named), K, kJ/mol.
"""
import math
import os
import time

import numpy as np

from ..force import build_context, build_ml_system, topology_of
from ..units import FS_PER_PS, MOLAR_GAS_CONSTANT_KJ_MOL_K

# Covalent radii, nm (Cordero et al. 2008; sp3 carbon).
COVALENT_RADII_NM = {1: 0.031, 5: 0.084, 6: 0.076, 7: 0.071, 8: 0.066, 9: 0.057, 14: 0.111, 15: 0.107, 16: 0.105,
                     17: 0.102, 35: 0.120, 53: 0.139}


def covalent_bonds(atomic_numbers, positions_nm, bond_tolerance=1.2):
    """The covalent bonds of a structure: ``(pairs int [B, 2], reference lengths nm [B])``.

    Parameters
    ----------
    atomic_numbers : sequence of int
    positions_nm : array [N, 3]
    bond_tolerance : float
        A pair is bonded when closer than this times the sum of covalent radii.

    Raises
    ------
    ValueError
        For an element without a tabulated covalent radius, or a structure with no bonds.

    Examples
    --------
    >>> pairs, lengths = covalent_bonds([8, 1, 1], [[0, 0, 0], [0.0957, 0, 0], [-0.024, 0.0927, 0]])
    >>> pairs.tolist()
    [[0, 1], [0, 2]]
    """
    z = [int(v) for v in atomic_numbers]
    missing = sorted(set(z) - set(COVALENT_RADII_NM))
    if missing:
        raise ValueError(f"no covalent radius for atomic numbers {missing}; known: {sorted(COVALENT_RADII_NM)}")
    x = np.asarray(positions_nm, dtype=np.float64).reshape(len(z), 3)
    radii = np.array([COVALENT_RADII_NM[v] for v in z])
    distance = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    i, j = np.nonzero(np.triu(distance < bond_tolerance * (radii[:, None] + radii[None, :]), k=1))
    if len(i) == 0:
        raise ValueError("the reference structure has no covalent bonds (positions in nm?)")
    return np.stack([i, j], axis=1), distance[i, j]


BOND_WINDOW = (0.7, 1.6)
"""A covalent bond outside this multiple of its reference length is broken (exploration and :func:`bond_breaks`)."""


def bond_breaks(atomic_numbers, reference_nm, trajectories_nm, window=BOND_WINDOW):
    """Where each trajectory first stops being the reference molecule: the first frame where a covalent bond of
    ``reference_nm`` (:func:`covalent_bonds`) leaves ``window`` times its reference length (the same window as
    :func:`nnforce.train.learn.explore`).

    Parameters
    ----------
    atomic_numbers : sequence of int
    reference_nm : array [N, 3]
    trajectories_nm : array [R, T, N, 3] (or [T, N, 3]: one trajectory)
    window : (float, float)

    Returns
    -------
    list of dict
        One per trajectory that leaves the window: ``trajectory``, ``frame`` (first frame outside), ``bond`` (atom
        indices), ``ratio`` (its length over the reference there). Empty when every bond holds in every frame.

    Examples
    --------
    >>> x = np.array([[0, 0, 0], [0.0957, 0, 0], [-0.024, 0.0927, 0]])
    >>> bond_breaks([8, 1, 1], x, np.stack([x, x * [2.0, 1, 1]])[None])
    [{'trajectory': 0, 'frame': 1, 'bond': [0, 1], 'ratio': 2.0}]
    """
    low, high = (float(v) for v in window)
    if not 0 < low < 1 < high:
        raise ValueError(f"window must be (low, high) with 0 < low < 1 < high, got {window!r}")
    pairs, reference = covalent_bonds(atomic_numbers, reference_nm)
    x = np.asarray(trajectories_nm, dtype=np.float64)
    if x.ndim == 3:
        x = x[None]
    if x.ndim != 4 or x.shape[-2:] != (len(reference_nm), 3):
        raise ValueError(f"trajectories_nm must be [R, T, {len(reference_nm)}, 3], got shape {x.shape}")
    ratio = np.linalg.norm(x[..., pairs[:, 0], :] - x[..., pairs[:, 1], :], axis=-1) / reference  # [R, T, B]
    outside = (ratio <= low) | (ratio >= high)
    found = []
    for r in np.flatnonzero(outside.any(axis=(1, 2))):
        t = int(np.argmax(outside[r].any(axis=1)))
        b = int(np.argmax(np.abs(np.log(ratio[r, t]))))
        found.append({"trajectory": int(r), "frame": t, "bond": [int(v) for v in pairs[b]],
                      "ratio": round(float(ratio[r, t, b]), 4)})
    return found


def molecule_context(model, atomic_numbers, integrator, platform="CPU", precision=None):
    """A Context of one molecule (no box) known by its atomic numbers, under a pure-ML System of ``model``.

    A ``.pt2`` package file takes exactly the inputs it was compiled with, so it gets a neighbor list when it names
    one; a TorchScript model makes its own pairs.

    Parameters
    ----------
    model : str, bytes or torch.jit.ScriptModule
    atomic_numbers : sequence of int
    integrator : openmm.Integrator
    platform : str
    precision : {"single", "double"}, optional

    Returns
    -------
    openmm.Context
    """
    system = build_ml_system(model, topology_of(atomic_numbers), neighbor_cutoff_nm=ml_cutoff(model),
                             precision=precision)
    return build_context(system, integrator, platform)


def ml_cutoff(model):
    """The neighbor-list cutoff (nm) a ``.pt2`` package file was compiled with; None for other models (TorchScript
    models make their own pairs)."""
    if isinstance(model, (str, os.PathLike)):
        from .._pt2_package import is_pt2
        from ..contract import inspect_model, neighbor_cutoff

        if is_pt2(model):
            return neighbor_cutoff(inspect_model(model))
    return None


def md_stability(model, atomic_numbers, positions_nm, temperature_k=500.0, time_ps=100.0, timestep_fs=0.5,
                 friction_per_ps=1.0, seed=0, window=(0.8, 1.3), check_interval=20, nve_ps=2.0, nve_timestep_fs=0.25,
                 platform="CPU", precision="double", reference_positions_nm=None):  # noqa: C901
    """Run ``model`` through NNForce in Langevin MD and report whether its covalent bonds held, and NVE drift.

    Parameters
    ----------
    model : str, bytes or torch.jit.ScriptModule
        The exported model (anything ``nnforce.NNForce`` takes).
    atomic_numbers : sequence of int
    positions_nm : array [N, 3]
        The starting structure.
    temperature_k, time_ps, timestep_fs, friction_per_ps, seed
        The Langevin run (``LangevinMiddleIntegrator``, velocities and noise drawn from ``seed``).
    window : (float, float)
        Allowed bond length, as fractions of each bond's reference length.
    check_interval : int
        Steps between bond checks (the run stops at the first broken bond).
    nve_ps, nve_timestep_fs : float
        The NVE run from the Langevin run's end (``VerletIntegrator``; 0 skips it).
    platform, precision : str
        OpenMM platform and the model's precision property (``"double"`` keeps NVE drift meaningful).
    reference_positions_nm : array [N, 3] or [F, N, 3], optional
        The structure giving the bonds and their reference lengths (default ``positions_nm``); with several
        frames (e.g. the training data of this molecule) the bonds are those of the first and the reference
        lengths their mean over the frames, so one distorted frame does not set them.

    Returns
    -------
    dict
        ``stable`` (bool), ``min_ratio``/``max_ratio`` (extreme bond length / reference over the run),
        ``broken_bond`` (atom pair, or None), ``failed_at_ps`` (or None), ``simulated_ps``,
        ``temperature_mean_k``, ``nve_drift_kj_mol_ps_atom`` (slope of the total energy; NaN when skipped or
        unstable), ``num_bonds``, ``wall_s``, ``cpu_s``, and the settings.

    Examples
    --------
    >>> report = md_stability("ethanol.pt", z, x, time_ps=1.0)  # doctest: +SKIP
    >>> report["stable"]  # doctest: +SKIP
    True
    """
    import openmm
    from openmm import unit

    from ..simulate.outputs import energy_drift

    started, cpu_started = time.perf_counter(), time.process_time()
    z = [int(v) for v in atomic_numbers]
    x0 = np.asarray(positions_nm, dtype=np.float64).reshape(len(z), 3)
    frames = x0[None] if reference_positions_nm is None else np.asarray(reference_positions_nm, dtype=np.float64)
    frames = frames.reshape(-1, len(z), 3)
    pairs, _ = covalent_bonds(z, frames[0])
    reference = np.linalg.norm(frames[:, pairs[:, 0]] - frames[:, pairs[:, 1]], axis=-1).mean(axis=0)
    low, high = float(window[0]), float(window[1])
    integrator = openmm.LangevinMiddleIntegrator(temperature_k * unit.kelvin, friction_per_ps / unit.picosecond,
                                                 timestep_fs / FS_PER_PS * unit.picoseconds)
    integrator.setRandomNumberSeed(int(seed) + 1)
    context = molecule_context(model, z, integrator, platform, precision)
    context.setPositions(x0 * unit.nanometer)
    context.setVelocitiesToTemperature(temperature_k * unit.kelvin, int(seed))
    total_steps = int(round(time_ps * FS_PER_PS / timestep_fs))
    step, min_ratio, max_ratio, broken, temperatures = _watch_bonds(context, integrator, pairs, reference, (low, high),
                                                                    total_steps, check_interval)
    stable = broken is None
    drift = float("nan")
    if stable and nve_ps > 0:
        drift = _nve_drift(model, z, context, nve_ps, nve_timestep_fs, platform, precision, energy_drift)
    return {"stable": stable, "min_ratio": min_ratio, "max_ratio": max_ratio,
            "broken_bond": None if stable else list(broken),
            "failed_at_ps": None if stable else step * timestep_fs / FS_PER_PS,
            "simulated_ps": step * timestep_fs / FS_PER_PS, "temperature_mean_k": float(np.mean(temperatures))
            if temperatures else float("nan"), "nve_drift_kj_mol_ps_atom": drift, "num_bonds": int(len(pairs)),
            "window": [low, high], "temperature_k": float(temperature_k), "time_ps": float(time_ps),
            "timestep_fs": float(timestep_fs), "seed": int(seed), "platform": platform,
            "wall_s": time.perf_counter() - started, "cpu_s": time.process_time() - cpu_started}


def _watch_bonds(context, integrator, pairs, reference, window, total_steps, check_interval):
    """Step ``integrator`` until ``total_steps`` or the first bond outside ``window`` (fractions of ``reference``);
    returns (steps done, smallest and largest ratio, the broken pair or None, temperatures in K)."""
    import openmm
    from openmm import unit

    low, high = window
    dof = 3 * context.getSystem().getNumParticles()
    step, min_ratio, max_ratio, broken, temperatures = 0, math.inf, -math.inf, None, []
    while step < total_steps and broken is None:
        n = min(check_interval, total_steps - step)
        try:
            integrator.step(n)
            state = context.getState(getPositions=True, getEnergy=True)
            x = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        except openmm.OpenMMException:  # a non-finite energy or force: the model broke down
            broken, x = (-1, -1), None
        step += n
        if x is None:
            break
        ratio = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1) / reference
        if not np.all(np.isfinite(ratio)):
            broken = (-1, -1)
            break
        min_ratio, max_ratio = min(min_ratio, float(ratio.min())), max(max_ratio, float(ratio.max()))
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        temperatures.append(2 * kinetic / (dof * MOLAR_GAS_CONSTANT_KJ_MOL_K))
        bad = np.nonzero((ratio < low) | (ratio > high))[0]
        if len(bad):
            worst = bad[np.argmax(np.abs(np.log(ratio[bad])))]
            broken = (int(pairs[worst, 0]), int(pairs[worst, 1]))
    return step, min_ratio, max_ratio, broken, temperatures


def _nve_drift(model, z, langevin_context, nve_ps, timestep_fs, platform, precision, energy_drift):
    """Slope of the total energy (kJ/mol/ps per atom) of an NVE run started from the Langevin run's end."""
    import openmm
    from openmm import unit

    state = langevin_context.getState(getPositions=True, getVelocities=True)
    integrator = openmm.VerletIntegrator(timestep_fs / FS_PER_PS * unit.picoseconds)
    context = molecule_context(model, z, integrator, platform, precision)
    context.setPositions(state.getPositions())
    context.setVelocities(state.getVelocities())
    steps = int(round(nve_ps * FS_PER_PS / timestep_fs))
    interval = max(1, steps // 100)
    times, totals = [], []
    for k in range(0, steps + 1, interval):
        if k:
            integrator.step(interval)
        s = context.getState(getEnergy=True)
        times.append(k * timestep_fs / FS_PER_PS)
        totals.append((s.getPotentialEnergy() + s.getKineticEnergy()).value_in_unit(unit.kilojoule_per_mole))
    if not np.all(np.isfinite(totals)):
        return float("nan")
    return energy_drift(times, totals, len(z))
