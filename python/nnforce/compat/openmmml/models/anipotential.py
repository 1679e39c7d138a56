"""``openmmml.models.anipotential``: openmm-ml's ANIPotentialImpl / ANIPotentialImplFactory over nnforce's
TorchANIPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

ANIPotentialImpl, ANIPotentialImplFactory = family_classes("ANI", "ANI", "TorchANIPotential", (), __name__)
