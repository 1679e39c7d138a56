"""``openmmml.models.asepotential``: openmm-ml's ASEPotentialImpl / ASEPotentialImplFactory over nnforce's
ASEPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

ASEPotentialImpl, ASEPotentialImplFactory = family_classes("ASE", "ASE", "ASEPotential", (), __name__)
