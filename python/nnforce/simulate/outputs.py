"""The files a simulation writes: the energy CSV (rewritten atomically), the trajectory (OpenMM's DCD/XTC writers;
on resume the frames kept are read with mdtraj's readers and written again with the same writer), the
checkpoint fingerprint and ``result.json``."""
import csv
import json
import os
import time
from typing import Any, Dict, List

from .._io import atomic_save, atomic_write
from ..units import ANGSTROM_PER_NM
from .config import CSV_COLUMNS, CSV_FLUSH_SECONDS, DYNAMICS_FIELDS


class EnergyLog:
    """CSV rows kept in memory and rewritten atomically (never a torn file).

    Parameters
    ----------
    path : str
        The CSV file (columns :data:`nnforce.simulate.config.CSV_COLUMNS`).
    columns : sequence of str, optional
        The columns (default :data:`~nnforce.simulate.config.CSV_COLUMNS`; a committee model adds
        :data:`~nnforce.simulate.config.UNCERTAINTY_COLUMNS`).

    Examples
    --------
    >>> log = EnergyLog("energies.csv")  # doctest: +SKIP
    >>> log.add({"step": 0, ...}); log.flush()  # doctest: +SKIP
    """

    def __init__(self, path, columns=CSV_COLUMNS):
        self.path = path
        self.columns = tuple(columns)
        self.rows: List[Dict[str, Any]] = []
        self.last_flush = time.monotonic()

    def load_until(self, step):
        """On resume: keep the rows written up to ``step`` (the checkpoint) and forget later ones."""
        if os.path.isfile(self.path):
            with open(self.path, newline="") as handle:
                reader = csv.DictReader(handle)
                self.rows = [row for row in reader if int(row["step"]) <= step]
                if reader.fieldnames and len(reader.fieldnames) > len(self.columns):
                    self.columns = tuple(reader.fieldnames)  # e.g. a committee's uncertainty columns

    def add(self, row):
        """Append a row; the file is rewritten at most every ``CSV_FLUSH_SECONDS``."""
        self.rows.append(row)
        if time.monotonic() - self.last_flush > CSV_FLUSH_SECONDS:
            self.flush()

    def flush(self):
        """Rewrite the file with every row (atomically)."""
        with atomic_write(self.path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, lineterminator="\n")
            writer.writeheader()
            writer.writerows(self.rows)
        self.last_flush = time.monotonic()


