"""The field's ML potentials in NNForce, with openmm-ml's interface.

Migration from openmm-ml is the import::

    from nnforce import MLPotential                 # was: from openmmml import MLPotential
    potential = MLPotential("mace", modelPath="model.model")
    system = potential.createSystem(topology)
    mixed = potential.createMixedSystem(topology, mm_system, ml_atoms, interpolate=True)

Families: MACE (``mace``), TorchANI (``ani1x``, ``ani2x``, ``ani1ccx``, ``torchani``), nnforce's own ANI-1x
(``nnforce-ani1x``), TorchMD-Net (``torchmdnet``), NequIP and Allegro (``nequip``, ``allegro``), AIMNet2 (``aimnet``,
``aimnet2`` ...; a ``.pt2`` package), and any contract-following TorchScript file (``nnforce``). Each adapter is a
module that runs in C++ inside NNForce; ``ase``, FeNNix, Orb and DeePMD run as Python callbacks, as in openmm-ml.
createMixedSystem caps the ML region with link atoms where it cuts covalent bonds (openmm-ml 1.8). See
docs/potentials.md and docs/migrating.md.
"""
from ._potential import MLPotential, MLPotentialImpl, MLPotentialImplFactory

__all__ = ["MLPotential", "MLPotentialImpl", "MLPotentialImplFactory"]
