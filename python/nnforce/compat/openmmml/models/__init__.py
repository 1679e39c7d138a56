"""``openmmml.models``: openmm-ml 1.8's potential modules, each an impl and a factory over an nnforce family."""
from . import (aimnet2potential, anipotential, asepotential, deepmdpotential, fennixpotential,  # noqa: F401
               macepotential, nequippotential, orbpotential, torchmdnetpotential)
