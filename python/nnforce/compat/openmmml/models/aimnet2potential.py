"""``openmmml.models.aimnet2potential``: openmm-ml's AIMNet2PotentialImpl / AIMNet2PotentialImplFactory over nnforce's
AIMNet2Potential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

AIMNet2PotentialImpl, AIMNet2PotentialImplFactory = family_classes("AIMNet2", "AIMNet2", "AIMNet2Potential", ('modelPath',), __name__)
