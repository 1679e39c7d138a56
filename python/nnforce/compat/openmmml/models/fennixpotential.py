"""``openmmml.models.fennixpotential``: openmm-ml's FeNNixPotentialImpl / FeNNixPotentialImplFactory over nnforce's
FeNNixPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

FeNNixPotentialImpl, FeNNixPotentialImplFactory = family_classes("FeNNix", "FeNNix", "FeNNixPotential", ('modelPath',), __name__)
