"""Run molecular dynamics with a machine-learned potential: ``nnforce simulate`` and :func:`run`.

From a PDB (or an OpenMM Topology + positions) and an exported TorchScript model this builds an OpenMM System
whose potential is an ``NNForce`` (pure ML), or, given an MM force field and the ML atoms, an ML/MM System
through :func:`nnforce.mlmm.create_mlmm_system`; then it minimises, equilibrates and runs production with
Langevin (middle) or velocity-Verlet (NVE) dynamics, writing

* ``energies.csv``   step, time, potential/kinetic/total energy, temperature, speed (rewritten atomically,
  so a crash never leaves a torn file; at most ``CSV_FLUSH_SECONDS`` of rows are lost, and a resume
  recomputes them);
* ``trajectory.dcd`` / ``.xtc``  frames of the production phase (streamed; on resume truncated back to the
  last checkpoint so no frame is duplicated);
* ``checkpoint.chk`` + ``checkpoint.json``  an OpenMM checkpoint (positions, velocities, step, random-number
  state) and what had been written at that step, both written atomically every ``checkpoint_interval``
  steps; ``resume=True`` continues from them and reproduces the uninterrupted run exactly (same platform);
* ``final.pdb`` and ``result.json``.

Everything the dynamics needs is fixed by the config and ``seed`` (velocities and Langevin noise).
"""
import argparse
import csv
import hashlib
import io
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

from ._io import atomic_save, atomic_write

INTEGRATORS = ("langevin-middle", "verlet")
INTEGRATOR_ALIASES = {"langevin": "langevin-middle", "langevinmiddle": "langevin-middle", "nve": "verlet",
                      "velocity-verlet": "verlet"}
TRAJECTORY_FORMATS = (".dcd", ".xtc")
METADATA_FILE = "nnforce_metadata.json"
CSV_NAME = "energies.csv"
CHECKPOINT_NAME = "checkpoint.chk"
CHECKPOINT_STATE_NAME = "checkpoint.json"
CSV_FLUSH_SECONDS = 10.0
CSV_COLUMNS = ("step", "time_ps", "potential_kj_mol", "kinetic_kj_mol", "total_kj_mol", "temperature_k",
               "ns_per_day")
# config fields that change the trajectory: a resume must not silently change them
_DYNAMICS_FIELDS = ("integrator", "temperature_k", "friction_per_ps", "timestep_fs", "seed", "equilibration_steps",
                    "minimize", "platform", "precision", "model_precision", "lambda_ml", "constraints",
                    "mm_cutoff_nm", "forcefield")


