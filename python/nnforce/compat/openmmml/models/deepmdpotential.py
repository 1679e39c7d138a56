"""``openmmml.models.deepmdpotential``: openmm-ml's DeepmdPotentialImpl / DeepmdPotentialImplFactory over nnforce's
DeePMDPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

DeepmdPotentialImpl, DeepmdPotentialImplFactory = family_classes("Deepmd", "DeePMD", "DeePMDPotential", ('model', 'coordinatesCoefficient', 'forceCoefficient', 'energyCoefficient'), __name__)
