"""``nnforce demo``: the whole flow on alanine dipeptide in vacuum, end to end, into one HTML report.

1. **molecule**: ACE-ALA-NME built from ideal internal coordinates (heavy atoms), hydrogens added by OpenMM's
   ``Modeller`` with the amber14 templates; written as ``alanine_dipeptide.pdb``.
2. **reference data**: Langevin MD with amber14 in vacuum at a high temperature from several starting
   (phi, psi) so the Ramachandran plane is covered; every sampled frame is labelled with energies and forces of
   the ANI-1x ensemble (``nnforce.models.ani1x()``, float64; the teacher). Saved as ``data/ani1x_labels.npz``.
3. **train**: a small ANI-style model (``nnforce.train.fit``, energies + forces, seeded) with a time cap.
4. **export**: ``nnforce.export.export_model`` (TorchScript + metadata, contract checks on a real frame).
5. **simulate**: ``nnforce.simulate.run`` with ``NNForce`` on OpenMM's CPU platform (Langevin), one torch thread.
6. **analyze**: ``nnforce.analysis.analyze`` (phi/psi features, TICA, k-means, phi/psi free energy, populations);
   plus the trained model against the ANI-1x teacher on frames of its own trajectory.
7. **report**: ``report.html``, self-contained (PNG figures as base64, no scripts, no external files).

``run_demo(out_dir, small=False, seed=0)`` returns a dict of what was run and measured; ``small=True`` is the
fast mode the test uses (same code path, fewer frames/epochs/steps). Everything is seeded; all files are written
atomically. See docs/demo.md.
"""
import argparse
import base64
import contextlib
import csv
import datetime
import html
import json
import math
import os
import platform
import random
import sys
import time

import numpy as np

from ._io import atomic_save, atomic_write

EXAMPLES = """examples:
  nnforce demo                         the full demo (11-12 minutes on 2 CPU cores) into demo-output/
  nnforce demo --small --out /tmp/d    the fast mode the test runs (1.5-2 minutes)
  nnforce demo --seed 3                another seed for sampling, splitting, training and MD"""

ELEMENTS = [1, 6, 7, 8]  # H, C, N, O

# Everything that shapes the run. Lengths nm, times fs/ps as named, temperatures K.
SETTINGS = {
    "full": {
        "sample_starts_deg": [(-80.0, 150.0), (-70.0, -40.0), (60.0, 45.0), (-150.0, 60.0)],
        "sample_temperature_k": 500.0,
        "sample_timestep_fs": 1.0,
        "sample_friction_per_ps": 5.0,
        "sample_equilibration_steps": 5000,
        "sample_interval_steps": 100,
        "sample_frames_per_start": 450,
        "split": (1500, 150, 150),
        "model": {"type": "ani", "elements": ELEMENTS, "hidden": [64, 32]},
        "train": {"epochs": 400, "batch_size": 16, "lr": 2e-3, "force_weight": 10.0, "schedule": "plateau",
                  "plateau_patience": 4, "early_stopping_patience": 15, "max_time_s": 330.0},
        "sim_temperature_k": 300.0,
        "sim_timestep_fs": 1.0,
        "sim_friction_per_ps": 1.0,
        "sim_equilibration_steps": 2000,
        "sim_steps": 45000,
        "sim_time_budget_s": 240.0,  # fewer production steps (at least sim_min_steps) if NNForce runs slower
        "sim_min_steps": 10000,
        "sim_report_interval": 100,
        "sim_trajectory_interval": 50,
        "teacher_check_frames": 100,
        "tica_lag_frames": 10,
        "clusters": 12,
        "phi_psi_bins": 30,
    },
    "small": {
        "sample_starts_deg": [(-80.0, 150.0), (-70.0, -40.0), (60.0, 45.0)],
        "sample_temperature_k": 500.0,
        "sample_timestep_fs": 1.0,
        "sample_friction_per_ps": 5.0,
        "sample_equilibration_steps": 2000,
        "sample_interval_steps": 100,
        "sample_frames_per_start": 80,
        "split": (160, 40, 40),
        "model": {"type": "ani", "elements": ELEMENTS, "hidden": [32, 16]},
        "train": {"epochs": 15, "batch_size": 16, "lr": 2e-3, "force_weight": 10.0, "schedule": "plateau",
                  "plateau_patience": 4, "early_stopping_patience": 10, "max_time_s": None},
        "sim_temperature_k": 300.0,
        "sim_timestep_fs": 0.5,
        "sim_friction_per_ps": 10.0,  # thermalises within the short run
        "sim_equilibration_steps": 200,
        "sim_steps": 2000,
        "sim_time_budget_s": None,  # fixed length: the test checks the frame count
        "sim_report_interval": 20,
        "sim_trajectory_interval": 20,
        "teacher_check_frames": 20,
        "tica_lag_frames": 5,
        "clusters": 4,
        "phi_psi_bins": 20,
    },
}


def _log(message):
    print(f"[nnforce demo] {message}", file=sys.stderr, flush=True)


class _Stages:
    """Numbered, timed steps: ``with stages("train"): ...`` logs the start and the wall time."""

    def __init__(self, total):
        self.total = total
        self.timings = {}
        self.count = 0

    @contextlib.contextmanager
    def __call__(self, name, what):
        self.count += 1
        _log(f"step {self.count}/{self.total} {name}: {what} ...")
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        _log(f"step {self.count}/{self.total} {name}: done in {self.timings[name]:.1f} s")


# ----------------------------------------------------------------------------------------------------------
# 1. the molecule
# ----------------------------------------------------------------------------------------------------------

def _extend(a, b, c, bond_nm, angle_deg, torsion_deg):
    """Cartesian position of a new atom d bonded to c: |cd| = bond, angle b-c-d, torsion a-b-c-d."""
    theta, tau = math.radians(angle_deg), math.radians(torsion_deg)
    u = (c - b) / np.linalg.norm(c - b)
    normal = np.cross(b - a, u)
    normal /= np.linalg.norm(normal)
    in_plane = np.cross(normal, u)
    local = bond_nm * np.array([-math.cos(theta), math.sin(theta) * math.cos(tau), math.sin(theta) * math.sin(tau)])
    return c + local[0] * u + local[1] * in_plane + local[2] * normal


