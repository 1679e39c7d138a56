"""openmm-ml names of families nnforce has no NNForce adapter for yet (AIMNet2, FeNNix, Orb, DeePMD).

If the family's package registers its own ``openmmml.potentials`` entry point, that registration is used (see
_potential._load_entry_points). Otherwise the name gives one clear error naming the package it needs and what to
use instead, rather than "unknown name".
"""

_PACKAGES = {"aimnet": "aimnet (AIMNet2)", "fennix": "fennol (FeNNix)", "orb": "orb-models (Orb)",
             "deepmd": "deepmd-kit"}


class ExternalPotential:
    def __init__(self, name, **args):
        family = next(key for key in _PACKAGES if name.startswith(key))
        raise NotImplementedError(
            f"the potential {name!r} needs the {_PACKAGES[family]} package and an nnforce adapter for it, which "
            "nnforce does not have yet; run it with openmm-ml itself (its Python-callback implementation), or "
            "export the model as TorchScript following docs/model-contract.md and use MLPotential('nnforce', "
            "modelPath=...)")
