"""Training configuration (a dataclass that YAML files and CLI flags fill) and model construction from a spec."""
import dataclasses
import os
from typing import Optional

MODEL_TYPES = ("ani", "schnet", "pair", "aniencoder")
SCHEDULES = ("plateau", "cosine", "budget_cosine", "none")


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of :func:`nnforce.train.fit`. Energies kJ/mol, forces kJ/mol/nm inside; losses are
    normalised (energy MSE / Var(E_train), force MSE / mean(F_train^2)) so the weights are unitless.

    Parameters
    ----------
    epochs, batch_size : int
    lr, weight_decay : float
    optimizer : {"adam", "adamw", "sgd"}
    schedule : {"plateau", "cosine", "budget_cosine", "none"}
        ``budget_cosine``: a half cosine from ``lr`` to ``min_lr`` over the run's progress, the largest of
        epoch / epochs, CPU s / max_cpu_s and wall s / max_time_s (so a time-capped run ends annealed).
    energy_weight, force_weight : float
    early_stopping_patience : int
    max_time_s : float, optional
        Wall-time cap (s) of the training loop.
    max_cpu_s : float, optional
        CPU-time cap (s, ``time.process_time`` of the training process): the fair cap on a shared machine.
    seed : int
    log_dir : str, optional
        CSV, TensorBoard and checkpoints.

    The other fields are documented beside their defaults.

    Examples
    --------
    >>> TrainConfig(epochs=300, force_weight=10.0).optimizer
    'adam'
    """

    epochs: int = 100
    batch_size: int = 32
    eval_batch_size: int = 256
    optimizer: str = "adam"  # adam (L2 via weight_decay) | adamw (decoupled decay) | sgd (momentum)
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "plateau"  # plateau | cosine | budget_cosine | none
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    energy_weight: float = 1.0
    force_weight: float = 0.0  # > 0 trains on forces too (needs force labels)
    early_stopping_patience: int = 20
    clip_grad_norm: Optional[float] = 10.0
    max_time_s: Optional[float] = None
    max_cpu_s: Optional[float] = None  # CPU seconds of the training process (time.process_time)
    self_energies: str = "fit"  # fit (least squares on composition) | keep
    energy_scale: str = "auto"  # auto (from the residual spread) | keep
    seed: int = 0
    log_dir: Optional[str] = None  # CSV, TensorBoard and checkpoints go here
    tensorboard: bool = True
    progress: bool = False
    threads: Optional[int] = None
    # "auto": training a model with fixed features (ANI-style AEVs) computes them once (with forces, also the slopes of
    # their terms) and trains on the stored rows (nnforce.train.feature_cache; same losses, ~3x faster on QM9 energies,
    # 2.2-2.5x on the demo's forces); "off": recompute every batch
    feature_cache: str = "auto"
    feature_cache_max_gib: float = 4.0  # larger feature sets are recomputed instead of stored

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("max_time_s", "max_cpu_s"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive (or left out for no cap)")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if self.energy_weight < 0 or self.force_weight < 0 or self.energy_weight + self.force_weight == 0:
            raise ValueError("energy_weight and force_weight must be >= 0 and not both 0")
        if self.feature_cache not in ("auto", "off"):
            raise ValueError(f"feature_cache must be auto or off, got {self.feature_cache!r}")
        if self.self_energies not in ("fit", "keep") or self.energy_scale not in ("auto", "keep"):
            raise ValueError("self_energies must be fit|keep and energy_scale auto|keep")

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(known)}")
        return cls(**values)


def build_model(spec):
    """Model from a spec dict: ``{"type": "ani"|"schnet"|"pair"|"aniencoder", "elements": [...], ...options}``.

    Parameters
    ----------
    spec : dict

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> type(build_model({"type": "ani", "elements": [1, 8]})).__name__
    'ANIModel'
    """
    from .. import models

    spec = dict(spec)
    kind = spec.pop("type", None)
    if kind not in MODEL_TYPES:
        raise ValueError(f"model type must be one of {MODEL_TYPES}, got {kind!r}")
    if "elements" not in spec:
        raise ValueError("the model spec needs 'elements' (atomic numbers), e.g. [1, 6, 8]")
    classes = {"ani": models.ANIModel, "schnet": models.SchNetModel, "pair": models.PairPotential,
               "aniencoder": models.ANIEncoder}
    try:
        return classes[kind](**spec)
    except TypeError as error:
        raise ValueError(f"bad options for a {kind} model: {error}") from error


def load_yaml(path):
    """Read a training YAML file: keys ``data``, ``model``, ``train`` (TrainConfig fields), ``split``, ``output``.

    Parameters
    ----------
    path : str

    Returns
    -------
    dict

    Examples
    --------
    >>> load_yaml("config.yaml")["model"]  # doctest: +SKIP
    {'type': 'schnet', 'elements': [1, 6, 8]}
    """
    import yaml

    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"config {path} is a directory, not a YAML file")
    try:
        with open(path) as handle:
            values = yaml.safe_load(handle) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{line}: {problem}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the config must be a mapping with keys data, model, train, split, output")
    unknown = sorted(set(values) - {"data", "model", "train", "split", "output", "export"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown}")
    return values