def alanine_dipeptide(phi_deg=-80.0, psi_deg=150.0, seed=0):
    """(openmm Topology, positions Quantity) of ACE-ALA-NME (L-alanine) with hydrogens, from internal coordinates.

    Heavy-atom geometry: peptide bonds 0.133 nm, C=O 0.123 nm, N-CA/N-CH3 0.146 nm, CA-C 0.152 nm, CA-CB
    0.153 nm, trans peptide bonds (omega 180), the given backbone phi/psi; the C-N-CA-CB torsion of -123 deg gives
    the L configuration. Hydrogens come from OpenMM's Modeller with the amber14 residue templates.
    """
    from openmm import Vec3, app, unit

    ace_c = np.array([0.0, 0.0, 0.0])
    ace_ch3 = np.array([-0.152, 0.0, 0.0])
    ref = np.array([-0.2, 0.1, 0.0])  # only orients the first placements
    ala_n = _extend(ref, ace_ch3, ace_c, 0.133, 116.5, 180.0)
    ace_o = _extend(ala_n, ace_ch3, ace_c, 0.123, 121.0, 180.0)
    ala_ca = _extend(ace_ch3, ace_c, ala_n, 0.146, 121.5, 180.0)   # omega(ACE) = 180
    ala_c = _extend(ace_c, ala_n, ala_ca, 0.152, 111.0, phi_deg)   # C-N-CA-C = phi
    ala_cb = _extend(ala_c, ala_n, ala_ca, 0.153, 110.5, -123.0)   # L-alanine
    nme_n = _extend(ala_n, ala_ca, ala_c, 0.133, 116.5, psi_deg)   # N-CA-C-N = psi
    ala_o = _extend(nme_n, ala_ca, ala_c, 0.123, 121.0, 180.0)
    nme_c = _extend(ala_ca, ala_c, nme_n, 0.146, 121.5, 180.0)     # omega(ALA) = 180
    layout = [("ACE", [("CH3", ace_ch3), ("C", ace_c), ("O", ace_o)]),
              ("ALA", [("N", ala_n), ("CA", ala_ca), ("C", ala_c), ("O", ala_o), ("CB", ala_cb)]),
              ("NME", [("N", nme_n), ("C", nme_c)])]
    topology = app.Topology()
    chain = topology.addChain()
    atoms, xyz = {}, []
    for resname, entries in layout:
        residue = topology.addResidue(resname, chain)
        for name, position in entries:
            atoms[resname, name] = topology.addAtom(name, app.Element.getBySymbol(name[0]), residue)
            xyz.append(position)
    for first, second in [(("ACE", "CH3"), ("ACE", "C")), (("ACE", "C"), ("ACE", "O")), (("ACE", "C"), ("ALA", "N")),
                          (("ALA", "N"), ("ALA", "CA")), (("ALA", "CA"), ("ALA", "C")), (("ALA", "CA"), ("ALA", "CB")),
                          (("ALA", "C"), ("ALA", "O")), (("ALA", "C"), ("NME", "N")), (("NME", "N"), ("NME", "C"))]:
        topology.addBond(atoms[first], atoms[second])
    modeller = app.Modeller(topology, [Vec3(*map(float, p)) for p in xyz] * unit.nanometer)
    # Modeller places new hydrogens with Python's random module and relaxes them on OpenMM's default platform
    # (multi-threaded CPU sums vary in the last bits): seed it and use the Reference platform, for identical runs.
    saved, saved_platform = random.getstate(), os.environ.get("OPENMM_DEFAULT_PLATFORM")
    random.seed(seed)
    os.environ["OPENMM_DEFAULT_PLATFORM"] = "Reference"
    try:
        modeller.addHydrogens(app.ForceField("amber14-all.xml"))
    finally:
        random.setstate(saved)
        if saved_platform is None:
            del os.environ["OPENMM_DEFAULT_PLATFORM"]
        else:
            os.environ["OPENMM_DEFAULT_PLATFORM"] = saved_platform
    return modeller.topology, modeller.positions


def _write_pdb(path, topology, positions):
    from openmm import app

    with atomic_write(path, "w") as handle:
        app.PDBFile.writeFile(topology, positions, handle)
    return path


def atomic_numbers(topology):
    return np.array([atom.element.atomic_number for atom in topology.atoms()], dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# 2. reference data: amber14 sampling + ANI-1x labels
# ----------------------------------------------------------------------------------------------------------

def sample_configurations(settings, seed):
    """Frames (F, N, 3) in nm from amber14 vacuum Langevin MD (CPU platform, one thread), one run per start.

    Returns (topology, positions of the first start, frames, start index of each frame)."""
    import openmm
    from openmm import app, unit

    forcefield = app.ForceField("amber14-all.xml")
    frames, origin, first = [], [], None
    temperature = settings["sample_temperature_k"] * unit.kelvin
    for k, (phi, psi) in enumerate(settings["sample_starts_deg"]):
        topology, positions = alanine_dipeptide(phi, psi)
        if first is None:
            first = (topology, positions)
        system = forcefield.createSystem(topology, nonbondedMethod=app.NoCutoff, constraints=None)
        integrator = openmm.LangevinMiddleIntegrator(temperature, settings["sample_friction_per_ps"] / unit.picosecond,
                                                     settings["sample_timestep_fs"] * unit.femtosecond)
        integrator.setRandomNumberSeed(1 + 1000 * seed + k)
        context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName("CPU"), {"Threads": "1"})
        context.setPositions(positions)
        openmm.LocalEnergyMinimizer.minimize(context, 10.0, 500)
        context.setVelocitiesToTemperature(temperature, 1 + 1000 * seed + k)
        integrator.step(settings["sample_equilibration_steps"])
        for _ in range(settings["sample_frames_per_start"]):
            integrator.step(settings["sample_interval_steps"])
            state = context.getState(getPositions=True)
            frames.append(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer))
            origin.append(k)
        del context, integrator
    return first[0], first[1], np.asarray(frames, dtype=np.float64), np.asarray(origin)


