"""Training configuration (a dataclass that YAML files and CLI flags fill) and model construction from a spec."""
import dataclasses
import os
from typing import Optional

MODEL_TYPES = ("ani", "schnet", "pair", "aniencoder")


@dataclasses.dataclass
class TrainConfig:
    """Hyper-parameters of :func:`nnforce.train.fit`. Energies kJ/mol, forces kJ/mol/nm inside; losses are
    normalised (energy MSE / Var(E_train), force MSE / mean(F_train^2)) so the weights are unitless.

    Parameters
    ----------
    epochs, batch_size : int
    lr, weight_decay : float
    optimizer : {"adam", "adamw", "sgd"}
    schedule : {"plateau", "cosine", "none"}
    energy_weight, force_weight : float
    early_stopping_patience : int
    max_time_s : float, optional
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
    schedule: str = "plateau"  # plateau | cosine | none
    plateau_factor: float = 0.5
    plateau_patience: int = 5
    min_lr: float = 1e-6
    energy_weight: float = 1.0
    force_weight: float = 0.0  # > 0 trains on forces too (needs force labels)
    early_stopping_patience: int = 20
    clip_grad_norm: Optional[float] = 10.0
    max_time_s: Optional[float] = None
    self_energies: str = "fit"  # fit (least squares on composition) | keep
    energy_scale: str = "auto"  # auto (from the residual spread) | keep
    seed: int = 0
    log_dir: Optional[str] = None  # CSV, TensorBoard and checkpoints go here
    tensorboard: bool = True
    progress: bool = False
    threads: Optional[int] = None

    def __post_init__(self):
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"optimizer must be adam, adamw or sgd, got {self.optimizer!r}")
        if self.schedule not in ("plateau", "cosine", "none"):
            raise ValueError(f"schedule must be plateau, cosine or none, got {self.schedule!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be at least 1")
        if self.lr <= 0:
            raise ValueError("lr must be positive")
        if self.energy_weight < 0 or self.force_weight < 0 or self.energy_weight + self.force_weight == 0:
            raise ValueError("energy_weight and force_weight must be >= 0 and not both 0")
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
    with open(path) as handle:
        values = yaml.safe_load(handle) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: the config must be a mapping with keys data, model, train, split, output")
    unknown = sorted(set(values) - {"data", "model", "train", "split", "output", "export"})
    if unknown:
        raise ValueError(f"{path}: unknown top-level keys {unknown}")
    return values