@dataclass
class SimulationConfig:
    """Everything one simulation needs. Units: K, ps, fs, nm, kJ/mol (names say which)."""

    model: Any                        # TorchScript file path (or a ScriptModule / serialized bytes)
    pdb: Optional[str] = None         # structure; or give topology + positions
    topology: Any = None              # openmm.app.Topology
    positions: Any = None             # positions (nm; Quantity or array [N, 3])
    output_dir: str = "simulation"
    steps: int = 10000                # production steps
    equilibration_steps: int = 0
    minimize: bool = True
    minimize_tolerance_kj_mol_nm: float = 10.0
    minimize_max_iterations: int = 0  # 0 = until converged
    integrator: str = "langevin-middle"
    temperature_k: float = 300.0
    friction_per_ps: float = 1.0
    timestep_fs: float = 0.5
    platform: Optional[str] = None    # Reference, CPU, CUDA, OpenCL; None = OpenMM's fastest
    precision: Optional[str] = None   # CUDA/OpenCL: single, mixed, double
    model_precision: Optional[str] = None  # NNForce: single or double; None = double on Reference, else single
    seed: int = 1
    report_interval: int = 100        # steps between CSV rows
    trajectory: Optional[str] = "trajectory.dcd"  # .dcd or .xtc (in output_dir unless absolute); None = none
    trajectory_interval: int = 1000
    checkpoint_interval: int = 10000  # 0 = only at the end
    resume: bool = False
    progress: bool = True
    forcefield: Optional[List[str]] = None  # MM force field XML files: ML/MM with ml_atoms
    ml_atoms: Any = None              # indices, "0-21,30" or an mdtraj selection ("resname LIG")
    lambda_ml: Optional[float] = None
    constraints: str = "none"         # MM constraints for ML/MM: none, hbonds (never inside the ML region)
    mm_cutoff_nm: float = 1.0         # MM nonbonded cutoff (PME when the structure has a box)
    neighbor_cutoff_nm: Optional[float] = None  # NNForce neighbor list; None = from the model if it has one
    neighbor_skin_nm: float = 0.0
    threads: Optional[int] = None     # torch intra-op threads (torch.set_num_threads); None = torch's default

    def __post_init__(self):
        name = str(self.integrator).lower()
        self.integrator = INTEGRATOR_ALIASES.get(name, name)
        if self.integrator not in INTEGRATORS:
            raise ValueError(f"unknown integrator {self.integrator!r}; choose one of {', '.join(INTEGRATORS)} "
                             "(aliases: langevin, nve)")
        for name in ("steps", "equilibration_steps", "minimize_max_iterations", "checkpoint_interval"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("report_interval", "trajectory_interval"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be a positive number of steps, got {getattr(self, name)}")
        if self.timestep_fs <= 0 or self.temperature_k <= 0 or self.friction_per_ps < 0:
            raise ValueError("timestep_fs and temperature_k must be positive and friction_per_ps >= 0")
        if self.trajectory is not None and os.path.splitext(str(self.trajectory))[1].lower() not in TRAJECTORY_FORMATS:
            raise ValueError(f"trajectory must end in one of {TRAJECTORY_FORMATS}, got {self.trajectory!r}")
        if self.pdb is None and (self.topology is None or self.positions is None):
            raise ValueError("give a structure: pdb=PATH, or topology= and positions=")
        if self.constraints not in ("none", "hbonds"):
            raise ValueError(f"constraints must be 'none' or 'hbonds', got {self.constraints!r}")
        if self.model_precision not in (None, "single", "double"):
            raise ValueError(f"model_precision must be 'single' or 'double', got {self.model_precision!r}")
        if (self.forcefield is None) != (self.ml_atoms is None):
            raise ValueError("ML/MM needs both forcefield (MM force field files) and ml_atoms (the ML region)")


# ----------------------------------------------------------------------------------------------------------
# model inspection
# ----------------------------------------------------------------------------------------------------------

def _model_bytes(model):
    """Serialized TorchScript bytes of a path, bytes or ScriptModule (checks the file exists)."""
    import torch

    if isinstance(model, (bytes, bytearray)):
        return bytes(model)
    if isinstance(model, torch.jit.ScriptModule):
        buffer = io.BytesIO()
        torch.jit.save(model, buffer)
        return buffer.getvalue()
    if isinstance(model, torch.nn.Module):
        raise ValueError("the model must be TorchScript: pass torch.jit.script(model) or an exported model file "
                         "(`nnforce export`)")
    path = os.fspath(model)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path} (export one with `nnforce export`)")
    with open(path, "rb") as handle:
        return handle.read()


def inspect_model(model) -> Dict[str, Any]:
    """Load a TorchScript model and describe it: forward argument names, metadata, elements, cutoff."""
    import torch

    data = _model_bytes(model)
    extra = {METADATA_FILE: ""}
    try:
        module = torch.jit.load(io.BytesIO(data), map_location="cpu", _extra_files=extra)
    except Exception as error:  # torch raises RuntimeError with a long C++ trace
        name = model if isinstance(model, (str, os.PathLike)) else "the model"
        raise ValueError(f"{name} is not a TorchScript model file ({str(error).splitlines()[0]}); "
                         "export models with `nnforce export` or torch.jit.save") from None
    metadata = {}
    raw = extra.get(METADATA_FILE) or b""
    if raw:
        try:
            metadata = json.loads(raw)
        except json.JSONDecodeError as error:
            raise ValueError(f"the model's {METADATA_FILE} is not valid JSON: {error}") from None
    arguments = [a.name for a in module.forward.schema.arguments][1:]
    elements = metadata.get("elements")
    if elements is None and hasattr(module, "elements"):
        elements = list(module.elements)
    cutoff = metadata.get("cutoff_nm")
    if cutoff is None and hasattr(module, "cutoff_nm"):
        cutoff = float(module.cutoff_nm)
    return {"bytes": data, "arguments": arguments, "metadata": metadata,
            "elements": None if elements is None else [int(z) for z in elements],
            "cutoff_nm": None if cutoff is None else float(cutoff), "sha256": hashlib.sha256(data).hexdigest()}


def check_elements(model_elements, atomic_numbers, what="the structure"):
    """Raise ValueError if ``atomic_numbers`` contains an element the model was not trained on."""
    if model_elements is None:
        return
    known = set(int(z) for z in model_elements)
    missing = sorted(set(int(z) for z in atomic_numbers) - known)
    if missing:
        from openmm.app import Element

        def name(z):
            try:
                return f"{Element.getByAtomicNumber(z).symbol} (Z={z})"
            except KeyError:
                return f"Z={z}"
        raise ValueError(
            f"{what} contains {', '.join(name(z) for z in missing)}, which the model does not know (it was "
            f"trained on {', '.join(name(z) for z in sorted(known))}). Use a model trained on these elements, or "
            "treat those atoms with an MM force field (ML/MM: --forcefield and --ml-atoms).")


# ----------------------------------------------------------------------------------------------------------
# system building
# ----------------------------------------------------------------------------------------------------------

def load_structure(config):
    """(topology, positions Quantity) from config.pdb or config.topology/positions."""
    import numpy as np
    from openmm import unit
    from openmm.app import PDBFile, PDBxFile

    if config.pdb is not None:
        path = os.fspath(config.pdb)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"structure file not found: {path}")
        if path.lower().endswith((".cif", ".pdbx")):
            structure = PDBxFile(path)
        else:
            structure = PDBFile(path)
        return structure.topology, structure.getPositions(asNumpy=True)
    positions = config.positions
    if not unit.is_quantity(positions):
        positions = unit.Quantity(np.asarray(positions, dtype=float), unit.nanometer)
    if len(positions) != config.topology.getNumAtoms():
        raise ValueError(f"{len(positions)} positions for a topology of {config.topology.getNumAtoms()} atoms")
    return config.topology, positions


