"""The exploring and labelling half of active learning (:mod:`nnforce.train.learn`): MD with a committee through
NNForce, optionally biased by well-tempered metadynamics on torsions (``openmm.app.Metadynamics``) with hydrogen
mass repartitioning; torsion angles and the data's coverage of them; the selection of frames to label (uncertainty,
raised where the coverage is thin); labelling with xTB or a teacher model; the committee's error on fresh frames.
"""
import numpy as np

from ..units import FS_PER_PS

__all__ = ["METADYNAMICS_DEFAULTS", "torsion_angles", "torsion_distance", "coverage_gaps", "explore", "select",
           "label_frames", "fresh_errors"]

METADYNAMICS_DEFAULTS = {"height_kj_mol": 1.5, "sigma_deg": 20.0, "bias_factor": 8.0, "frequency_steps": 100,
                         "grid_width": 60}


def torsion_angles(frames_nm, torsions):
    """Torsion angles (degrees, [F, T], in [-180, 180)) of frames [F, N, 3] nm, IUPAC sign convention.

    Examples
    --------
    >>> x = np.array([[[1.0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 1, 1]]])  # a right angle about the y axis
    >>> torsion_angles(x, [[0, 1, 2, 3]]).round(6).tolist()
    [[-90.0]]
    """
    x = np.asarray(frames_nm, dtype=np.float64)
    out = []
    for i, j, k, l in torsions:
        b0, b1, b2 = x[:, i] - x[:, j], x[:, k] - x[:, j], x[:, l] - x[:, k]
        b1n = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
        v = b0 - np.sum(b0 * b1n, axis=-1, keepdims=True) * b1n
        w = b2 - np.sum(b2 * b1n, axis=-1, keepdims=True) * b1n
        angle = np.degrees(np.arctan2(np.sum(np.cross(b1n, v) * w, axis=-1), np.sum(v * w, axis=-1)))
        out.append((angle + 180.0) % 360.0 - 180.0)
    return np.stack(out, axis=1) if out else np.zeros((len(x), 0))


def torsion_distance(a_deg, b_deg):
    """Distances (degrees) between every torsion vector of ``a`` [A, T] and ``b`` [B, T]: the Euclidean norm of the
    periodic (wrapped to +-180) differences; [A, B]."""
    d = np.asarray(a_deg, dtype=np.float64)[:, None, :] - np.asarray(b_deg, dtype=np.float64)[None, :, :]
    d = (d + 180.0) % 360.0 - 180.0
    return np.sqrt(np.sum(d * d, axis=-1))


def coverage_gaps(angles_deg, covered_deg):
    """For each torsion vector of ``angles_deg`` [F, T], the distance (degrees) to the nearest of ``covered_deg``
    [C, T] (the training data's): how thin the data are there (inf when ``covered_deg`` is empty)."""
    angles_deg = np.asarray(angles_deg, dtype=np.float64)
    if len(covered_deg) == 0:
        return np.full(len(angles_deg), np.inf)
    return np.concatenate([torsion_distance(angles_deg[k:k + 256], covered_deg).min(axis=1)
                           for k in range(0, len(angles_deg), 256)]) if len(angles_deg) else np.zeros(0)


def _metadynamics(system, torsions, settings, temperature_k):
    """Well-tempered metadynamics (``openmm.app.Metadynamics``) on the torsions, added to ``system``."""
    import openmm
    from openmm import app, unit

    unknown = sorted(set(settings) - set(METADYNAMICS_DEFAULTS))
    if unknown:
        raise ValueError(f"explore.metadynamics: unknown settings {unknown}; known: {sorted(METADYNAMICS_DEFAULTS)}")
    options = {**METADYNAMICS_DEFAULTS, **settings}
    if len(torsions) > 3:
        raise ValueError(f"metadynamics biases at most 3 torsions (openmm.app.Metadynamics), got {len(torsions)}")
    if float(options["bias_factor"]) <= 1 or float(options["height_kj_mol"]) <= 0 or float(options["sigma_deg"]) <= 0:
        raise ValueError(f"explore.metadynamics needs bias_factor > 1, height_kj_mol > 0 and sigma_deg > 0, "
                         f"got {options}")
    n = system.getNumParticles()
    if max(max(t) for t in torsions) >= n:
        raise ValueError(f"torsions {torsions} name atoms beyond the molecule's {n}")
    variables = []
    for t in torsions:
        cv = openmm.CustomTorsionForce("theta")
        cv.addTorsion(*[int(i) for i in t])
        variables.append(app.BiasVariable(cv, -np.pi, np.pi, np.radians(float(options["sigma_deg"])), periodic=True,
                                          gridWidth=int(options["grid_width"])))
    return app.Metadynamics(system, variables, temperature_k * unit.kelvin, float(options["bias_factor"]),
                            float(options["height_kj_mol"]) * unit.kilojoule_per_mole, int(options["frequency_steps"]))


