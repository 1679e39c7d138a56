"""What the demo measures with the library: predictions, the plugin's single points and speed, errors, and
alanine's backbone angles and basins."""
import time

import numpy as np


def predict(model, numbers, frames_nm):
    """Energies [F] (kJ/mol) and forces [F, N, 3] (kJ/mol/nm) of a contract model, frame by frame, float64
    (:func:`nnforce.data.label.label_frames`).

    Parameters
    ----------
    model : torch.nn.Module
    numbers : array of int
    frames_nm : array, shape (F, N, 3)

    Returns
    -------
    tuple
        ``(energies [F], forces [F, N, 3])``.

    Examples
    --------
    >>> energies, forces = predict(model, numbers, frames)  # doctest: +SKIP
    """
    from ..data.label import label_frames

    return label_frames(model, numbers, frames_nm, batch_frames=1)


def phi_psi_of(frames_nm, topology):
    """Alanine's phi (C-N-CA-C) and psi (N-CA-C-N) in radians for frames [F, N, 3]
    (:func:`nnforce.analysis.features.compute_torsions`).

    Parameters
    ----------
    frames_nm : array, shape (F, N, 3)
    topology : openmm.app.Topology

    Returns
    -------
    tuple
        ``(phi [F], psi [F])`` in radians.

    Examples
    --------
    >>> from nnforce.demo.molecule import alanine_dipeptide
    >>> topology, positions = alanine_dipeptide(-70.0, 135.0)
    >>> phi, psi = phi_psi_of(positions.value_in_unit(positions.unit)[None], topology)
    >>> round(float(np.degrees(phi[0])), 3), round(float(np.degrees(psi[0])), 3)
    (-70.0, 135.0)
    """
    import mdtraj

    from ..analysis.features import compute_torsions

    traj = mdtraj.Trajectory(np.asarray(frames_nm, dtype=np.float32), mdtraj.Topology.from_openmm(topology))
    _, angles = compute_torsions(traj, ("phi", "psi"), periodic=False)
    return angles[:, 0].astype(np.float64), angles[:, 1].astype(np.float64)


def circular_mean_deg(angles_rad):
    """Circular mean of angles (radians), in degrees.

    Parameters
    ----------
    angles_rad : array

    Returns
    -------
    float

    Examples
    --------
    >>> round(circular_mean_deg(np.radians([170.0, -170.0])), 6)
    180.0
    """
    return float(np.degrees(np.arctan2(np.mean(np.sin(angles_rad)), np.mean(np.cos(angles_rad)))))


BASINS = ("C7eq / C5 / beta / PPII", "alpha_R", "C7ax", "alpha_L")
"""The four regions of alanine dipeptide's phi/psi plane the demo names (see :func:`basin`)."""

BASIN_CENTRES_DEG = {"C7eq / C5 / beta / PPII": (-80.0, 150.0), "alpha_R": (-70.0, -40.0), "C7ax": (70.0, -70.0),
                     "alpha_L": (60.0, 45.0)}
"""A (phi, psi) inside each region (degrees), where the demo builds a start when the data have none there."""


def basin(phi_deg, psi_deg):
    """A coarse name for a (phi, psi) point of alanine dipeptide: one of :data:`BASINS`.

    phi <= 0: alpha_R for -125 < psi < 15 deg, else C7eq / C5 / beta / PPII; phi > 0: C7ax for psi < 0,
    else alpha_L.

    Parameters
    ----------
    phi_deg, psi_deg : float

    Returns
    -------
    str

    Examples
    --------
    >>> basin(-70.0, -40.0), basin(-80.0, 75.0), basin(70.0, -70.0), basin(60.0, 45.0)
    ('alpha_R', 'C7eq / C5 / beta / PPII', 'C7ax', 'alpha_L')
    """
    if phi_deg > 0:
        return "C7ax" if psi_deg < 0 else "alpha_L"
    if -125.0 < psi_deg < 15.0:
        return "alpha_R"
    return "C7eq / C5 / beta / PPII"


def basin_indices(phi_rad, psi_rad):
    """The index into :data:`BASINS` of every (phi, psi) point (radians), vectorised :func:`basin`.

    Parameters
    ----------
    phi_rad, psi_rad : array

    Returns
    -------
    numpy.ndarray of int

    Examples
    --------
    >>> basin_indices(np.radians([-70.0, 60.0]), np.radians([-40.0, 45.0])).tolist()
    [1, 3]
    """
    phi, psi = np.degrees(np.asarray(phi_rad, dtype=np.float64)), np.degrees(np.asarray(psi_rad, dtype=np.float64))
    index = np.where((psi > -125.0) & (psi < 15.0), 1, 0)
    return np.where(phi > 0, np.where(psi < 0, 2, 3), index)


def basin_populations(phi_rad, psi_rad, weights=None):
    """Population of each of :data:`BASINS` among frames (radians), optionally weighted.

    Parameters
    ----------
    phi_rad, psi_rad : array
    weights : array, optional
        Per-frame weights (e.g. MSM reweighting); default equal.

    Returns
    -------
    dict
        Basin name -> population (summing to 1).

    Examples
    --------
    >>> basin_populations(np.radians([-70.0, -80.0]), np.radians([-40.0, 150.0]))["alpha_R"]
    0.5
    """
    index = basin_indices(phi_rad, psi_rad)
    weights = np.ones(len(index)) if weights is None else np.asarray(weights, dtype=np.float64)
    total = weights.sum()
    if len(index) == 0 or total <= 0:
        raise ValueError("basin populations need at least one frame with positive weight")
    return {name: float(weights[index == k].sum() / total) for k, name in enumerate(BASINS)}