def atomic_numbers_of(topology, atoms=None):
    chosen = list(topology.atoms())
    if atoms is not None:
        chosen = [chosen[i] for i in atoms]
    numbers = []
    for atom in chosen:
        if atom.element is None:
            raise ValueError(f"atom {atom.index} ({atom.name} in {atom.residue.name}) has no element; fix the "
                             "structure file's element column (virtual sites cannot be ML atoms)")
        numbers.append(atom.element.atomic_number)
    return numbers


def parse_atom_selection(selection, topology) -> List[int]:
    """Indices from a list, a range string ("0-21,30") or an mdtraj selection ("resname LIG")."""
    n = topology.getNumAtoms()
    if isinstance(selection, str):
        text = selection.strip()
        if text and all(part.strip().replace("-", "").isdigit() for part in text.split(",")):
            indices = []
            for part in text.split(","):
                if "-" in part.strip():
                    first, last = part.split("-")
                    indices.extend(range(int(first), int(last) + 1))
                else:
                    indices.append(int(part))
        else:
            import mdtraj

            try:
                indices = mdtraj.Topology.from_openmm(topology).select(text).tolist()
            except Exception as error:
                raise ValueError(f"bad ML atom selection {text!r}: {error}") from None
    else:
        indices = [int(i) for i in selection]
    if not indices:
        raise ValueError(f"the ML atom selection {selection!r} matches no atom")
    bad = [i for i in indices if i < 0 or i >= n]
    if bad:
        raise ValueError(f"ML atom indices {bad[:5]} out of range for {n} atoms")
    if len(set(indices)) != len(indices):
        raise ValueError("the ML atom selection lists an atom twice")
    return sorted(indices)


def make_nnforce(info, topology, atoms=None, neighbor_cutoff_nm=None, neighbor_skin_nm=0.0, model_precision=None):
    """An NNForce for the model in ``info`` (from :func:`inspect_model`), configured from the topology."""
    import nnforce

    force = nnforce.NNForce(info["bytes"])
    if model_precision is not None:
        force.setProperty("precision", model_precision)
    periodic = topology.getPeriodicBoxVectors() is not None
    force.setUsesPeriodicBoundaryConditions(periodic)
    if atoms is not None:
        force.setAtoms(list(atoms))
    if "atomic_numbers" in info["arguments"]:
        force.setAtomicNumbers(atomic_numbers_of(topology, atoms))
    cutoff = neighbor_cutoff_nm if neighbor_cutoff_nm is not None else info["cutoff_nm"]
    if "neighbors" in info["arguments"] and cutoff is not None:
        force.setNeighborList(float(cutoff), float(neighbor_skin_nm))
    return force