def explore(model_path, atomic_numbers, positions_nm, settings, seed, torsions=None):
    """Langevin MD with the committee; returns (positions [F, N, 3] nm, uncertainties [F] kJ/mol, stopped_early).

    ``settings``: ``temperature_k``, ``time_ps``, ``timestep_fs``, ``friction_per_ps``, ``sample_interval`` (steps
    between saved frames), ``platform``, optionally ``hydrogen_mass_amu`` (hydrogen mass repartitioning along the
    start's covalent bonds, for time steps of 2 fs) and ``metadynamics``: a dict (``height_kj_mol``, ``sigma_deg``,
    ``bias_factor``, ``frequency_steps``, ``grid_width``; defaults :data:`METADYNAMICS_DEFAULTS`) that adds
    well-tempered metadynamics (``openmm.app.Metadynamics``, periodic grids) on ``torsions`` (atom indices) to the
    committee's System, so the walker is pushed out of the basins it has filled, over the barriers.
    """
    import openmm
    from openmm import unit

    from ..force import build_context, build_ml_system, topology_of
    from .stability import BOND_WINDOW, covalent_bonds, ml_cutoff

    dt_fs = float(settings.get("timestep_fs", 0.5))
    temperature = float(settings.get("temperature_k", 500.0))
    integrator = openmm.LangevinMiddleIntegrator(temperature * unit.kelvin,
                                                 float(settings.get("friction_per_ps", 1.0)) / unit.picosecond,
                                                 dt_fs / FS_PER_PS * unit.picoseconds)
    integrator.setRandomNumberSeed(int(seed) + 1)
    system = build_ml_system(model_path, topology_of(atomic_numbers), neighbor_cutoff_nm=ml_cutoff(model_path))
    pairs, reference = covalent_bonds(atomic_numbers, positions_nm)
    if settings.get("hydrogen_mass_amu"):
        _repartition_hydrogen_mass(system, atomic_numbers, pairs, float(settings["hydrogen_mass_amu"]))
    bias = None
    if settings.get("metadynamics"):
        if not torsions:
            raise ValueError("explore.metadynamics needs the torsions to bias (atom indices [[i, j, k, l], ...])")
        bias = _metadynamics(system, torsions, dict(settings["metadynamics"]), temperature)
    context = build_context(system, integrator, settings.get("platform", "CPU"))
    import nnforce

    force = nnforce.NNForce.cast(context.getSystem().getForce(0))
    context.setPositions(np.asarray(positions_nm) * unit.nanometer)
    context.setVelocitiesToTemperature(temperature * unit.kelvin, int(seed))
    interval = int(settings.get("sample_interval", 20))
    samples = int(round(float(settings.get("time_ps", 5.0)) * FS_PER_PS / dt_fs)) // interval
    stepper = _BiasedStepper(bias, context, integrator) if bias is not None else None
    frames, values = [], []
    for _ in range(samples):
        try:
            if stepper is None:
                integrator.step(interval)
            else:
                stepper.step(interval)
            x = context.getState(getPositions=True, getEnergy=True).getPositions(asNumpy=True).value_in_unit(
                unit.nanometer)
        except openmm.OpenMMException:
            return np.array(frames), np.array(values), True
        ratio = np.linalg.norm(x[pairs[:, 0]] - x[pairs[:, 1]], axis=1) / reference
        if not np.all((ratio > BOND_WINDOW[0]) & (ratio < BOND_WINDOW[1])):
            return np.array(frames), np.array(values), True
        frames.append(np.array(x))
        values.append(float(force.getOutput(context, "uncertainty")))
    return np.array(frames), np.array(values), False


def _repartition_hydrogen_mass(system, atomic_numbers, pairs, hydrogen_mass_amu):
    """Give each hydrogen ``hydrogen_mass_amu``, the difference taken from the heavy atom it is bonded to (bonds:
    the covalent ``pairs`` of the start), so longer time steps stay stable; the total mass is unchanged."""
    from openmm import unit

    z = np.asarray(atomic_numbers)
    for a, b in np.asarray(pairs):
        h, heavy = (a, b) if z[a] == 1 else (b, a)
        if z[h] != 1 or z[heavy] == 1:
            continue
        moved = hydrogen_mass_amu - system.getParticleMass(int(h)).value_in_unit(unit.dalton)
        remaining = system.getParticleMass(int(heavy)).value_in_unit(unit.dalton) - moved
        if remaining <= 0:
            raise ValueError(f"explore.hydrogen_mass_amu {hydrogen_mass_amu} leaves atom {heavy} without mass")
        system.setParticleMass(int(h), hydrogen_mass_amu * unit.dalton)
        system.setParticleMass(int(heavy), remaining * unit.dalton)


class _BiasedStepper:
    """Steps a Context under an ``openmm.app.Metadynamics`` bias, which drives an ``app.Simulation``-like object
    (``context``, ``currentStep``, ``step``): this one, without a Topology or reporters."""

    class _Driven:
        def __init__(self, context, integrator):
            self.context, self.integrator, self.currentStep = context, integrator, 0

        def step(self, steps):
            self.integrator.step(int(steps))
            self.currentStep += int(steps)

    def __init__(self, bias, context, integrator):
        self.bias, self.driven = bias, self._Driven(context, integrator)

    def step(self, steps):
        self.bias.step(self.driven, int(steps))