class TrajectoryWriter:
    """Production frames into a DCD or XTC file through OpenMM's ``DCDFile``/``XTCFile`` writers.

    On resume, :meth:`start` keeps the first frames of the existing file: they are read with mdtraj's readers
    and written again, unchanged, with the same writer (no byte-level editing of the file).

    Parameters
    ----------
    path : str
        ``.dcd`` or ``.xtc``.
    topology : openmm.app.Topology
    timestep_ps : float
    interval : int
        Steps between frames.
    first_step : int
        Step of the first frame (after equilibration).

    Examples
    --------
    >>> writer = TrajectoryWriter("traj.dcd", topology, 0.001, 100, 0)  # doctest: +SKIP
    >>> writer.start(); writer.write(state); writer.close()  # doctest: +SKIP
    """

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

    @property
    def started(self):
        """Whether frames can be written (after :meth:`start`)."""
        return self._file is not None

    def _writer(self, path, append):
        """(OpenMM trajectory writer, open file handle or None) for ``path``."""
        from openmm import app, unit

        dt = self.timestep_ps * unit.picoseconds
        if self.format == ".dcd":
            handle = open(path, "r+b" if append else "wb")
            return app.DCDFile(handle, self.topology, dt, self.first_step, self.interval, append), handle
        if not append:
            open(path, "wb").close()
        return app.XTCFile(path, self.topology, dt, self.first_step, self.interval, append), None

    def _read(self):
        """(positions nm float64 [F, N, 3], box vectors per frame or None) of the existing file."""
        import numpy as np
        from mdtraj.formats import DCDTrajectoryFile, XTCTrajectoryFile
        from openmm import Vec3, unit
        from openmm.app.internal.unitcell import computePeriodicBoxVectors

        periodic = self.topology.getPeriodicBoxVectors() is not None
        if self.format == ".dcd":
            with DCDTrajectoryFile(self.path) as handle:
                xyz, lengths, angles = handle.read()
            # DCD stores Angstrom in float32: in float64 the writer's conversion back is exact after rounding
            xyz = xyz.astype(np.float64) / ANGSTROM_PER_NM
            boxes = None if not periodic else [computePeriodicBoxVectors(*(lengths[k].astype(np.float64) / ANGSTROM_PER_NM),
                                               *np.radians(angles[k].astype(np.float64))) for k in range(len(xyz))]
        else:
            with XTCTrajectoryFile(self.path) as handle:
                xyz, _, _, box = handle.read()
            xyz = xyz.astype(np.float64)
            boxes = None if not periodic else [[Vec3(*map(float, row)) for row in frame] * unit.nanometer
                                               for frame in box]
        return xyz, boxes

    def _count(self):
        from mdtraj.formats import DCDTrajectoryFile, XTCTrajectoryFile

        try:
            with (DCDTrajectoryFile if self.format == ".dcd" else XTCTrajectoryFile)(self.path) as handle:
                return len(handle)
        except (OSError, IOError, ValueError) as error:
            raise ValueError(f"resume: {self.path} is not a readable {self.format[1:].upper()} file ({error}); "
                             "start again without --resume") from None

    def _rewrite(self, frames):
        """Keep the first ``frames`` frames: write them again into a new file that replaces the old one."""
        from openmm import unit

        xyz, boxes = self._read()

        def write(tmp):
            writer, handle = self._writer(tmp, append=False)
            try:
                for k in range(frames):
                    writer.writeModel(xyz[k] * unit.nanometer,
                                      periodicBoxVectors=None if boxes is None else boxes[k])
            finally:
                if handle is not None:
                    handle.close()

        atomic_save(self.path, write)

    def start(self, frames_kept=None):
        """Start a new file, or (resume) keep the first ``frames_kept`` frames of the existing one."""
        if frames_kept is None or frames_kept == 0 or not os.path.isfile(self.path):
            if frames_kept:
                raise FileNotFoundError(f"resume: the checkpoint expects {frames_kept} frames in {self.path}, "
                                        "which is missing")
            self._file, self._handle = self._writer(self.path, append=False)
            return
        present = self._count()
        if present < frames_kept:
            raise ValueError(f"resume: {self.path} has {present} frames but the checkpoint expects {frames_kept}; "
                             "start again without --resume")
        # Frames written after the checkpoint (they will be recomputed), or the bytes of a frame torn by a crash or a
        # full disk (the frame count may not show them): keep exactly the first frames_kept frames, written again,
        # so that appending starts on a frame boundary.
        self._rewrite(frames_kept)
        self.frames = frames_kept
        self._file, self._handle = self._writer(self.path, append=True)

    def write(self, state):
        """Append the positions (and box, when periodic) of an OpenMM ``State``."""
        box = state.getPeriodicBoxVectors() if self.topology.getPeriodicBoxVectors() is not None else None
        self._file.writeModel(state.getPositions(asNumpy=True), periodicBoxVectors=box)
        self.frames += 1

    def write_positions(self, positions, box=None):
        """Append one frame from positions (a Quantity, [n, 3]) and, when periodic, the box vectors."""
        self._file.writeModel(positions, periodicBoxVectors=box)
        self.frames += 1

    def sync(self):
        """Flush the frames written so far to disk (before a checkpoint records their count)."""
        if self._handle is not None:
            self._handle.flush()
            os.fsync(self._handle.fileno())

    def close(self):
        """Close the file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def topology_fingerprint(topology):
    """SHA-256 (hex) of the topology's atoms in order (element, name, residue name) and its bonds: a structure with
    the same atom count but another atom order or another molecule gives another fingerprint."""
    import hashlib

    digest = hashlib.sha256()
    index = {atom: i for i, atom in enumerate(topology.atoms())}
    for atom in topology.atoms():
        symbol = atom.element.symbol if atom.element is not None else "?"
        digest.update(f"{symbol}|{atom.name}|{atom.residue.name};".encode())
    for bond in topology.bonds():
        digest.update(f"{index[bond[0]]}-{index[bond[1]]};".encode())
    return digest.hexdigest()


def fingerprint(config, info, num_atoms, topology=None):
    """The settings a checkpoint was written with (compared on resume), as they read back from JSON.

    Examples
    --------
    >>> fingerprint(config, {"sha256": "..."}, 22)["timestep_fs"]  # doctest: +SKIP
    0.5

    Parameters
    ----------
    config : SimulationConfig
    info : dict
        From :func:`nnforce.contract.inspect_model` (its ``sha256``).
    num_atoms : int
    topology : openmm.app.Topology, optional
        Its :func:`topology_fingerprint` is recorded too.

    Returns
    -------
    dict
    """
    values = {name: getattr(config, name) for name in DYNAMICS_FIELDS}
    values["model_sha256"] = info["sha256"]
    values["num_atoms"] = num_atoms
    if topology is not None:
        values["topology_sha256"] = topology_fingerprint(topology)
    values["ml_atoms"] = config.ml_atoms if isinstance(config.ml_atoms, (str, type(None))) else list(config.ml_atoms)
    return json.loads(json.dumps(values))


def read_checkpoint_state(path):
    """The ``checkpoint.json`` written beside a checkpoint, checked for the fields a resume needs.

    Parameters
    ----------
    path : str

    Returns
    -------
    dict

    Raises
    ------
    ValueError
        Naming ``path`` when it is not JSON, not an object, or lacks ``step``, ``fingerprint`` or
        ``checkpoint_sha256``.

    Examples
    --------
    >>> read_checkpoint_state("simulation/checkpoint.json")["step"]  # doctest: +SKIP
    10000
    """
    try:
        with open(path) as handle:
            saved = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"resume: {path} is not valid JSON ({error}); it was damaged or cut short: start again "
                         "without --resume") from None
    missing = [k for k in ("step", "fingerprint", "checkpoint_sha256") if not isinstance(saved, dict) or k not in saved]
    if missing:
        raise ValueError(f"resume: {path} lacks {', '.join(missing)} (damaged, or written by an older nnforce that "
                         "recorded no checkpoint hash); start again without --resume")
    if not isinstance(saved["fingerprint"], dict) or not isinstance(saved["step"], int) or saved["step"] < 0:
        raise ValueError(f"resume: {path} holds a bad step or fingerprint; start again without --resume")
    return saved


def read_checkpoint(path, saved, state_path):
    """The bytes of ``checkpoint.chk``, only when they hash to the SHA-256 recorded in ``checkpoint.json``.

    Parameters
    ----------
    path : str
        The checkpoint.
    saved : dict
        From :func:`read_checkpoint_state`.
    state_path : str
        Where ``saved`` came from (named in the message).

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        Naming the checkpoint when its hash differs (truncated, damaged, or from another run).

    Examples
    --------
    >>> read_checkpoint("run/checkpoint.chk", saved, "run/checkpoint.json")  # doctest: +SKIP
    """
    import hashlib

    with open(path, "rb") as handle:
        data = handle.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != saved["checkpoint_sha256"]:
        raise ValueError(f"resume: {path} ({len(data)} bytes) does not match the SHA-256 recorded in {state_path}: it "
                         "is truncated, damaged or from another run, so it is not loaded. Start again without --resume "
                         "(or restore the checkpoint that belongs with this checkpoint.json)")
    return data


def temperature_warning(temperatures_k, target_k, degrees_of_freedom, duration_ps=None, friction_per_ps=None):
    """A warning when the mean production temperature is far from the thermostat's target, else None.

    "Far" allows for the statistical spread of a small system (a heuristic): more than 10 % of the target plus two
    standard errors of the mean. The instantaneous spread is ``T sqrt(2/dof)``; the rows count as independent
    samples only up to four per ``1/(2 friction)`` ps (the time a Langevin thermostat takes to renew the total
    energy; kinetic and potential energy trade faster than that).

    Parameters
    ----------
    temperatures_k : sequence of float
        The instantaneous temperatures of the production rows.
    target_k : float
    degrees_of_freedom : int
    duration_ps, friction_per_ps : float, optional
        Length of the production and the Langevin friction (1/ps); without them every row counts.

    Returns
    -------
    str or None

    Examples
    --------
    >>> temperature_warning([213.0] * 20, 300.0, 1000, 20.0, 1.0)[:40]
    'mean temperature 213.0 K is far from the'
    >>> temperature_warning([299.0, 301.0], 300.0, 21) is None
    True
    """
    import numpy as np

    values = np.asarray(temperatures_k, dtype=float)
    if len(values) == 0 or not np.all(np.isfinite(values)):
        return None
    mean = float(values.mean())
    samples = len(values)
    if duration_ps is not None and friction_per_ps:
        samples = max(1.0, min(samples, 8.0 * float(friction_per_ps) * float(duration_ps)))
    spread = target_k * np.sqrt(2.0 / max(int(degrees_of_freedom), 1)) / np.sqrt(samples)
    if abs(mean - target_k) <= 0.1 * target_k + 2.0 * spread:
        return None
    return (f"mean temperature {mean:.1f} K is far from the {target_k:g} K target over {len(values)} rows (expected "
            f"within {0.1 * target_k + 2.0 * spread:.0f} K): the system "
            "was not equilibrated (give --equilibration-steps more steps), the run is too short to sample, or the time "
            "step is too large")


def write_json(path, data):
    """Write ``data`` as indented, sorted JSON, atomically.

    Parameters
    ----------
    path : str
    data : dict

    Examples
    --------
    >>> write_json("result.json", {"steps": 100})  # doctest: +SKIP
    """
    with atomic_write(path, "w") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")


def energy_drift(times_ps, total_kj_mol, num_atoms):
    """Least-squares slope of the total energy, kJ/mol/ps per atom (NVE quality).

    Parameters
    ----------
    times_ps, total_kj_mol : sequence of float
    num_atoms : int

    Returns
    -------
    float
        NaN with fewer than two points.

    Examples
    --------
    >>> round(energy_drift([0.0, 1.0, 2.0], [0.0, 2.0, 4.0], 2), 6)
    1.0
    """
    import numpy as np

    t = np.asarray(times_ps, dtype=float)
    e = np.asarray(total_kj_mol, dtype=float)
    if len(t) < 2:
        return float("nan")
    slope = np.polyfit(t - t.mean(), e, 1)[0]
    return float(slope / num_atoms)
