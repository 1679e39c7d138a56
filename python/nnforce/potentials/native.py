"""nnforce's own models behind MLPotential: any contract-following TorchScript file, and nnforce's ANI-1x."""
import os

import torch

from . import _common


def _forward_arguments(module):
    schema = module.forward.schema
    return [argument.name for argument in schema.arguments[1:]]


def _elements_from_lookup(module):
    """The elements of an nnforce model without metadata, from its atomic-number lookup buffer (-1 = unknown)."""
    buffers = dict(module.named_buffers())
    for name in ("element_index", "species_of_z", "index_of_z"):
        lookup = buffers.get(name)
        if lookup is not None and lookup.dim() == 1 and lookup.numel() == 119 and not lookup.is_floating_point():
            return [int(z) for z in torch.nonzero(lookup >= 0).flatten().tolist()]
    return None


class NativePotential:
    """``MLPotential("nnforce", modelPath="model.pt")``: a TorchScript file that follows the model contract.

    Files written by ``nnforce export`` carry their elements and cutoff in the metadata; those are checked
    against the topology and the cutoff sets the plugin's neighbor list. Other contract files (e.g. written
    for openmm-torch) run as they are.
    """

    supports_charge = False

    def __init__(self, name, modelPath=None, model=None):
        if (modelPath is None) == (model is None):
            raise ValueError("the 'nnforce' potential needs modelPath='model.pt' (a TorchScript file) or model=<ScriptModule>")
        self.metadata = {}
        if modelPath is not None:
            path = os.fspath(modelPath)
            if not os.path.isfile(path):
                raise FileNotFoundError(f"model file not found: {path}")
            from ..export import METADATA_FILE
            import json

            extra = {METADATA_FILE: ""}
            try:
                self.model = torch.jit.load(path, map_location="cpu", _extra_files=extra)
            except Exception as error:  # noqa: BLE001 - anything torch.jit.load rejects is not TorchScript
                raise ValueError(f"{path} is not a TorchScript model file ({type(error).__name__}: "
                                 f"{str(error).splitlines()[0] if str(error) else ''}); the 'nnforce' potential takes "
                                 "a file written by torch.jit.save or nnforce export. For a MACE/NequIP/TorchMD-Net "
                                 "file use that family's name") from error
            if extra[METADATA_FILE]:
                self.metadata = json.loads(extra[METADATA_FILE])
        else:
            if not isinstance(model, torch.jit.ScriptModule):
                raise ValueError("model must be a torch.jit.ScriptModule (torch.jit.script(model))")
            self.model = model
        arguments = _forward_arguments(self.model)
        self.supports_periodic = "box" in arguments or "shifts" in arguments
        self.uses_neighbors = "neighbors" in arguments
        self.elements = self.metadata.get("elements") or _elements_from_lookup(self.model)
        cutoff = float(self.metadata.get("cutoff_nm") or 0.0)
        self.cutoff_nm = cutoff if (self.uses_neighbors and cutoff > 0) else None
        # a model that sees only the plugin's pairs within its cutoff is local; one with a box and no list may not be
        self.ml_long_range = False if (self.cutoff_nm is not None or not self.supports_periodic) else None

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False):
        if self.elements:
            _common.check_elements(atomic_numbers, self.elements, "nnforce")
        dtype = _common.precision_dtype(precision)
        return self.model if dtype is None else self.model.to(dtype)


class NNForceANI1xPotential:
    """``MLPotential("nnforce-ani1x")``: ANI-1x read by nnforce's own NeuroChem reader (:func:`nnforce.models.ani1x`)."""

    supports_periodic = True
    supports_charge = False
    ml_long_range = False  # ANI-1x: the plugin's pairs within 0.52 nm
    elements = [1, 6, 7, 8]

    def __init__(self, name, path=None):
        from ..models.ani1x import ANI, load_ensemble

        self._build = lambda dtype: ANI(load_ensemble(path), dtype=dtype)
        self.cutoff_nm = 0.52

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False):
        _common.check_elements(atomic_numbers, self.elements, "ANI-1x")
        dtype = _common.precision_dtype(precision) or torch.float64
        return torch.jit.script(self._build(dtype))
