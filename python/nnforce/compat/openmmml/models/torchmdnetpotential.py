"""``openmmml.models.torchmdnetpotential``: openmm-ml's TorchMDNetPotentialImpl / TorchMDNetPotentialImplFactory over nnforce's
TorchMDNetPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

TorchMDNetPotentialImpl, TorchMDNetPotentialImplFactory = family_classes("TorchMDNet", "TorchMDNet", "TorchMDNetPotential", ('modelPath', 'lengthScale', 'energyScale'), __name__)