def build_system(config, topology, info):
    """The OpenMM System: NNForce on all atoms, or ML/MM when a force field and ML atoms are given."""
    import openmm
    from openmm import app, unit

    if config.forcefield is None:
        check_elements(info["elements"], atomic_numbers_of(topology), "the structure")
        system = openmm.System()
        for atom in topology.atoms():
            if atom.element is None:
                raise ValueError(f"atom {atom.index} ({atom.name}) has no element, so no mass; fix the structure")
            system.addParticle(atom.element.mass)
        box = topology.getPeriodicBoxVectors()
        if box is not None:
            system.setDefaultPeriodicBoxVectors(*box)
        system.addForce(make_nnforce(info, topology, None, config.neighbor_cutoff_nm, config.neighbor_skin_nm,
                                     config.model_precision))
        return system
    ml_atoms = parse_atom_selection(config.ml_atoms, topology)
    check_elements(info["elements"], atomic_numbers_of(topology, ml_atoms), "the ML region")
    try:
        forcefield = app.ForceField(*config.forcefield)
    except (ValueError, OSError) as error:
        if "locate" in str(error) or isinstance(error, OSError):
            raise FileNotFoundError(f"force field file not found ({error}); give a path or one of OpenMM's "
                                    "bundled files such as amber14-all.xml, amber14/tip3p.xml") from None
        raise ValueError(f"could not load force field {config.forcefield}: {error}") from None
    periodic = topology.getPeriodicBoxVectors() is not None
    system = forcefield.createSystem(
        topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
        nonbondedCutoff=config.mm_cutoff_nm * unit.nanometer,
        constraints=app.HBonds if config.constraints == "hbonds" else None, rigidWater=True)
    # the model describes the ML region's bonds: drop constraints between two ML atoms (rigid ML waters, H bonds)
    inside = set(ml_atoms)
    for index in reversed(range(system.getNumConstraints())):
        p, q, _ = system.getConstraintParameters(index)
        if p in inside and q in inside:
            system.removeConstraint(index)
    from .mlmm import create_mlmm_system  # the ML/MM helper lives with the plugin's Python layer

    cutoff = config.neighbor_cutoff_nm if config.neighbor_cutoff_nm is not None else info["cutoff_nm"]
    return create_mlmm_system(
        system, topology, ml_atoms, info["bytes"], lambda_ml=config.lambda_ml,
        neighbor_cutoff_nm=cutoff if "neighbors" in info["arguments"] else None,
        neighbor_skin_nm=config.neighbor_skin_nm,
        properties=None if config.model_precision is None else {"precision": config.model_precision})


def get_platform(name=None, precision=None):
    """(Platform, properties) with a clear error for an unknown platform name."""
    import openmm

    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name is None:
        platform = max((openmm.Platform.getPlatform(i) for i in range(openmm.Platform.getNumPlatforms())),
                       key=lambda p: p.getSpeed())
    else:
        matches = [p for p in available if p.lower() == str(name).lower()]
        if not matches:
            raise ValueError(f"unknown OpenMM platform {name!r}; available here: {', '.join(available)}")
        platform = openmm.Platform.getPlatformByName(matches[0])
    properties = {}
    if precision is not None:
        if precision not in ("single", "mixed", "double"):
            raise ValueError(f"precision must be single, mixed or double, got {precision!r}")
        if platform.getName() in ("CUDA", "OpenCL", "HIP"):
            properties["Precision"] = precision
        elif platform.getName() == "Reference" and precision != "double":
            raise ValueError("the Reference platform always computes in double precision")
    return platform, properties


def make_integrator(config):
    import openmm
    from openmm import unit

    step = config.timestep_fs * unit.femtoseconds
    if config.integrator == "verlet":
        return openmm.VerletIntegrator(step)
    integrator = openmm.LangevinMiddleIntegrator(config.temperature_k * unit.kelvin,
                                                 config.friction_per_ps / unit.picosecond, step)
    integrator.setRandomNumberSeed(int(config.seed))
    return integrator


def degrees_of_freedom(system):
    import openmm

    dof = 3 * sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(system.getForce(i), openmm.CMMotionRemover) for i in range(system.getNumForces())):
        dof -= 3
    return max(dof, 1)


# ----------------------------------------------------------------------------------------------------------
# output files
# ----------------------------------------------------------------------------------------------------------

