"""``openmmml.models.nequippotential``: openmm-ml's NequIPPotentialImpl / NequIPPotentialImplFactory over nnforce's
NequIPPotential (see :mod:`nnforce.compat.openmmml`)."""
from ._family import family_classes

NequIPPotentialImpl, NequIPPotentialImplFactory = family_classes("NequIP", "NequIP", "NequIPPotential", ('modelPath', 'lengthScale', 'energyScale'), __name__)