def label_with_ani1x(model, numbers, frames_nm, batch_frames=64):
    """ANI-1x energies (kJ/mol, [F]) and forces (kJ/mol/nm, [F, N, 3]) for frames of one molecule, in batches.

    Same numbers as ``nnforce.data.label.teacher_label`` with ``model`` (one frame at a time), about 6x faster for
    a small molecule: frames are concatenated with a block-diagonal pair list (``data.block_pairs``), the
    ensemble's per-atom energies (``model.aev`` + its element networks, averaged over members) are summed per
    frame, and one backward pass gives every frame's forces (frames do not interact).
    """
    import torch

    from .data import block_pairs

    frames_nm = np.asarray(frames_nm, dtype=np.float64)
    n_frames, n_atoms = frames_nm.shape[:2]
    energies = np.empty(n_frames)
    forces = np.empty_like(frames_nm)
    dtype = model.self_energies.dtype
    for start in range(0, n_frames, batch_frames):
        stop = min(start + batch_frames, n_frames)
        count = stop - start
        positions = torch.tensor(frames_nm[start:stop].reshape(-1, 3), dtype=dtype, requires_grad=True)
        species = model.species(torch.as_tensor(np.tile(numbers, count)))
        features = model.aev(positions, species, block_pairs(torch.full((count,), n_atoms)))
        atomic = model.self_energies.index_select(0, species)  # Hartree
        for index, network in enumerate(model.networks):
            atoms = torch.nonzero(species == index).flatten()
            if atoms.numel() > 0:
                atomic = atomic.index_add(0, atoms, network(features.index_select(0, atoms)).mean(dim=0))
        frame_of_atom = torch.repeat_interleave(torch.arange(count), n_atoms)
        per_frame = torch.zeros(count, dtype=dtype).index_add(0, frame_of_atom, atomic) * model.kj_mol_per_hartree
        (gradient,) = torch.autograd.grad(per_frame.sum(), positions)
        energies[start:stop] = per_frame.detach().double().numpy()
        forces[start:stop] = -gradient.double().numpy().reshape(count, n_atoms, 3)
    return energies, forces


# ----------------------------------------------------------------------------------------------------------
# 3./6. model predictions
# ----------------------------------------------------------------------------------------------------------

def predict(model, numbers, frames_nm):
    """Energies [F] (kJ/mol) and forces [F, N, 3] (kJ/mol/nm) of a contract model, frame by frame, float64."""
    import torch

    z = torch.as_tensor(np.asarray(numbers, dtype=np.int64))
    energies, forces = [], []
    for x in np.asarray(frames_nm, dtype=np.float64):
        positions = torch.tensor(x, dtype=torch.float64, requires_grad=True)
        energy = model(positions, z)
        (gradient,) = torch.autograd.grad(energy, positions)
        energies.append(float(energy))
        forces.append(-gradient.numpy())
    return np.asarray(energies), np.asarray(forces)


def nnforce_ms_per_step(model_path, topology, positions_nm, steps=100, platform_name="CPU"):
    """Wall milliseconds per MD step of the exported model in NNForce (a short probe with a tiny time step)."""
    import openmm
    from openmm import unit

    from .simulate import SimulationConfig, build_system, inspect_model

    info = inspect_model(model_path)
    config = SimulationConfig(model=model_path, topology=topology, positions=positions_nm)
    system = build_system(config, topology, info)
    integrator = openmm.LangevinMiddleIntegrator(300 * unit.kelvin, 1 / unit.picosecond, 0.1 * unit.femtosecond)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(np.asarray(positions_nm) * unit.nanometer)
    integrator.step(5)  # first calls load the model
    start = time.perf_counter()
    integrator.step(steps)
    return (time.perf_counter() - start) / steps * 1000.0


def nnforce_energy(model_path, topology, positions_nm, platform_name="Reference"):
    """Energy (kJ/mol) and forces of ``positions_nm`` with the exported model inside OpenMM via ``NNForce``."""
    import openmm
    from openmm import unit

    from .simulate import build_system, inspect_model, SimulationConfig

    info = inspect_model(model_path)
    config = SimulationConfig(model=model_path, topology=topology, positions=positions_nm, model_precision="double")
    system = build_system(config, topology, info)
    integrator = openmm.VerletIntegrator(0.001)
    context = openmm.Context(system, integrator, openmm.Platform.getPlatformByName(platform_name))
    context.setPositions(np.asarray(positions_nm) * unit.nanometer)
    state = context.getState(getEnergy=True, getForces=True)
    energy = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    forces = state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)
    return energy, np.asarray(forces)


# ----------------------------------------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig, path):
    plt = _pyplot()
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png", bbox_inches="tight"))
    plt.close(fig)
    return path


