"""``openmmml.models.orbpotential``: openmm-ml's OrbPotentialImpl / OrbPotentialImplFactory over nnforce's
OrbPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

OrbPotentialImpl, OrbPotentialImplFactory = family_classes("Orb", "Orb", "OrbPotential", (), __name__)
