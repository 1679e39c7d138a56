"""What one simulation needs: :class:`SimulationConfig` (validated on creation) and the output file names."""
import math
import os
from dataclasses import dataclass
from typing import Any, List, Optional

INTEGRATORS = ("langevin-middle", "verlet")
INTEGRATOR_ALIASES = {"langevin": "langevin-middle", "langevinmiddle": "langevin-middle", "nve": "verlet",
                      "velocity-verlet": "verlet"}
TRAJECTORY_FORMATS = (".dcd", ".xtc")
CSV_NAME = "energies.csv"
CHECKPOINT_NAME = "checkpoint.chk"
CHECKPOINT_STATE_NAME = "checkpoint.json"
CSV_FLUSH_SECONDS = 10.0
CSV_COLUMNS = ("step", "time_ps", "potential_kj_mol", "kinetic_kj_mol", "total_kj_mol", "temperature_k",
               "ns_per_day")
# added when the model returns an "uncertainty" output (a committee, nnforce.models.Committee)
UNCERTAINTY_COLUMNS = ("uncertainty_kj_mol", "flagged")
UNCERTAINTY_ACTIONS = ("flag", "stop")
# config fields that change the trajectory: a resume must not silently change them
DYNAMICS_FIELDS = ("integrator", "temperature_k", "friction_per_ps", "timestep_fs", "seed", "equilibration_steps",
                   "minimize", "platform", "precision", "model_precision", "lambda_ml", "constraints",
                   "mm_cutoff_nm", "forcefield", "equilibration_friction_per_ps")
# Equilibration: Langevin friction while equilibrating (at least this strong), and the CLI's default length.
EQUILIBRATION_FRICTION_PER_PS = 10.0
DEFAULT_EQUILIBRATION_PS = 0.5
DEFAULT_TRAJECTORY_FRAMES = 100     # the CLI's trajectory interval is steps // this (at least 1)
DEFAULT_REPORT_ROWS = 200           # the CLI's report interval is steps // this (at least 1)


@dataclass
class SimulationConfig:
    """Everything one simulation needs. Units: K, ps, fs, nm, kJ/mol (names say which).

    Parameters
    ----------
    model : str, bytes or torch.jit.ScriptModule
        The exported model (see :func:`nnforce.contract.model_bytes`).
    pdb : str, optional
        Structure file (PDB or PDBx/mmCIF; a CRYST1 box makes the system periodic); or give ``topology`` and
        ``positions`` (nm).
    output_dir : str
        Where ``energies.csv``, the trajectory, checkpoints, ``final.pdb`` and ``result.json`` go.
    steps, equilibration_steps : int
        Production and equilibration steps.
    integrator : {"langevin-middle", "verlet"}
        Aliases ``langevin`` and ``nve`` are accepted.
    forcefield, ml_atoms : optional
        MM force field files and the ML region (indices, ``"0-21,30"`` or an mdtraj selection): ML/MM.
    seed : int
        Velocities and Langevin noise.

    The remaining fields are documented beside their defaults in the source and in docs/simulate.md.

    Raises
    ------
    ValueError
        For an unknown integrator, negative step counts, a trajectory format other than DCD/XTC, a missing
        structure, or ML/MM with only one of ``forcefield`` and ``ml_atoms``.

    Examples
    --------
    >>> config = SimulationConfig(model="model.pt", pdb="mol.pdb", steps=1000, integrator="nve")
    >>> config.integrator
    'verlet'
    """

    model: Any                        # TorchScript file path (or a ScriptModule / serialized bytes)
    pdb: Optional[str] = None         # structure; or give topology + positions
    topology: Any = None              # openmm.app.Topology
    positions: Any = None             # positions (nm; Quantity or array [N, 3])
    output_dir: str = "simulation"
    steps: int = 10000                # production steps
    equilibration_steps: int = 0
    equilibration_friction_per_ps: Optional[float] = None  # Langevin friction while equilibrating; None = max(10, friction)
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
    uncertainty_threshold_kj_mol: Optional[float] = None  # committee spread past which a frame is flagged / the run stops
    uncertainty_action: str = "flag"  # "flag" (mark the CSV row) or "stop" (end the run at that report)

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
        for name in ("timestep_fs", "temperature_k", "friction_per_ps", "minimize_tolerance_kj_mol_nm", "mm_cutoff_nm",
                     "neighbor_skin_nm", "lambda_ml", "neighbor_cutoff_nm", "equilibration_friction_per_ps"):
            value = getattr(self, name)
            if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.timestep_fs <= 0 or self.temperature_k <= 0 or self.friction_per_ps < 0:
            raise ValueError("timestep_fs and temperature_k must be positive and friction_per_ps >= 0")
        if self.lambda_ml is not None and not 0.0 <= self.lambda_ml <= 1.0:
            raise ValueError(f"lambda_ml (--lambda-ml) must be between 0 (pure MM) and 1 (ML in the ML region), got "
                             f"{self.lambda_ml!r}: outside it the energy is an extrapolation, E_MM + lambda (E_ML - E_MM)")
        if self.mm_cutoff_nm <= 0:
            raise ValueError(f"mm_cutoff_nm (--mm-cutoff) must be a positive distance in nm, got {self.mm_cutoff_nm!r}")
        if self.neighbor_skin_nm < 0:
            raise ValueError(f"neighbor_skin_nm (--neighbor-skin) must be >= 0 nm, got {self.neighbor_skin_nm!r}")
        if self.trajectory is not None and os.path.splitext(str(self.trajectory))[1].lower() not in TRAJECTORY_FORMATS:
            raise ValueError(f"trajectory must end in one of {TRAJECTORY_FORMATS}, got {self.trajectory!r}")
        if self.pdb is None and (self.topology is None or self.positions is None):
            raise ValueError("give a structure: pdb=PATH, or topology= and positions=")
        if self.constraints not in ("none", "hbonds"):
            raise ValueError(f"constraints must be 'none' or 'hbonds', got {self.constraints!r}")
        if self.model_precision not in (None, "single", "double"):
            raise ValueError(f"model_precision must be 'single' or 'double', got {self.model_precision!r}")
        if self.uncertainty_action not in UNCERTAINTY_ACTIONS:
            raise ValueError(f"uncertainty_action must be one of {UNCERTAINTY_ACTIONS}, got {self.uncertainty_action!r}")
        if self.uncertainty_threshold_kj_mol is not None and not self.uncertainty_threshold_kj_mol > 0:
            raise ValueError("uncertainty_threshold_kj_mol must be a positive energy (kJ/mol), got "
                             f"{self.uncertainty_threshold_kj_mol!r}")
        if (self.forcefield is None) != (self.ml_atoms is None):
            raise ValueError("ML/MM needs both forcefield (MM force field files) and ml_atoms (the ML region)")

    @property
    def equilibration_friction(self):
        """The Langevin friction (1/ps) during equilibration."""
        return equilibration_friction(self)

    @property
    def timestep_ps(self):
        """The time step in ps."""
        from ..units import FS_PER_PS

        return self.timestep_fs / FS_PER_PS