def plot_training(path, history, test_reference, test_predicted, baseline):
    """Training curve (train/validation loss per epoch; validation MAEs) and a test-set parity plot."""
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 3.8))
    axes[0].semilogy(epochs, [row["train_loss"] for row in history], label="train")
    axes[0].semilogy(epochs, [row["val_loss"] for row in history], label="validation")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss (normalised energy + force MSE)")
    axes[0].legend()
    axes[0].set_title("training curve")
    axes[1].semilogy(epochs, [row["val_energy_mae_kj_mol"] for row in history], color="tab:blue",
                     label="validation energy MAE (kJ/mol)")
    axes[1].axhline(baseline["energy_mae_kj_mol"], color="tab:blue", ls=":", lw=1,
                    label="mean-energy baseline (test)")
    if "val_force_mae_kj_mol_nm" in history[0]:
        axes[1].semilogy(epochs, [row["val_force_mae_kj_mol_nm"] for row in history], color="tab:orange",
                         label="validation force MAE (kJ/mol/nm)")
        axes[1].axhline(baseline["force_mae_kj_mol_nm"], color="tab:orange", ls=":", lw=1,
                        label="zero-force baseline (test)")
    axes[1].set_xlabel("epoch")
    axes[1].legend(fontsize=7)
    axes[1].set_title("validation errors")
    shift = float(np.mean(test_reference))
    ref, pred = np.asarray(test_reference) - shift, np.asarray(test_predicted) - shift
    low, high = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    axes[2].plot([low, high], [low, high], color="0.6", lw=1)
    axes[2].scatter(ref, pred, s=8)
    axes[2].set_xlabel("ANI-1x energy - mean (kJ/mol)")
    axes[2].set_ylabel("trained model energy - same shift (kJ/mol)")
    axes[2].set_title("test set parity")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_energy_trace(path, rows, equilibration_steps):
    """Potential/total energy (minus their means) and temperature against simulation time."""
    plt = _pyplot()
    time_ps = np.array([float(r["time_ps"]) for r in rows])
    potential = np.array([float(r["potential_kj_mol"]) for r in rows])
    total = np.array([float(r["total_kj_mol"]) for r in rows])
    temperature = np.array([float(r["temperature_k"]) for r in rows])
    steps = np.array([int(r["step"]) for r in rows])
    fig, axes = plt.subplots(2, 1, figsize=(9.5, 5.0), sharex=True)
    axes[0].plot(time_ps, potential - potential.mean(), lw=0.8, label=f"potential (mean {potential.mean():.1f})")
    axes[0].plot(time_ps, total - total.mean(), lw=0.8, label=f"total (mean {total.mean():.1f})")
    axes[0].set_ylabel("energy - mean (kJ/mol)")
    axes[0].legend(fontsize=8, loc="upper right")
    axes[1].plot(time_ps, temperature, lw=0.8, color="tab:red")
    axes[1].set_ylabel("temperature (K)")
    axes[1].set_xlabel("time (ps)")
    if equilibration_steps and np.any(steps <= equilibration_steps):
        boundary = time_ps[steps <= equilibration_steps][-1]
        for ax in axes:
            ax.axvline(boundary, color="0.5", ls="--", lw=0.8)
        axes[0].set_title("energy trace (dashed: end of equilibration)")
    else:
        axes[0].set_title("energy trace")
    fig.tight_layout()
    return _save_figure(fig, path)


def plot_coverage(path, phi_ref, psi_ref, phi_sim, psi_sim):
    """Where the training data and the NNForce trajectory lie in the phi/psi plane."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(np.degrees(phi_ref), np.degrees(psi_ref), s=3, c="0.65", label="training data (amber14, hot)")
    ax.scatter(np.degrees(phi_sim), np.degrees(psi_sim), s=3, c="tab:blue", label="NNForce trajectory")
    ax.set_xlim(-180, 180)
    ax.set_ylim(-180, 180)
    ax.set_xlabel("phi (deg)")
    ax.set_ylabel("psi (deg)")
    ax.legend(fontsize=7, loc="lower right", markerscale=3)
    ax.set_title("phi/psi coverage")
    return _save_figure(fig, path)


# ----------------------------------------------------------------------------------------------------------
# phi/psi helpers
# ----------------------------------------------------------------------------------------------------------

def phi_psi_of(frames_nm, topology):
    """Alanine's backbone phi (C-N-CA-C) and psi (N-CA-C-N) in radians for frames (F, N, 3) (mdtraj)."""
    import mdtraj

    traj = mdtraj.Trajectory(np.asarray(frames_nm, dtype=np.float32), mdtraj.Topology.from_openmm(topology))
    _, phi = mdtraj.compute_phi(traj, periodic=False)
    _, psi = mdtraj.compute_psi(traj, periodic=False)
    return phi[:, 0].astype(np.float64), psi[:, 0].astype(np.float64)


def basin(phi_deg, psi_deg):
    """A coarse name for a (phi, psi) point of alanine dipeptide."""
    if phi_deg > 0:
        return "alpha_L / C7ax"
    if -125.0 < psi_deg < 15.0:
        return "alpha_R"
    return "C7eq / C5 / beta / PPII"


def _circular_mean_deg(angles_rad):
    return float(np.degrees(np.arctan2(np.mean(np.sin(angles_rad)), np.mean(np.cos(angles_rad)))))


