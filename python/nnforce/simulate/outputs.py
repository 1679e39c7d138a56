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

    Examples
    --------
    >>> log = EnergyLog("energies.csv")  # doctest: +SKIP
    >>> log.add({"step": 0, ...}); log.flush()  # doctest: +SKIP
    """

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
        """Append a row; the file is rewritten at most every ``CSV_FLUSH_SECONDS``."""
        self.rows.append(row)
        if time.monotonic() - self.last_flush > CSV_FLUSH_SECONDS:
            self.flush()

    def flush(self):
        """Rewrite the file with every row (atomically)."""
        with atomic_write(self.path, "w") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, lineterminator="\n")
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
        if present > frames_kept:  # frames written after the checkpoint: drop them, they will be recomputed
            self._rewrite(frames_kept)
        self.frames = frames_kept
        self._file, self._handle = self._writer(self.path, append=True)

    def write(self, state):
        """Append the positions (and box, when periodic) of an OpenMM ``State``."""
        box = state.getPeriodicBoxVectors() if self.topology.getPeriodicBoxVectors() is not None else None
        self._file.writeModel(state.getPositions(asNumpy=True), periodicBoxVectors=box)
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


def fingerprint(config, info, num_atoms):
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

    Returns
    -------
    dict
    """
    values = {name: getattr(config, name) for name in DYNAMICS_FIELDS}
    values["model_sha256"] = info["sha256"]
    values["num_atoms"] = num_atoms
    values["ml_atoms"] = config.ml_atoms if isinstance(config.ml_atoms, (str, type(None))) else list(config.ml_atoms)
    return json.loads(json.dumps(values))


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
