"""``openmmml.models.macepotential``: openmm-ml's MACEPotentialImpl / MACEPotentialImplFactory over nnforce's
MACEPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

MACEPotentialImpl, MACEPotentialImplFactory = family_classes("MACE", "MACE", "MACEPotential", ('modelPath',), __name__)