def uncovered_fraction(phi_rad, psi_rad, phi_ref_rad, psi_ref_rad, radius_deg=20.0):
    """Fraction of (phi, psi) points with no reference point within ``radius_deg`` (periodic distance in the
    phi/psi plane): where a model trained on the reference frames extrapolates.

    Parameters
    ----------
    phi_rad, psi_rad : array
        The points (e.g. the ensemble's frames).
    phi_ref_rad, psi_ref_rad : array
        The reference points (e.g. the training data).
    radius_deg : float

    Returns
    -------
    float

    Examples
    --------
    >>> uncovered_fraction(np.radians([179.0, 90.0]), np.radians([0.0, 0.0]), np.radians([-179.0]), np.radians([0.0]))
    0.5
    """
    from scipy.spatial import cKDTree

    def plane(phi, psi):
        return np.mod(np.degrees(np.column_stack([phi, psi])), 360.0)

    tree = cKDTree(plane(phi_ref_rad, psi_ref_rad), boxsize=360.0)
    distance, _ = tree.query(plane(phi_rad, psi_rad))
    return float(np.mean(distance > radius_deg))


def _nnforce_context(model_path, topology, positions_nm, platform_name, integrator, model_precision=None):
    from openmm import unit

    from ..contract import inspect_model
    from ..force import build_context
    from ..simulate import SimulationConfig, build_system

    config = SimulationConfig(model=model_path, topology=topology, positions=positions_nm,
                              model_precision=model_precision)
    system = build_system(config, topology, inspect_model(model_path))
    context = build_context(system, integrator, platform_name)
    context.setPositions(np.asarray(positions_nm) * unit.nanometer)
    return context


def nnforce_energy(model_path, topology, positions_nm, platform_name="Reference"):
    """Energy (kJ/mol) and forces (kJ/mol/nm) of ``positions_nm`` with the exported model inside OpenMM.

    Parameters
    ----------
    model_path : str
    topology : openmm.app.Topology
    positions_nm : array, shape (N, 3)
    platform_name : str

    Returns
    -------
    tuple
        ``(energy, forces [N, 3])``.

    Examples
    --------
    >>> energy, forces = nnforce_energy("model.pt", topology, frames[0])  # doctest: +SKIP
    """
    import openmm
    from openmm import unit

    from .._pt2_package import is_pt2

    # a TorchScript model runs in float64 here; a .pt2 runs in the precision it was compiled in
    context = _nnforce_context(model_path, topology, positions_nm, platform_name, openmm.VerletIntegrator(0.001),
                               model_precision=None if is_pt2(model_path) else "double")
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


def nnforce_ms_per_step(model_path, topology, positions_nm, steps=100, platform_name="CPU"):
    """Wall milliseconds per MD step of the exported model in NNForce (a short probe with a tiny time step); the CPU
    milliseconds per step the process received meanwhile are left in ``nnforce_ms_per_step.last_cpu_ms`` (on a
    shared machine the wall time includes waiting for a core).

    Parameters
    ----------
    model_path : str
    topology : openmm.app.Topology
    positions_nm : array, shape (N, 3)
    steps : int
    platform_name : str

    Returns
    -------
    float

    Examples
    --------
    >>> nnforce_ms_per_step("model.pt", topology, frames[0])  # doctest: +SKIP
    """
    import openmm
    from openmm import unit

    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.1 * unit.femtosecond)
    context = _nnforce_context(model_path, topology, positions_nm, platform_name, integrator)  # keep it alive
    integrator.step(5)  # first calls load the model
    start, cpu = time.perf_counter(), time.process_time()
    integrator.step(steps)
    elapsed = time.perf_counter() - start
    nnforce_ms_per_step.last_cpu_ms = (time.process_time() - cpu) / steps * 1000.0  # CPU time this process received
    del context
    return elapsed / steps * 1000.0


def errors(predicted_e, predicted_f, reference_e, reference_f):
    """Energy and force MAE/RMSE of predictions against references (kJ/mol, kJ/mol/nm).

    Parameters
    ----------
    predicted_e, predicted_f, reference_e, reference_f : array

    Returns
    -------
    dict

    Examples
    --------
    >>> errors(np.array([1.0]), np.zeros((1, 2, 3)), np.array([0.0]), np.zeros((1, 2, 3)))["energy_mae_kj_mol"]
    1.0
    """
    de, df = np.asarray(predicted_e) - reference_e, np.asarray(predicted_f) - reference_f
    return {"energy_mae_kj_mol": float(np.abs(de).mean()), "energy_rmse_kj_mol": float(np.sqrt((de ** 2).mean())),
            "force_mae_kj_mol_nm": float(np.abs(df).mean()), "force_rmse_kj_mol_nm": float(np.sqrt((df ** 2).mean()))}
