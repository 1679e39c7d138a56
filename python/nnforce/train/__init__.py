"""Training: ``fit`` (energy + force MSE, early stopping, checkpoints, logs), ``evaluate`` (test metrics in
kJ/mol, kcal/mol and meV), learning curves, random hyper-parameter search, and the MD stability check (``md_stability``)."""
from .config import TrainConfig, build_model, load_yaml
from .curves import learning_curve, plot_learning_curve, random_search
from .checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from .fit import FitResult, evaluate, fit, fit_self_energies
from .stability import covalent_bonds, md_stability

__all__ = ["TrainConfig", "build_model", "load_yaml", "learning_curve", "plot_learning_curve", "random_search",
           "FitResult", "evaluate", "fit", "fit_self_energies", "load_checkpoint", "model_from_checkpoint",
           "save_checkpoint", "covalent_bonds", "md_stability"]
