"""The field's ML potentials in NNForce, with openmm-ml's interface.

Migration from openmm-ml is the import::

    from nnforce import MLPotential                 # was: from openmmml import MLPotential
    potential = MLPotential("mace", modelPath="model.model")
    system = potential.createSystem(topology)
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)

Families: MACE (``mace``), TorchANI (``ani1x``, ``ani2x``, ``ani1ccx``, ``torchani``), nnforce's own ANI-1x
(``nnforce-ani1x``), TorchMD-Net (``torchmdnet``), NequIP and Allegro (``nequip``, ``allegro``), and any
contract-following TorchScript file (``nnforce``). Each adapter is a TorchScript module that runs in C++ inside
NNForce; see docs/potentials.md.
"""
from ._potential import MLPotential, MLPotentialImpl, MLPotentialImplFactory

__all__ = ["MLPotential", "MLPotentialImpl", "MLPotentialImplFactory"]