# ----------------------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 1.5em auto; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; } figure { margin: 0.6em 0; } figcaption { font-size: 0.88em; color: #555; }
.flow { font-family: monospace; background: #f7f7f7; padding: 0.5em 0.8em; }
.warn { background: #fff3cd; border: 1px solid #e0c36c; padding: 0.5em 0.8em; }
.row { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
"""


def _esc(value):
    return html.escape(str(value))


def _png_data_uri(path):
    with open(path, "rb") as handle:
        return "data:image/png;base64," + base64.b64encode(handle.read()).decode("ascii")


def _figure(path, alt, caption):
    return (f'<figure><img src="{_png_data_uri(path)}" alt="{_esc(alt)}">'
            f"<figcaption>{_esc(caption)}</figcaption></figure>")


def _table(rows, header=None):
    out = ["<table>"]
    if header:
        out.append("<tr>" + "".join(f"<th>{_esc(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        cells = []
        for k, cell in enumerate(row):
            if k == 0 and header is None:
                cells.append(f"<th>{_esc(cell)}</th>")
            elif isinstance(cell, (int, float, np.integer, np.floating)) and not isinstance(cell, bool):
                cells.append(f'<td class="num">{_esc(_fmt(cell))}</td>')
            else:
                cells.append(f"<td>{_esc(cell)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _fmt(value):
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if value == 0 or not math.isfinite(value):
        return str(value)
    if abs(value) >= 1e5 or abs(value) < 1e-3:
        return f"{value:.4g}"
    return f"{value:.4g}" if abs(value) < 100 else f"{value:.1f}"


def write_report(path, info):
    """The self-contained HTML report (figures embedded, no scripts/stylesheets/fonts from elsewhere)."""
    s, m, sim, ana = info["settings"], info["metrics"], info["simulation"], info["analysis"]
    test, base, traj = m["test"], m["baseline"], m.get("trajectory_vs_teacher") or {}
    parts = [f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>nnforce demo: alanine dipeptide</title>
<style>{_STYLE}</style>
</head>
<body>
<h1>nnforce demo: alanine dipeptide in vacuum</h1>
<p>{_esc(info['mode'])} mode, seed {info['seed']}, finished {_esc(info['finished_utc'])} in
{info['total_time_s']:.0f} s on {_esc(info['host'])}.</p>
<p class="flow">amber14 sampling ({s['sample_temperature_k']:g} K) &rarr; ANI-1x labels &rarr; train
{_esc(s['model']['type'].upper())}-style model &rarr; export (TorchScript) &rarr; NNForce MD
({s['sim_temperature_k']:g} K) &rarr; phi/psi, TICA, k-means &rarr; this report</p>
"""]
    # --- training
    parts.append('<section id="training"><h2>1. Training: a small model learns ANI-1x</h2>')
    parts.append(_figure(info["files"]["training_png"], "training curve",
                         "Left: loss per epoch (energy MSE / Var(E) + force weight x force MSE / mean(F^2)). Middle: "
                         "validation MAEs with the trivial baselines (dotted). Right: test-set energies, trained "
                         "model vs the ANI-1x teacher."))
    rows = [("energy MAE (kJ/mol)", test["energy_mae_kj_mol"], base["energy_mae_kj_mol"],
             traj.get("energy_mae_kj_mol", "n/a")),
            ("energy RMSE (kJ/mol)", test["energy_rmse_kj_mol"], base["energy_rmse_kj_mol"],
             traj.get("energy_rmse_kj_mol", "n/a")),
            ("energy MAE (kcal/mol)", test["energy_mae_kcal_mol"], base["energy_mae_kj_mol"] / 4.184,
             traj.get("energy_mae_kj_mol", float("nan")) / 4.184 if traj else "n/a"),
            ("force MAE (kJ/mol/nm)", test["force_mae_kj_mol_nm"], base["force_mae_kj_mol_nm"],
             traj.get("force_mae_kj_mol_nm", "n/a")),
            ("force RMSE (kJ/mol/nm)", test["force_rmse_kj_mol_nm"], base["force_rmse_kj_mol_nm"],
             traj.get("force_rmse_kj_mol_nm", "n/a"))]
    parts.append(_table(rows, header=("metric", f"test set ({test['n_frames']} frames)",
                                      "baseline (mean energy, zero force)",
                                      f"NNForce trajectory frames ({traj.get('n_frames', 0)}) vs ANI-1x")))
    parts.append(f"<p>{info['training']['epochs_run']} epochs in {info['timings_s']['train']:.0f} s "
                 f"(best epoch {info['training']['best_epoch'] + 1}"
                 f"{', stopped early' if info['training']['stopped_early'] else ''}); "
                 f"{s['split'][0]} training / {s['split'][1]} validation / {s['split'][2]} test frames. "
                 "The last column re-labels frames of the NNForce trajectory with ANI-1x: the model's error where "
                 "it actually ran.</p>")
    if traj and traj["energy_mae_kj_mol"] > 3.0 * test["energy_mae_kj_mol"] + 5.0:
        parts.append('<p class="warn"><strong>Warning:</strong> on its own trajectory the model is much worse than '
                     f'on the test set ({traj["energy_mae_kj_mol"]:.3g} vs {test["energy_mae_kj_mol"]:.3g} kJ/mol): '
                     "the dynamics left the configurations it was trained on (a small model with minutes of "
                     "training has holes). Add those frames to the training data, train longer, or simulate at a "
                     "lower temperature.</p>")
    parts.append("</section>")
    # --- simulation
    parts.append('<section id="simulation"><h2>2. Simulation with NNForce</h2>')
    parts.append(_figure(info["files"]["energy_png"], "energy trace",
                         f"Langevin dynamics (LangevinMiddle, {s['sim_timestep_fs']:g} fs, friction "
                         f"{s['sim_friction_per_ps']:g}/ps) at {s['sim_temperature_k']:g} K with the exported model "
                         "in NNForce on OpenMM's CPU platform."))
    parts.append(_table([
        ("production", f"{sim['steps']:,} steps = {sim['steps'] * s['sim_timestep_fs'] / 1000:g} ps "
                       f"(+ {sim['equilibration_steps']:,} equilibration steps)"),
        ("trajectory frames", ana["frames"]),
        ("mean temperature (K)", sim["temperature_mean_k"]),
        ("speed (ns/day)", sim["ns_per_day"]),
        ("NNForce vs Python energy, same frame (kJ/mol)", m["nnforce_vs_python_kj_mol"]),
    ]))
    parts.append("</section>")
    # --- phi/psi
    parts.append('<section id="phi-psi"><h2>3. phi/psi free-energy surface</h2><div class="row">')
    parts.append(_figure(info["files"]["phi_psi_png"], "phi/psi free energy",
                         f"-kT ln p(phi, psi) of the NNForce trajectory at {s['sim_temperature_k']:g} K "
                         f"({360 / s['phi_psi_bins']:g} deg bins; white: never visited)."))
    parts.append(_figure(info["files"]["coverage_png"], "phi/psi coverage",
                         "Training configurations (grey) and the trajectory (blue)."))
    parts.append("</div></section>")
    # --- TICA and clusters
    parts.append('<section id="tica"><h2>4. TICA and clustering</h2>')
    if info["files"].get("tica_png"):
        parts.append(_figure(info["files"]["tica_png"], "TICA free energy",
                             f"-kT ln p on the first two TICA coordinates (features: sin/cos of phi and psi; lag "
                             f"{s['tica_lag_frames']} frames = {ana['tica_lag_ps']:g} ps); dots: k-means centers."))
    parts.append(_table([("TICA timescales", ana.get("tica_timescales", "n/a"))]))
    parts.append("</section>")
    parts.append('<section id="clusters"><h2>5. Cluster populations</h2>')
    parts.append(_figure(info["files"]["populations_png"], "cluster populations",
                         f"Fraction of trajectory frames in each of the {s['clusters']} k-means clusters."))
    parts.append(_table([(c["cluster"], c["population"], c["frames"], c["phi_deg"], c["psi_deg"], c["basin"])
                         for c in ana["clusters"]],
                        header=("cluster", "population", "frames", "mean phi (deg)", "mean psi (deg)", "region")))
    parts.append(_table([(name, value) for name, value in ana["basins"].items()], header=("region", "population")))
    parts.append("</section>")
    # --- what was run
    parts.append('<section id="run"><h2>6. What was run</h2>')
    timing_rows = [(name, seconds) for name, seconds in info["timings_s"].items()]
    timing_rows.append(("total", info["total_time_s"]))
    parts.append('<div class="row"><div><h3>Timings (s)</h3>' + _table(timing_rows, header=("step", "wall time (s)"))
                 + "</div><div><h3>Versions</h3>"
                 + _table(list(info["versions"].items()), header=("package", "version")) + "</div></div>")
    settings_rows = [("mode / seed", f"{info['mode']} / {info['seed']}"),
                     ("molecule", f"alanine dipeptide (ACE-ALA-NME), {info['n_atoms']} atoms, vacuum"),
                     ("sampling", f"amber14 (OpenMM), LangevinMiddle {s['sample_timestep_fs']:g} fs, "
                                  f"{s['sample_temperature_k']:g} K, friction {s['sample_friction_per_ps']:g}/ps, "
                                  f"{len(s['sample_starts_deg'])} starts (phi, psi) = "
                                  + ", ".join(f"({a:g}, {b:g})" for a, b in s["sample_starts_deg"])
                                  + f"; {s['sample_frames_per_start']} frames each, every "
                                  f"{s['sample_interval_steps']} steps after {s['sample_equilibration_steps']}"),
                     ("labels", "ANI-1x ensemble (8 networks, NeuroChem files of the torchani 2.1.1 wheel), float64; "
                                "energies kJ/mol, forces kJ/mol/nm"),
                     ("split (train/val/test)", "/".join(str(v) for v in s["split"])),
                     ("model", json.dumps(s["model"])),
                     ("training", json.dumps(s["train"])),
                     ("export", f"{os.path.basename(info['files']['model'])}: float32 TorchScript + metadata; "
                                "contract checks " + ", ".join(f"{k}={_fmt(v) if isinstance(v, float) else v}"
                                                               for k, v in info["export_checks"].items())),
                     ("simulation", f"NNForce, OpenMM CPU platform, 1 torch thread, LangevinMiddle "
                                    f"{s['sim_timestep_fs']:g} fs, {s['sim_temperature_k']:g} K, friction "
                                    f"{s['sim_friction_per_ps']:g}/ps, {s['sim_equilibration_steps']} + "
                                    f"{info['sim_steps_run']} steps (at most {s['sim_steps']}"
                                    + (f", fitted to a {s['sim_time_budget_s']:g} s budget" if s.get("sim_time_budget_s")
                                       else "") + f"), a frame every {s['sim_trajectory_interval']} steps"),
                     ("analysis", f"features phi/psi (sin, cos); TICA lag {s['tica_lag_frames']} frames, 2 dims; "
                                  f"k-means k={s['clusters']} (seeded); populations = frame counts"),
                     ("seeds", f"sampling {1 + 1000 * info['seed']}+start, split/training/k-means {info['seed']}, "
                               f"MD velocities/noise {info['seed'] + 1}")]
    parts.append("<h3>Settings</h3>" + _table(settings_rows))
    file_rows = [(key, os.path.relpath(value, info["out_dir"])) for key, value in info["files"].items()
                 if isinstance(value, str) and not key.endswith("_png")]
    parts.append("<h3>Files</h3>" + _table(file_rows, header=("what", "path (in the output folder)")))
    parts.append("</section>\n</body>\n</html>\n")
    with atomic_write(path, "w") as handle:
        handle.write("\n".join(parts))
    return path


def _versions():
    import importlib.metadata

    versions = {"python": platform.python_version()}
    for name in ("nnforce", "torch", "openmm", "numpy", "mdtraj", "deeptime", "scikit-learn", "matplotlib"):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "nnforce":
                from . import __version__

                versions[name] = f"{__version__} (source tree)"
            elif name == "openmm":
                import openmm

                versions[name] = openmm.__version__
            else:
                versions[name] = "not installed"
    return versions


def _json_ready(value):
    if isinstance(value, dict):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return value


# ----------------------------------------------------------------------------------------------------------
# the pipeline
# ----------------------------------------------------------------------------------------------------------

def run_demo(out_dir="demo-output", small=False, seed=0):
    """Run the whole flow into ``out_dir`` and write ``out_dir/report.html``; returns a dict (see below).

    Keys: ``report``, ``files`` (paths), ``timings_s`` (per step), ``total_time_s``, ``settings``, ``metrics``
    (``test``: energy/force MAE and RMSE of the trained model on the test split; ``baseline``: mean-energy and
    zero-force predictions on the same frames; ``trajectory_vs_teacher``: the model against ANI-1x on frames of
    its own trajectory; ``nnforce_vs_python_kj_mol``), ``simulation`` (``nnforce.simulate.run``'s summary),
    ``analysis`` (``phi_rad``/``psi_rad`` of every trajectory frame, cluster table, TICA numbers),
    ``training`` (history, best epoch), ``versions``.
    """
    import torch

    out_dir = os.fspath(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ValueError(f"--out {out_dir} is a file; give a directory (it is created if missing)")
    if int(seed) < 0 or int(seed) > 100000:
        raise ValueError(f"seed must be in 0..100000, got {seed}")
    seed = int(seed)
    os.makedirs(out_dir, exist_ok=True)
    settings = SETTINGS["small" if small else "full"]
    started = time.perf_counter()
    stages = _Stages(7)
    files = {}
    previous_threads = torch.get_num_threads()
    # small molecules: torch's intra-op threads only add overhead (20x slower measured here with 2 threads)
    torch.set_num_threads(1)
    try:
        return _pipeline(out_dir, small, seed, settings, stages, files, started)
    finally:
        torch.set_num_threads(previous_threads)


def _pipeline(out_dir, small, seed, settings, stages, files, started):
    import torch

    from .data import Dataset, split
    from .export import export_model
    from .models import ani1x
    from .simulate import SimulationConfig, run as run_simulation
    from .train import TrainConfig, build_model, evaluate, fit

    info = {"out_dir": out_dir, "mode": "small" if small else "full", "seed": seed, "settings": settings,
            "files": files, "timings_s": stages.timings,
            "host": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}"}

    # 1. molecule ----------------------------------------------------------------------------------------------
    with stages("molecule", "alanine dipeptide (ACE-ALA-NME) from internal coordinates + amber14 hydrogens"):
        phi0, psi0 = settings["sample_starts_deg"][0]
        topology, positions = alanine_dipeptide(phi0, psi0)
        files["structure"] = _write_pdb(os.path.join(out_dir, "alanine_dipeptide.pdb"), topology, positions)
        numbers = atomic_numbers(topology)
        info["n_atoms"] = len(numbers)

    # 2. reference data ----------------------------------------------------------------------------------------
    n_frames = len(settings["sample_starts_deg"]) * settings["sample_frames_per_start"]
    with stages("reference_data", f"{n_frames} amber14 frames at {settings['sample_temperature_k']:g} K, "
                                  "labelled with ANI-1x"):
        _, _, frames, _ = sample_configurations(settings, seed)
        teacher = ani1x()  # float64
        energies, forces = label_with_ani1x(teacher, numbers, frames)
        dataset = Dataset.from_frames(numbers, list(frames), energies, list(forces), name="alanine-dipeptide-ani1x")
        files["dataset"] = os.path.join(out_dir, "data", "ani1x_labels.npz")
        dataset.save(files["dataset"])
        phi_ref, psi_ref = phi_psi_of(frames, topology)

    # 3. train -------------------------------------------------------------------------------------------------
    spec = dict(settings["model"])
    cap = settings["train"]["max_time_s"]
    with stages("train", f"{spec['type'].upper()}-style model, energies + forces, "
                         + (f"at most {cap:g} s" if cap else f"{settings['train']['epochs']} epochs")):
        train_set, val_set, test_set = split(dataset, settings["split"], seed=seed)
        config = TrainConfig(**settings["train"], seed=seed, log_dir=os.path.join(out_dir, "train"),
                             progress=not small, threads=1)
        torch.manual_seed(seed)
        model = build_model(dict(spec, seed=seed) if spec["type"] in ("ani", "schnet") else spec)
        result = fit(model, train_set, val_set, config, model_spec=dict(spec, seed=seed),
                     metadata={"data_hash": dataset.content_hash(), "teacher": "ANI-1x"})
        model = result.model.double().eval()
        test_metrics = evaluate(model, test_set)
        train_mean = float(train_set.energies_kj_mol.mean())
        test_e = test_set.energies_kj_mol
        test_f = test_set.forces_kj_mol_nm
        baseline = {"energy_mae_kj_mol": float(np.abs(test_e - train_mean).mean()),
                    "energy_rmse_kj_mol": float(np.sqrt(((test_e - train_mean) ** 2).mean())),
                    "force_mae_kj_mol_nm": float(np.abs(test_f).mean()),
                    "force_rmse_kj_mol_nm": float(np.sqrt((test_f ** 2).mean()))}
        test_frames = test_set.positions_nm.reshape(len(test_set), -1, 3)
        test_predicted, _ = predict(model, numbers, test_frames)
        files["history_csv"] = os.path.join(out_dir, "train", "history.csv")
        files["checkpoint"] = result.checkpoint
        files["training_png"] = plot_training(os.path.join(out_dir, "figures", "training.png"), result.history,
                                              test_e, test_predicted, baseline)
        info["training"] = {"epochs_run": len(result.history), "best_epoch": result.best_epoch,
                            "stopped_early": result.stopped_early, "history": result.history}

    # 4. export ------------------------------------------------------------------------------------------------
    with stages("export", "TorchScript + metadata, contract checks on a test frame"):
        files["model"] = os.path.join(out_dir, "model.pt")
        exported = export_model(model, files["model"], {
            "model_spec": dict(spec, seed=seed), "data_hash": dataset.content_hash(), "teacher": "ANI-1x",
            "metrics": test_metrics, "training_epochs": len(result.history), "demo": info["mode"]},
            structure=(numbers, test_frames[0]))
        info["export_checks"] = exported.get("checks", {})
        python_energy = float(predict(model, numbers, test_frames[:1])[0][0])
        plugin_energy, _ = nnforce_energy(files["model"], topology, test_frames[0])
        nnforce_vs_python = abs(plugin_energy - python_energy)

    # 5. simulate ----------------------------------------------------------------------------------------------
    sim_dir = os.path.join(out_dir, "simulation")
    steps = settings["sim_steps"]
    if settings.get("sim_time_budget_s"):
        # keep the whole demo inside its time budget on a slow or busy machine: time NNForce first
        ms = nnforce_ms_per_step(files["model"], topology, test_frames[0])
        affordable = int(settings["sim_time_budget_s"] * 1000.0 / ms) - settings["sim_equilibration_steps"]
        steps = max(settings["sim_min_steps"], min(steps, affordable))
        steps -= steps % settings["sim_trajectory_interval"]
        _log(f"NNForce takes {ms:.2f} ms/step here: {steps} production steps "
             f"(at most {settings['sim_steps']}, budget {settings['sim_time_budget_s']:g} s)")
    info["sim_steps_run"] = steps
    ps = steps * settings["sim_timestep_fs"] / 1000.0
    with stages("simulate", f"NNForce Langevin MD, {ps:g} ps at {settings['sim_temperature_k']:g} K, CPU platform"):
        sim_config = SimulationConfig(
            model=files["model"], pdb=files["structure"], output_dir=sim_dir, steps=steps,
            equilibration_steps=settings["sim_equilibration_steps"], integrator="langevin-middle",
            temperature_k=settings["sim_temperature_k"], friction_per_ps=settings["sim_friction_per_ps"],
            timestep_fs=settings["sim_timestep_fs"], platform="CPU", seed=seed + 1,
            report_interval=settings["sim_report_interval"], trajectory="trajectory.dcd",
            trajectory_interval=settings["sim_trajectory_interval"], checkpoint_interval=0, progress=not small,
            threads=1)
        simulation = run_simulation(sim_config)
        simulation.pop("positions_nm", None)
        files["trajectory"] = simulation["trajectory"]
        files["energies_csv"] = simulation["energy_csv"]
        with open(files["energies_csv"]) as handle:
            rows = list(csv.DictReader(handle))
        files["energy_png"] = plot_energy_trace(os.path.join(out_dir, "figures", "energy.png"), rows,
                                                settings["sim_equilibration_steps"])

    # 6. analyze -----------------------------------------------------------------------------------------------
    with stages("analyze", "phi/psi, TICA, k-means; the model vs ANI-1x on trajectory frames"):
        from .analysis import analyze

        dt_ps = settings["sim_trajectory_interval"] * settings["sim_timestep_fs"] / 1000.0
        analysis = analyze([files["trajectory"]], files["structure"], os.path.join(out_dir, "analysis"),
                           features=["phi_psi"], reduce=f"tica:lag={settings['tica_lag_frames']},dim=2",
                           cluster=f"kmeans:k={settings['clusters']}", msm="none",
                           temperature_k=settings["sim_temperature_k"], seed=seed, n_samples=3, dt_ps=dt_ps)
        phi, psi = analysis["phi_psi"]
        phi, psi = np.asarray(phi, dtype=np.float64), np.asarray(psi, dtype=np.float64)
        labels = np.concatenate(analysis["dtrajs"])
        populations = np.bincount(labels, minlength=settings["clusters"]) / len(labels)
        clusters = []
        for c in range(settings["clusters"]):
            chosen = labels == c
            mean_phi = _circular_mean_deg(phi[chosen]) if chosen.any() else float("nan")
            mean_psi = _circular_mean_deg(psi[chosen]) if chosen.any() else float("nan")
            clusters.append({"cluster": c, "population": float(populations[c]), "frames": int(chosen.sum()),
                             "phi_deg": mean_phi, "psi_deg": mean_psi,
                             "basin": basin(mean_phi, mean_psi) if chosen.any() else "empty"})
        frame_basins = [basin(a, b) for a, b in zip(np.degrees(phi), np.degrees(psi))]
        basins = {name: frame_basins.count(name) / len(frame_basins)
                  for name in ("C7eq / C5 / beta / PPII", "alpha_R", "alpha_L / C7ax")}
        from .analysis import plots

        # coarser bins than the analysis report's (5 deg) suit a few hundred frames
        files["phi_psi_png"] = plots.plot_phi_psi(
            os.path.join(out_dir, "figures", "phi_psi.png"), phi, psi, temperature_k=settings["sim_temperature_k"],
            bins=settings["phi_psi_bins"], title=f"phi/psi free energy, T = {settings['sim_temperature_k']:g} K")
        files["tica_png"] = analysis["files"].get("fes")
        files["populations_png"] = analysis["files"]["populations"]
        files["analysis_html"] = analysis["files"]["html"]
        files["coverage_png"] = plot_coverage(os.path.join(out_dir, "figures", "coverage.png"), phi_ref, psi_ref,
                                              phi, psi)
        tica = analysis.get("tica")
        info["analysis"] = {
            "frames": int(len(phi)), "phi_rad": phi, "psi_rad": psi, "populations": populations,
            "clusters": clusters, "basins": basins, "tica_lag_ps": settings["tica_lag_frames"] * dt_ps,
            "tica_timescales": (", ".join(f"{t * dt_ps:.3g}" for t in tica.timescales[:2]) + " ps")
            if tica is not None else "n/a"}
        # the trained model against the teacher on frames of its own trajectory
        import mdtraj

        traj = mdtraj.load(files["trajectory"], top=files["structure"])
        pick = np.unique(np.linspace(0, traj.n_frames - 1, min(settings["teacher_check_frames"], traj.n_frames))
                         .round().astype(int))
        sim_frames = traj.xyz[pick].astype(np.float64)
        teacher_e, teacher_f = label_with_ani1x(teacher, numbers, sim_frames)
        model_e, model_f = predict(model, numbers, sim_frames)
        trajectory_check = {"n_frames": int(len(pick)),
                            "energy_mae_kj_mol": float(np.abs(model_e - teacher_e).mean()),
                            "energy_rmse_kj_mol": float(np.sqrt(((model_e - teacher_e) ** 2).mean())),
                            "force_mae_kj_mol_nm": float(np.abs(model_f - teacher_f).mean()),
                            "force_rmse_kj_mol_nm": float(np.sqrt(((model_f - teacher_f) ** 2).mean()))}

    # 7. report ------------------------------------------------------------------------------------------------
    with stages("report", "report.html (self-contained)"):
        info.update({
            "metrics": {"test": test_metrics, "baseline": baseline, "trajectory_vs_teacher": trajectory_check,
                        "nnforce_vs_python_kj_mol": nnforce_vs_python},
            "simulation": simulation, "versions": _versions(),
            "finished_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")})
        info["total_time_s"] = time.perf_counter() - started
        files["summary"] = os.path.join(out_dir, "summary.json")
        files["report"] = os.path.join(out_dir, "report.html")
        write_report(files["report"], info)
        summary = {k: v for k, v in info.items() if k not in ("analysis",)}
        summary["analysis"] = {k: v for k, v in info["analysis"].items() if k not in ("phi_rad", "psi_rad")}
        with atomic_write(files["summary"], "w") as handle:
            json.dump(_json_ready(summary), handle, indent=1, default=str)
    info["total_time_s"] = time.perf_counter() - started
    info["report"] = files["report"]
    _log(f"report: {files['report']} (total {info['total_time_s']:.0f} s)")
    return info


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="the whole flow on alanine dipeptide: data, train, export, simulate, analyze, report",
        description="Alanine dipeptide in vacuum: amber14 sampling labelled with ANI-1x -> train a small model -> "
                    "export -> simulate with NNForce -> phi/psi, TICA, clustering -> a self-contained HTML report "
                    "(OUT/report.html). The full mode takes 11-12 minutes on 2 CPU cores.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo-output", help="output directory (default demo-output)")
    parser.add_argument("--small", action="store_true", help="fast mode (1.5-2 minutes; what the test runs)")
    parser.add_argument("--seed", type=int, default=0, help="random seed for every stage (default 0)")
    parser.set_defaults(func=_main)


def _main(args):
    info = run_demo(args.out, small=args.small, seed=args.seed)
    test = info["metrics"]["test"]
    print(f"wrote {info['report']}")
    print(f"test energy MAE {test['energy_mae_kj_mol']:.3g} kJ/mol (baseline "
          f"{info['metrics']['baseline']['energy_mae_kj_mol']:.3g}), force MAE {test['force_mae_kj_mol_nm']:.3g} "
          f"kJ/mol/nm; {info['analysis']['frames']} trajectory frames; total {info['total_time_s']:.0f} s")
    return 0
