"""Model library: every model is ``torch.jit.script``-able and follows the model contract
(positions in nm, energy in kJ/mol, optional ``neighbors``/``shifts``/``box``/``atomic_numbers``)."""
from .pair import LennardJones
from .radial import RadialMLP

__all__ = ["LennardJones", "RadialMLP"]
