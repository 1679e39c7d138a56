"""NequIP and Allegro models (nequip >= 0.7 framework) behind the model contract.

:class:`NequIPAdapter` wraps a NequIP-framework ``GraphModel`` (NequIP or Allegro, built by their own
constructors, loaded from a checkpoint or ``.nequip.zip`` package with nequip's ``load_saved_model``, or given as
``model=``) and hands it the graph it expects: ``pos`` and ``edge_index`` (both directions of every pair within
the model's ``r_max``, from the plugin's neighbor list), ``atom_types`` (the model's type order), and the image
offsets as ``edge_cell_shift`` against an identity ``cell`` (so ``edge_cell_shift @ cell`` is the Cartesian offset
in the model's length unit). Only ``total_energy`` is read; NNForce takes the forces by autograd.

Deployed files: nequip 0.19 compiles ``.nequip.pt2`` (AOTInductor) only; its TorchScript mode refuses torch >= 2.10
("TorchScript compilation is deprecated and not supported in PyTorch >= 2.10"). nnforce scripts the eager model
itself instead (that works under torch 2.13), so pass the checkpoint or package, not the compiled file.
"""
import os
from typing import Optional

import torch
from torch import Tensor

from . import _common


class NequIPAdapter(torch.nn.Module):
    """``forward(positions [nm], atomic_numbers, neighbors, shifts, box) -> energy [kJ/mol]`` for a NequIP model."""

    cutoff_nm: float

    def __init__(self, model: torch.nn.Module, type_of_z: Tensor, r_max: float, length_scale: float,
                 energy_scale: float):
        super().__init__()
        self.model = model
        self.register_buffer("type_of_z", type_of_z.long())
        self.length_scale = float(length_scale)
        self.energy_scale = float(energy_scale)
        self.cutoff_nm = float(r_max) * self.length_scale

    def forward(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        i, j, vectors, offsets = _common.pairs_with_offsets(positions, neighbors, shifts, box)
        sender, receiver, edge_offsets = _common.directed_edges(i, j, vectors, offsets, self.cutoff_nm)
        data = {
            "pos": positions / self.length_scale,
            "edge_index": torch.stack([sender, receiver]),
            "edge_cell_shift": edge_offsets / self.length_scale,
            "cell": torch.eye(3, dtype=positions.dtype, device=positions.device).unsqueeze(0),
            "atom_types": self.type_of_z.index_select(0, atomic_numbers.long()),
            "num_atoms": torch.ones_like(atomic_numbers, dtype=torch.long).sum().reshape(1),  # N stays dynamic (.pt2)
        }
        out = self.model(data)
        return out["total_energy"].sum() * self.energy_scale


def import_nequip():
    """Import nequip and initialise its global state without letting that state leak into the process.

    nequip's ``set_global_state`` (required before building or loading a model) seeds every RNG with 123, sets
    torch's default dtype to float64, the TorchScript fusion strategy and e3nn's optimisation defaults (``jit_mode``
    "eager" under torch >= 2.10). We let it run once, then restore the caller's RNG states, default dtype and e3nn
    defaults, so importing a NequIP model does not change what other code in the process computes.
    """
    try:
        import e3nn
        from nequip.utils.global_state import global_state_initialized, set_global_state
    except ImportError as error:
        raise ImportError(f"the 'nequip'/'allegro' potentials need nequip, which failed to import ({error}). Install "
                          "it with `pip install -r requirements-potentials.txt` (see docs/potentials.md)") from error
    if not global_state_initialized():
        import random

        import numpy as np

        dtype = torch.get_default_dtype()
        rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())
        e3nn_defaults = e3nn.get_optimization_defaults()
        try:
            set_global_state()
        finally:
            torch.set_default_dtype(dtype)
            torch.set_rng_state(rng[0])
            np.random.set_state(rng[1])
            random.setstate(rng[2])
            e3nn.set_optimization_defaults(**e3nn_defaults)
    import nequip

    return nequip


def load_model(path):
    """A NequIP-framework model from a checkpoint or ``.nequip.zip`` package (nequip's own loader)."""
    import_nequip()
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NequIP model file not found: {path}")
    if path.endswith((".nequip.pt2", ".nequip.pth")):
        raise ValueError(f"{path} is a compiled NequIP model; nnforce compiles the model itself (nequip 0.19 cannot "
                         "write TorchScript under torch >= 2.10). Pass the checkpoint (.ckpt) or package (.nequip.zip)")
    from nequip.model.saved_models.load_utils import load_saved_model

    try:
        model = load_saved_model(path, "eager")
    except Exception as error:  # noqa: BLE001 - any failure of nequip's loader means "not a NequIP file"
        raise ValueError(f"{path} is not a NequIP checkpoint or package ({type(error).__name__}: {error})") from error
    if isinstance(model, dict):
        if len(model) != 1:
            raise ValueError(f"{path} holds several models {sorted(model)}; pass model= with the one to use")
        model = next(iter(model.values()))
    return model


class NequIPPotential:
    """The ``nequip``/``allegro`` family for :class:`nnforce.potentials.MLPotential` (``modelPath`` or ``model``)."""

    supports_periodic = True
    supports_charge = False
    ml_long_range = False  # the plugin's pairs within r_max only: local

    def __init__(self, name, modelPath=None, model=None, lengthScale=0.1, energyScale=_common.KJ_MOL_PER_EV):
        if (modelPath is None) == (model is None):
            raise ValueError(f"the {name!r} potential needs modelPath= (a NequIP checkpoint or .nequip.zip package) "
                             "or model= (a NequIP-framework GraphModel)")
        import_nequip()
        self.model = load_model(modelPath) if modelPath is not None else model
        metadata = getattr(self.model, "metadata", None)
        if not isinstance(metadata, dict) or "type_names" not in metadata or "r_max" not in metadata:
            raise ValueError(f"the model is a {type(self.model).__name__} without NequIP metadata (type_names, r_max); "
                             f"the {name!r} potential takes a NequIP-framework GraphModel")
        from openmm.app import Element

        self.type_names = str(metadata["type_names"]).split()
        try:
            self.elements = [Element.getBySymbol(t).atomic_number for t in self.type_names]
        except KeyError as error:
            raise ValueError(f"the NequIP type names {self.type_names} are not all element symbols; nnforce maps "
                             "atoms to types by element") from error
        self.r_max = float(metadata["r_max"])
        self.length_scale = float(lengthScale)
        self.energy_scale = float(energyScale)
        self.cutoff_nm = self.r_max * self.length_scale
        self._compiled = {}

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False, _eager=False):
        _common.check_elements(atomic_numbers, self.elements, "NequIP")
        dtype = _common.precision_dtype(precision)
        key = str(dtype) + ("-eager" if _eager else "")
        if key not in self._compiled:
            import copy

            from e3nn.util import jit as e3nn_jit

            model = copy.deepcopy(self.model).eval()
            if dtype is not None:
                model = model.to(dtype)
            for parameter in model.parameters():
                parameter.requires_grad_(False)
            for sub in model.modules():  # energy only: NNForce differentiates the energy itself
                if hasattr(sub, "do_derivatives"):
                    sub.do_derivatives = False
            self._compiled[key] = model if _eager else e3nn_jit.compile(model)
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(self.elements):
            lookup[z] = index
        adapter = NequIPAdapter(self._compiled[key], lookup, self.r_max, self.length_scale, self.energy_scale)
        return adapter if _eager else torch.jit.script(adapter)
