"""``openmmml.mlpotential``: the potential and its extension API (nnforce's classes, openmm-ml's names)."""
from ...potentials import MLPotential, MLPotentialImpl, MLPotentialImplFactory  # noqa: F401