def select(uncertainties, max_frames, threshold_kj_mol=0.0, min_spacing=1, angles_deg=None, covered_deg=None,
           coverage_weight=0.0, coverage_scale_deg=20.0):
    """Indices of the samples to label: uncertainty above the threshold, ``min_spacing`` apart, at most
    ``max_frames``, taken greedily by score.

    The score is the uncertainty; with ``coverage_weight`` > 0 it is ``uncertainty * (1 + coverage_weight *
    min(gap / coverage_scale_deg, 3))`` where ``gap`` is the sample's distance in torsion space (``angles_deg``
    [F, T]) to the nearest covered point: the training data's torsions (``covered_deg`` [C, T]) and the samples
    already chosen. So the committee's disagreement picks the frames, and of equally uncertain ones those where the
    data are thin go first, spread over the thin regions rather than piled into one.

    Examples
    --------
    >>> select(np.array([0.1, 0.9, 0.8, 0.2, 0.7]), 2, min_spacing=2)
    [1, 4]
    """
    u = np.asarray(uncertainties, dtype=np.float64)
    weight = float(coverage_weight)
    if weight < 0 or float(coverage_scale_deg) <= 0:
        raise ValueError(f"coverage_weight must be >= 0 and coverage_scale_deg > 0, got {coverage_weight}, "
                         f"{coverage_scale_deg}")
    gaps = None
    if weight > 0:
        if angles_deg is None or covered_deg is None or len(angles_deg) != len(u):
            raise ValueError("coverage_weight > 0 needs the samples' torsions (angles_deg, one row per sample) and "
                             "the training data's (covered_deg)")
        angles_deg = np.asarray(angles_deg, dtype=np.float64)
        gaps = coverage_gaps(angles_deg, np.asarray(covered_deg, dtype=np.float64).reshape(-1, angles_deg.shape[1]))
    eligible = u > float(threshold_kj_mol)
    chosen = []
    while len(chosen) < int(max_frames) and eligible.any():
        score = u if gaps is None else u * (1.0 + weight * np.minimum(gaps / float(coverage_scale_deg), 3.0))
        k = int(np.flatnonzero(eligible)[np.argmax(score[eligible])])  # the first of equal scores
        chosen.append(k)
        eligible[max(0, k - int(min_spacing) + 1):k + int(min_spacing)] = False
        if gaps is not None:  # the chosen frame now covers its neighbourhood
            gaps = np.minimum(gaps, torsion_distance(angles_deg, angles_deg[[k]])[:, 0])
    return sorted(chosen)


def label_frames(atomic_numbers, frames, label):
    """Label each frame; returns (energies, forces, kept indices, failures [(index, reason)])."""
    from ..data.label import frame_label, xtb_single_point

    energies, forces, kept, failures = [], [], [], []
    teacher = None
    if label != "xtb":
        import torch

        teacher = torch.jit.load(label, map_location="cpu").double().eval()
    for k, x in enumerate(frames):
        try:
            if teacher is None:
                e, f = xtb_single_point(atomic_numbers, x)
            else:
                e, f = frame_label(teacher, np.asarray(atomic_numbers), x)
            if not (np.isfinite(e) and np.all(np.isfinite(f))):
                raise ValueError("non-finite energy or forces")
        except Exception as error:  # a failed label (SCF not converged, ...) skips the frame, never the loop
            failures.append((k, f"{type(error).__name__}: {error}"))
            continue
        energies.append(e)
        forces.append(f)
        kept.append(k)
    return energies, forces, kept, failures


def fresh_errors(committee_path, atomic_numbers, frames, energies, forces):
    """The committee's (mean) error on labelled frames it was not trained on: offset-free energy MAE (the mean
    difference removed, as energies of a model are known up to a constant) and force MAE, kJ/mol and kJ/mol/nm.

    Examples
    --------
    >>> fresh_errors("round_0/committee.pt", z, frames, energies, forces)["fresh_force_mae_kj_mol_nm"]  # doctest: +SKIP
    41.7
    """
    import torch

    committee = torch.jit.load(committee_path, map_location="cpu").double().eval()
    z = torch.as_tensor(np.asarray(atomic_numbers))
    predicted = []
    for x in frames:
        positions = torch.tensor(np.asarray(x), dtype=torch.float64, requires_grad=True)
        energy = committee(positions, z)
        energy = energy["energy"] if isinstance(energy, dict) else energy  # a committee's outputs
        (gradient,) = torch.autograd.grad(energy, positions)
        predicted.append((float(energy.detach()), -gradient.numpy()))
    difference = np.array([p[0] for p in predicted]) - np.asarray(energies, dtype=np.float64)
    force_error = np.concatenate([np.abs(p[1] - np.asarray(f)).ravel() for p, f in zip(predicted, forces)])
    return {"fresh_frames": int(len(frames)),
            "fresh_energy_mae_kj_mol": float(np.abs(difference - difference.mean()).mean()),
            "fresh_force_mae_kj_mol_nm": float(force_error.mean())}