def equilibration_friction(config):
    """Langevin friction (1/ps) while equilibrating: ``equilibration_friction_per_ps``, or by default the larger of
    :data:`EQUILIBRATION_FRICTION_PER_PS` and the production friction (a strong coupling brings a freshly
    minimised structure to temperature in a fraction of a ps).

    Examples
    --------
    >>> equilibration_friction(SimulationConfig(model="m.pt", pdb="x.pdb", friction_per_ps=1.0))
    10.0
    """
    if config.equilibration_friction_per_ps is not None:
        return float(config.equilibration_friction_per_ps)
    return max(EQUILIBRATION_FRICTION_PER_PS, float(config.friction_per_ps))


def short_run_defaults(steps, timestep_fs, output_dir=None, resume=False):
    """The CLI's defaults scaled to the run: equilibration steps (:data:`DEFAULT_EQUILIBRATION_PS`, at most the
    production steps), a trajectory
    interval giving about :data:`DEFAULT_TRAJECTORY_FRAMES` frames and a report interval giving about
    :data:`DEFAULT_REPORT_ROWS` rows. On ``resume`` the intervals the checkpoint was written with are kept.

    Parameters
    ----------
    steps : int
        Production steps.
    timestep_fs : float
    output_dir : str, optional
        Where a checkpoint may be (for ``resume``).
    resume : bool

    Returns
    -------
    dict
        ``equilibration_steps``, ``trajectory_interval``, ``report_interval``.

    Examples
    --------
    >>> short_run_defaults(2000, 0.5)
    {'equilibration_steps': 1000, 'trajectory_interval': 20, 'report_interval': 10}
    >>> short_run_defaults(200, 0.5)["equilibration_steps"]  # never longer than the production run
    200
    """
    import json

    from ..units import FS_PER_PS

    values = {"equilibration_steps": (min(int(round(DEFAULT_EQUILIBRATION_PS * FS_PER_PS / float(timestep_fs))), int(steps))
                                      if float(timestep_fs) > 0 and int(steps) > 0 else 0),  # (a bad time step is refused later)
              "trajectory_interval": max(1, int(steps) // DEFAULT_TRAJECTORY_FRAMES),
              "report_interval": max(1, int(steps) // DEFAULT_REPORT_ROWS)}
    state = os.path.join(os.fspath(output_dir), CHECKPOINT_STATE_NAME) if output_dir is not None else None
    if resume and state is not None and os.path.isfile(state):
        try:
            with open(state) as handle:
                saved = json.load(handle)
            for key in ("trajectory_interval", "report_interval"):
                if isinstance(saved.get(key), int) and saved[key] > 0:
                    values[key] = saved[key]
        except (OSError, ValueError):
            pass  # the resume itself reports a damaged checkpoint.json, naming it
    return values