class _EnergyLog:
    """CSV rows kept in memory and rewritten atomically (never a torn file)."""

    def __init__(self, path):
        self.path = path
        self.rows: List[Dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def load_until(self, step):
        """On resume: keep the rows written up to ``step`` (the checkpoint) and forget later ones."""
        if os.path.isfile(self.path):
            with open(self.path, newline="") as handle:
                self.rows = [row for row in csv.DictReader(handle) if int(row["step"]) <= step]

    def add(self, row):
        self.rows.append(row)
        if time.monotonic() - self.last_flush > CSV_FLUSH_SECONDS:
            self.flush()

    def flush(self):
        with atomic_write(self.path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
        self.last_flush = time.monotonic()


class _TrajectoryWriter:
    """Appends production frames to a DCD or XTC file; can be cut back to a frame count on resume."""

    def __init__(self, path, topology, timestep_ps, interval, first_step):
        self.path = path
        self.topology = topology
        self.format = os.path.splitext(path)[1].lower()
        self.timestep_ps = timestep_ps
        self.interval = interval
        self.first_step = first_step
        self.frames = 0
        self._handle = None
        self._file = None

    def _open(self, append):
        from openmm import app, unit

        dt = self.timestep_ps * unit.picoseconds
        if self.format == ".dcd":
            self._handle = open(self.path, "r+b" if append else "wb")
            self._file = app.DCDFile(self._handle, self.topology, dt, self.first_step, self.interval, append)
        else:
            if not append:
                open(self.path, "wb").close()
            self._file = app.XTCFile(self.path, self.topology, dt, self.first_step, self.interval, append)

    def start(self, frames_kept=None):
        """Start a new file, or (resume) keep the first ``frames_kept`` frames of the existing one."""
        if frames_kept is None or frames_kept == 0 or not os.path.isfile(self.path):
            if frames_kept:
                raise FileNotFoundError(f"resume: the checkpoint expects {frames_kept} frames in {self.path}, "
                                        "which is missing")
            self._open(append=False)
            return
        present = self._count_dcd() if self.format == ".dcd" else self._count_xtc()
        if present < frames_kept:
            raise ValueError(f"resume: {self.path} has {present} frames but the checkpoint expects {frames_kept}; "
                             "start again without --resume")
        if present > frames_kept:  # frames written after the checkpoint: drop them, they will be recomputed
            if self.format == ".dcd":
                self._truncate_dcd(present, frames_kept)
            else:
                import mdtraj

                trajectory = mdtraj.load(self.path, top=mdtraj.Topology.from_openmm(self.topology))[:frames_kept]
                atomic_save(self.path, trajectory.save)
        self.frames = frames_kept
        self._open(append=True)

    def _count_dcd(self):
        import struct

        with open(self.path, "rb") as handle:
            header = handle.read(12)
        if len(header) < 12 or header[4:8] != b"CORD":
            raise ValueError(f"resume: {self.path} is not a DCD file")
        return struct.unpack("<i", header[8:12])[0]  # NSET, kept current by openmm.app.DCDFile

    def _truncate_dcd(self, present, frames):
        """Keep the first ``frames`` frames of a DCD (fixed-size frames after the header), atomically."""
        import struct

        size = os.path.getsize(self.path)
        with open(self.path, "rb") as source:
            head = source.read(96)
            header = 112 + struct.unpack("<i", head[92:96])[0]  # 92-byte block, title block, atom-count block
            frame = (size - header) // present
            if frame <= 0 or header + frame * present != size:
                raise ValueError(f"resume: {self.path} is not a complete DCD file; start again without --resume")
            first, interval = struct.unpack("<ii", head[12:20])
            source.seek(0)
            with atomic_write(self.path, "wb") as target:
                remaining = header + frame * frames
                while remaining > 0:
                    chunk = source.read(min(remaining, 1 << 24))
                    target.write(chunk)
                    remaining -= len(chunk)
                target.seek(8)
                target.write(struct.pack("<i", frames))
                target.seek(20)
                target.write(struct.pack("<i", first + (frames - 1) * interval))
                target.seek(0, os.SEEK_END)

    def _count_xtc(self):
        import mdtraj

        with mdtraj.formats.XTCTrajectoryFile(self.path) as handle:
            return len(handle)

    def write(self, state):
        box = state.getPeriodicBoxVectors() if self.topology.getPeriodicBoxVectors() is not None else None
        self._file.writeModel(state.getPositions(asNumpy=True), periodicBoxVectors=box)
        self.frames += 1

    def sync(self):
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self):
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _fingerprint(config, info, num_atoms):
    values = {name: getattr(config, name) for name in _DYNAMICS_FIELDS}
    values["model_sha256"] = info["sha256"]
    values["num_atoms"] = num_atoms
    values["ml_atoms"] = config.ml_atoms if isinstance(config.ml_atoms, (str, type(None))) else list(config.ml_atoms)
    return json.loads(json.dumps(values))  # as it will read back from checkpoint.json


def _write_json(path, data):
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def energy_drift(times_ps, total_kj_mol, num_atoms):
    """Least-squares slope of the total energy, kJ/mol/ps per atom (NVE quality)."""
    import numpy as np

    t = np.asarray(times_ps, dtype=float)
    e = np.asarray(total_kj_mol, dtype=float)
    if len(t) < 2:
        return float("nan")
    slope = np.polyfit(t - t.mean(), e, 1)[0]
    return float(slope / num_atoms)


# ----------------------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------------------

def run(config: SimulationConfig, system=None) -> Dict[str, Any]:
    """Build (unless ``system`` is given), minimise, equilibrate and run; return a summary dict.

    The dict has ``steps``, ``time_ps``, ``ns_per_day``, ``final_potential_kj_mol``, ``temperature_mean_k``,
    ``energy_drift_kj_mol_ps_atom`` (verlet only), ``resumed_from_step`` and the output paths.
    ``system`` lets the same machinery run any prepared OpenMM System (the model is then not used).
    """
    import numpy as np
    import openmm
    from openmm import app, unit

    platform, properties = get_platform(config.platform, config.precision)
    if config.threads is not None:
        import torch

        if int(config.threads) < 1:
            raise ValueError(f"threads must be >= 1, got {config.threads}")
        torch.set_num_threads(int(config.threads))  # the plugin evaluates the model in this process's libtorch
    topology, positions = load_structure(config)
    if system is None:
        info = inspect_model(config.model)
        system = build_system(config, topology, info)
    else:
        info = {"sha256": "custom-system"}
    output_dir = os.fspath(config.output_dir)
    os.makedirs(output_dir, exist_ok=True)
    csv_path = os.path.join(output_dir, CSV_NAME)
    checkpoint_path = os.path.join(output_dir, CHECKPOINT_NAME)
    state_path = os.path.join(output_dir, CHECKPOINT_STATE_NAME)
    trajectory_path = None
    if config.trajectory is not None:
        trajectory_path = config.trajectory if os.path.isabs(config.trajectory) else os.path.join(
            output_dir, config.trajectory)

    integrator = make_integrator(config)
    simulation = app.Simulation(topology, system, integrator, platform, properties)
    context = simulation.context
    fingerprint = _fingerprint(config, info, topology.getNumAtoms())
    equilibration = int(config.equilibration_steps)
    total = equilibration + int(config.steps)
    dt_ps = config.timestep_fs / 1000.0
    dof = degrees_of_freedom(system)
    periodic = system.usesPeriodicBoundaryConditions()  # (OpenMM would wrap even a non-periodic system's atoms)
    kb = unit.MOLAR_GAS_CONSTANT_R.value_in_unit(unit.kilojoule_per_mole / unit.kelvin)
    log = _EnergyLog(csv_path)
    trajectory = None
    if trajectory_path is not None:
        trajectory = _TrajectoryWriter(trajectory_path, topology, dt_ps, config.trajectory_interval, equilibration)

    resumed_from = None
    if config.resume and os.path.isfile(checkpoint_path) and os.path.isfile(state_path):
        with open(state_path) as handle:
            saved = json.load(handle)
        changed = {k: (saved["fingerprint"].get(k), v) for k, v in fingerprint.items()
                   if saved["fingerprint"].get(k) != v}
        if changed:
            raise ValueError("resume: the checkpoint in {} was written with different settings {}; use the "
                             "original settings or a new output directory".format(
                                 output_dir, ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())))
        with open(checkpoint_path, "rb") as handle:
            context.loadCheckpoint(handle.read())
        resumed_from = int(saved["step"])
        simulation.currentStep = resumed_from
        log.load_until(resumed_from)
        if trajectory is not None:
            trajectory.start(int(saved.get("trajectory_frames", 0)) if resumed_from > equilibration else 0)
    else:
        if config.resume:
            print(f"nnforce simulate: no checkpoint in {output_dir}, starting from the beginning", file=sys.stderr)
        context.setPositions(positions)
        if config.minimize:
            openmm.LocalEnergyMinimizer.minimize(
                context, config.minimize_tolerance_kj_mol_nm * unit.kilojoule_per_mole / unit.nanometer,
                int(config.minimize_max_iterations))
        context.setVelocitiesToTemperature(config.temperature_k * unit.kelvin, int(config.seed))
        simulation.currentStep = 0
        if trajectory is not None and equilibration == 0:
            trajectory.start()

    def save_checkpoint(step):
        if trajectory is not None:
            trajectory.sync()
        log.flush()
        data = context.createCheckpoint()
        with atomic_write(checkpoint_path, "wb") as handle:
            handle.write(data)
        _write_json(state_path, {"step": step, "fingerprint": fingerprint,
                                 "trajectory_frames": 0 if trajectory is None else trajectory.frames})

    def report(step, speed):
        state = context.getState(getEnergy=True)
        potential = state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
        kinetic = state.getKineticEnergy().value_in_unit(unit.kilojoule_per_mole)
        log.add({"step": step, "time_ps": f"{step * dt_ps:.6f}", "potential_kj_mol": repr(potential),
                 "kinetic_kj_mol": repr(kinetic), "total_kj_mol": repr(potential + kinetic),
                 "temperature_k": f"{2.0 * kinetic / (dof * kb):.4f}", "ns_per_day": f"{speed:.4f}"})
        if not math.isfinite(potential):
            raise ValueError(f"the energy became {potential} at step {step}: the simulation blew up (try a "
                             "smaller time step, minimisation, or check the model's elements and units)")

    from tqdm import tqdm

    step = simulation.currentStep
    bar = tqdm(total=total, initial=step, unit="step", disable=not config.progress, dynamic_ncols=True,
               desc="equilibration" if step < equilibration else "production")
    wall_start = time.perf_counter()
    steps_run = 0
    speed = 0.0
    try:
        if step == 0 and total > 0 and equilibration == 0:
            report(0, 0.0)
        while step < total:
            events = [total]
            if step < equilibration:
                events.append(equilibration)
            else:
                events.append((step // config.report_interval + 1) * config.report_interval)
                if trajectory is not None:
                    since = (step - equilibration) % config.trajectory_interval
                    events.append(step + config.trajectory_interval - since)
            if config.checkpoint_interval:
                events.append((step // config.checkpoint_interval + 1) * config.checkpoint_interval)
            target = min(e for e in events if e > step)
            integrator.step(target - step)
            steps_run += target - step
            step = target
            simulation.currentStep = step
            bar.update(target - bar.n)
            elapsed = time.perf_counter() - wall_start
            speed = steps_run * dt_ps / 1000.0 / elapsed * 86400.0 if elapsed > 0 else 0.0
            bar.set_postfix_str(f"{speed:.3g} ns/day")
            if step == equilibration and equilibration > 0:
                bar.set_description("production")
                if trajectory is not None and trajectory._file is None:
                    trajectory.start()
                report(step, speed)
            elif step > equilibration:
                if (step - equilibration) % config.report_interval == 0 or step == total:
                    report(step, speed)
                if trajectory is not None and (step - equilibration) % config.trajectory_interval == 0:
                    trajectory.write(context.getState(getPositions=True, enforcePeriodicBox=periodic))
            if config.checkpoint_interval and step % config.checkpoint_interval == 0:
                save_checkpoint(step)
        save_checkpoint(step)
    finally:
        bar.close()
        if trajectory is not None:
            trajectory.close()
        log.flush()

    state = context.getState(getPositions=True, getEnergy=True, enforcePeriodicBox=periodic)
    final_pdb = os.path.join(output_dir, "final.pdb")
    with atomic_write(final_pdb, "w") as handle:
        app.PDBFile.writeFile(topology, state.getPositions(), handle, keepIds=True)
    production = [row for row in log.rows if int(row["step"]) >= equilibration]
    times = [float(r["time_ps"]) for r in production]
    totals = [float(r["total_kj_mol"]) for r in production]
    result = {
        "steps": int(config.steps), "equilibration_steps": equilibration, "final_step": step,
        "time_ps": step * dt_ps, "ns_per_day": speed, "resumed_from_step": resumed_from,
        "platform": platform.getName(), "integrator": config.integrator, "num_atoms": topology.getNumAtoms(),
        "final_potential_kj_mol": state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
        "temperature_mean_k": float(np.mean([float(r["temperature_k"]) for r in production])) if production else None,
        "energy_drift_kj_mol_ps_atom": (energy_drift(times, totals, topology.getNumAtoms())
                                        if config.integrator == "verlet" else None),
        "energy_csv": csv_path, "trajectory": trajectory_path, "checkpoint": checkpoint_path, "final_pdb": final_pdb,
    }
    _write_json(os.path.join(output_dir, "result.json"), result)
    result["positions_nm"] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
    return result


# ----------------------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------------------

EXAMPLES = """examples:
  nnforce simulate mol.pdb model.pt --steps 20000 --platform CPU
  nnforce simulate mol.pdb ani1x.pt --integrator verlet --timestep-fs 0.25 --steps 4000   (NVE, prints drift)
  nnforce simulate solvated.pdb model.pt --forcefield amber14-all.xml amber14/tip3p.xml --ml-atoms "resname LIG"
  nnforce simulate mol.pdb model.pt -o run1 --checkpoint-interval 5000 --resume   (continue a stopped run)"""


def register(subparsers):
    parser = subparsers.add_parser(
        "simulate", help="run MD with a TorchScript model (NNForce) in OpenMM",
        description="Minimise, equilibrate and run molecular dynamics with an exported model.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("structure", help="PDB or PDBx/mmCIF file (its CRYST1 box makes the system periodic)")
    parser.add_argument("model", help="exported TorchScript model (.pt)")
    parser.add_argument("-o", "--output-dir", default="simulation", help="output folder (default: simulation)")
    parser.add_argument("--steps", type=int, default=10000, help="production steps (default 10000)")
    parser.add_argument("--equilibration-steps", type=int, default=0)
    parser.add_argument("--no-minimize", action="store_true", help="skip the energy minimisation")
    parser.add_argument("--integrator", default="langevin-middle", help="langevin-middle (default) or verlet (NVE)")
    parser.add_argument("--temperature", type=float, default=300.0, help="K (default 300)")
    parser.add_argument("--friction", type=float, default=1.0, help="Langevin friction, 1/ps (default 1)")
    parser.add_argument("--timestep-fs", type=float, default=0.5, help="time step in fs (default 0.5)")
    parser.add_argument("--platform", default=None, help="Reference, CPU, CUDA or OpenCL (default: fastest)")
    parser.add_argument("--precision", default=None, help="single, mixed or double (CUDA/OpenCL)")
    parser.add_argument("--model-precision", default=None, choices=("single", "double"),
                        help="precision the model runs in (default: double on Reference, single otherwise)")
    parser.add_argument("--seed", type=int, default=1, help="velocities and Langevin noise (default 1)")
    parser.add_argument("--report-interval", type=int, default=100, help="steps between energy CSV rows")
    parser.add_argument("--trajectory", default="trajectory.dcd", help="trajectory file (.dcd/.xtc) or 'none'")
    parser.add_argument("--trajectory-interval", type=int, default=1000, help="steps between frames")
    parser.add_argument("--checkpoint-interval", type=int, default=10000, help="steps between checkpoints (0: end)")
    parser.add_argument("--resume", action="store_true", help="continue from the checkpoint in the output folder")
    parser.add_argument("--forcefield", nargs="+", default=None, help="MM force field XMLs for ML/MM")
    parser.add_argument("--ml-atoms", default=None, help='ML/MM region: "0-21,30" or an mdtraj selection')
    parser.add_argument("--lambda-ml", type=float, default=None, help="ML/MM coupling (default: full ML)")
    parser.add_argument("--constraints", default="none", choices=("none", "hbonds"), help="MM constraints (ML/MM)")
    parser.add_argument("--mm-cutoff", type=float, default=1.0, help="MM nonbonded cutoff, nm (ML/MM; default 1.0)")
    parser.add_argument("--neighbor-cutoff", type=float, default=None, help="NNForce neighbor list cutoff, nm")
    parser.add_argument("--neighbor-skin", type=float, default=0.0, help="neighbor list skin, nm")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for the model (default: torch's; 1 is often fastest on busy CPUs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=_main)
    return parser


def _main(args):
    config = SimulationConfig(
        model=args.model, pdb=args.structure, output_dir=args.output_dir, steps=args.steps,
        equilibration_steps=args.equilibration_steps, minimize=not args.no_minimize, integrator=args.integrator,
        temperature_k=args.temperature, friction_per_ps=args.friction, timestep_fs=args.timestep_fs,
        platform=args.platform, precision=args.precision, model_precision=args.model_precision, seed=args.seed,
        report_interval=args.report_interval,
        trajectory=None if args.trajectory.lower() == "none" else args.trajectory,
        trajectory_interval=args.trajectory_interval, checkpoint_interval=args.checkpoint_interval,
        resume=args.resume, progress=not args.no_progress, forcefield=args.forcefield, ml_atoms=args.ml_atoms,
        lambda_ml=args.lambda_ml, constraints=args.constraints, mm_cutoff_nm=args.mm_cutoff,
        neighbor_cutoff_nm=args.neighbor_cutoff, neighbor_skin_nm=args.neighbor_skin, threads=args.threads)
    result = run(config)
    print(f"{result['final_step']} steps ({result['time_ps']:.3f} ps) on {result['platform']}: "
          f"{result['ns_per_day']:.3g} ns/day; final potential {result['final_potential_kj_mol']:.4f} kJ/mol")
    if result["temperature_mean_k"] is not None:
        print(f"mean temperature {result['temperature_mean_k']:.1f} K")
    if result["energy_drift_kj_mol_ps_atom"] is not None:
        print(f"NVE energy drift {result['energy_drift_kj_mol_ps_atom']:.3e} kJ/mol/ps per atom")
    print(f"outputs in {config.output_dir}: {CSV_NAME}, "
          f"{os.path.basename(result['trajectory']) if result['trajectory'] else '(no trajectory)'}, "
          f"{CHECKPOINT_NAME}, final.pdb, result.json")
    return 0
