"""Model library: every model is ``torch.jit.script``-able, exports to a ``.pt2`` (``nnforce.export.to_pt2``,
whose check compares each compiled package with the eager model) and follows the model contract (positions in nm,
energy in kJ/mol, optional ``neighbors``/``shifts``/``box``/``atomic_numbers``)."""
from .pair import LennardJones, PairPotential
from .radial import RadialMLP
from .aev import AEV
from .ani import AEVComputer, ANIModel, ani_ensemble
from .schnet import SchNetModel
from .aniencoder import ANIEncoder, uncertainty_weighted_loss
from .committee import Committee
from .ani1x import ani1x  # the files it reads are found on first use, with a clear error when missing

__all__ = ["AEV", "LennardJones", "RadialMLP", "AEVComputer", "ANIModel", "ani_ensemble", "SchNetModel", "PairPotential",
           "ANIEncoder", "uncertainty_weighted_loss", "Committee", "ani1x"]
