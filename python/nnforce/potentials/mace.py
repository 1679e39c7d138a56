"""MACE (mace-torch) models behind the model contract.

:class:`MACEAdapter` wraps a MACE model object (``mace.modules.MACE`` / ``ScaleShiftMACE``, as saved by
``mace_run_train`` or by ``torch.save(model, path)``) and feeds it the graph it expects: positions and image
shifts in Angstrom, a one-hot element encoding in the model's own element order, and both directions of every
pair within the model's ``r_max`` taken from the plugin's neighbor list (or all pairs with the minimum image when
no list is given). The model's energy (eV) comes back in kJ/mol; forces come from autograd in NNForce, exactly
as MACE's own calculator takes them (``-dE/dpositions``).

A MACE file is a pickled Python module, so loading it runs code from the file: load only files you trust.
"""
import os
from typing import Optional

import torch
from torch import Tensor

from . import _common


class MACEAdapter(torch.nn.Module):
    """A MACE model as a contract-following module: ``forward(positions, atomic_numbers, neighbors, shifts, box)``.

    Parameters
    ----------
    model : torch.nn.Module
        A MACE model (``mace.modules.MACE`` or a subclass).
    dtype : torch.dtype, optional
        Convert the model's parameters to this dtype (default: keep them).
    head : str, optional
        The head of a multi-head model (default: the model's first head).
    energy : {"energy", "interaction_energy"}
        ``"energy"`` includes the model's isolated-atom energies E0; ``"interaction_energy"`` leaves them out
        (openmm-ml's ``returnEnergyType``).
    """

    r_max_nm: float
    cutoff_nm: float
    total_charge: float
    total_spin: float

    def __init__(self, model: torch.nn.Module, dtype: Optional[torch.dtype] = None, head: Optional[str] = None,
                 energy: str = "energy"):
        super().__init__()
        if energy not in ("energy", "interaction_energy"):
            raise ValueError(f"energy must be 'energy' or 'interaction_energy', got {energy!r}")
        model = model.eval()
        if dtype is not None:
            model = model.to(dtype)
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        self.model = model
        self.elements = [int(z) for z in model.atomic_numbers.tolist()]
        self.r_max_nm = float(model.r_max) / _common.ANGSTROM_PER_NM
        self.cutoff_nm = self.r_max_nm  # the contract's name: a .pt2 package records it (NNForce checks its list)
        heads = list(getattr(model, "heads", ["Default"]) or ["Default"])
        if head is not None and head not in heads:
            raise ValueError(f"this MACE model has no head {head!r}; its heads are {heads}")
        self.head_index = heads.index(head) if head is not None else 0
        self.energy_key = energy
        self.total_charge = 0.0
        self.total_spin = 1.0
        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(self.elements):
            lookup[z] = index
        self.register_buffer("index_of_z", lookup)
        self.num_elements = len(self.elements)
        self.angstrom_per_nm = _common.ANGSTROM_PER_NM
        self.kj_mol_per_ev = _common.KJ_MOL_PER_EV

    def forward(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        n = positions.shape[0]
        i, j, vectors, offsets = _common.pairs_with_offsets(positions, neighbors, shifts, box)
        sender, receiver, edge_offsets = _common.directed_edges(i, j, vectors, offsets, self.r_max_nm)
        edge_shifts = edge_offsets * self.angstrom_per_nm

        species = self.index_of_z.long().index_select(0, atomic_numbers.long())
        node_attrs = torch.nn.functional.one_hot(species, self.num_elements).to(positions.dtype)
        cell = torch.zeros((3, 3), dtype=positions.dtype, device=positions.device)
        if box is not None:
            cell = box.to(positions.dtype) * self.angstrom_per_nm
        data = {
            "positions": positions * self.angstrom_per_nm,
            "node_attrs": node_attrs,
            "edge_index": torch.stack([sender, receiver]),
            "shifts": edge_shifts,
            "unit_shifts": torch.zeros_like(edge_shifts),
            "cell": cell,
            "batch": torch.zeros(n, dtype=torch.long, device=positions.device),
            "ptr": torch.cat([torch.zeros(1, dtype=torch.long, device=positions.device), _count(atomic_numbers)]),
            "head": torch.full((1,), self.head_index, dtype=torch.long, device=positions.device),
            "total_charge": torch.full((1,), self.total_charge, dtype=positions.dtype, device=positions.device),
            "total_spin": torch.full((1,), self.total_spin, dtype=positions.dtype, device=positions.device),
        }
        out = self.model(data, training=False, compute_force=False)
        energy = out[self.energy_key]
        assert energy is not None
        return energy.sum() * self.kj_mol_per_ev


def _count(atomic_numbers: Tensor) -> Tensor:
    """``[N]`` as a tensor computed from the input (torch.tensor([N]) would fix N in an exported .pt2)."""
    return torch.ones_like(atomic_numbers, dtype=torch.long).sum().reshape(1)


def import_mace():
    """Import mace-torch, undoing the process-wide switch it makes.

    ``mace/__init__.py`` (0.3.16) sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1`` so that e3nn 0.4.4 can read its
    constants under torch >= 2.6; that turns ``weights_only`` off for every later ``torch.load`` in the process.
    We restore the variable's previous state after the import (nnforce installs e3nn 0.6, which needs no switch).
    """
    before = os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    try:
        import mace.modules  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"the 'mace' potential needs mace-torch, which failed to import ({error}). Install it with "
            "`pip install -r requirements-potentials.txt` (see docs/potentials.md).") from error
    finally:
        if before is None:
            os.environ.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
        else:
            os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = before
    return mace.modules


def load_model(model_path):
    """Load a MACE model file (a pickled ``mace.modules.MACE``); ValueError if the file holds something else."""
    modules = import_mace()
    path = os.fspath(model_path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MACE model file not found: {path}")
    try:
        model = torch.load(path, map_location="cpu", weights_only=False)  # a MACE file is a pickled module
    except Exception as error:  # noqa: BLE001 - any unpickling failure means "not a MACE file"
        raise ValueError(f"{path} is not a MACE model file (torch.load failed: {error}). "
                         "The 'mace' potential takes a model saved by mace_run_train or torch.save(model).") from error
    if not isinstance(model, modules.MACE):
        raise ValueError(f"{path} holds a {type(model).__module__}.{type(model).__name__}, not a MACE model "
                         "(mace.modules.MACE). Choose the potential name that matches the file's family; "
                         "known names: see nnforce.potentials.MLPotential.knownNames().")
    return model


#: openmm-ml's MACE model names -> (mace's foundation-model function, its ``model`` argument, long-range)
FOUNDATION_MODELS = {
    "mace-off23-small": ("mace_off", "small", False),
    "mace-off23-medium": ("mace_off", "medium", False),
    "mace-off23-large": ("mace_off", "large", False),
    "mace-off24-medium": ("mace_off", "https://github.com/ACEsuit/mace-off/blob/main/mace_off24/"
                                      "MACE-OFF24_medium.model?raw=true", False),
    "mace-mpa-0-medium": ("mace_mp", "medium-mpa-0", False),
    "mace-omat-0-small": ("mace_mp", "small-omat-0", False),
    "mace-omat-0-medium": ("mace_mp", "medium-omat-0", False),
    "mace-omol-0-extra-large": ("mace_omol", "extra_large", False),
    "mace-les-off-small": ("mace_off", "https://github.com/ChengUCB/les_fit/blob/main/MACELES-OFF/"
                                       "MACELES-OFF_small_converted.model?raw=true", True),
}


def foundation_model(name):
    """A MACE foundation model by openmm-ml's name, through mace's own loader (which downloads and caches it)."""
    import_mace()
    from mace.calculators import foundations_models

    function, argument, _ = FOUNDATION_MODELS[name]
    try:
        return getattr(foundations_models, function)(model=argument, device="cpu", return_raw_model=True)
    except Exception as error:  # noqa: BLE001 - offline, a missing optional package: one clear line
        raise RuntimeError(f"could not load the MACE foundation model {name!r} with "
                           f"mace.calculators.foundations_models.{function}(model={argument!r}): "
                           f"{type(error).__name__}: {error}. It is downloaded on first use; on an offline machine "
                           "put the model file in mace's cache or use MLPotential('mace', modelPath=...)") from error


class MACEPotential:
    """The ``mace`` family for :class:`nnforce.potentials.MLPotential`: ``modelPath``/``model``, or one of
    openmm-ml's foundation-model names (``mace-off23-small`` ...), loaded by mace's own functions."""

    supports_periodic = True
    supports_charge = False  # True for mace-omol, which reads total_charge; the others would ignore a charge

    def __init__(self, name, modelPath=None, model=None, head=None):
        if name in FOUNDATION_MODELS:
            if modelPath is not None or model is not None:
                raise ValueError(f"{name!r} loads its own model; pass a local one with MLPotential('mace', "
                                 "modelPath=...)")
            model = foundation_model(name)
            self.ml_long_range = FOUNDATION_MODELS[name][2]
            self.supports_charge = FOUNDATION_MODELS[name][0] == "mace_omol"
        elif (modelPath is None) == (model is None):
            raise ValueError("the 'mace' potential needs modelPath='file.model' (a MACE model file) or model=<MACE>")
        else:
            self.ml_long_range = False  # the adapter gives the model the plugin's pairs within r_max only: local
        self.model = load_model(modelPath) if modelPath is not None else model
        if model is not None and not isinstance(model, import_mace().MACE):
            raise ValueError(f"model is a {type(model).__name__}, not a MACE model")
        self.head = head
        self.elements = [int(z) for z in self.model.atomic_numbers.tolist()]
        self.cutoff_nm = float(self.model.r_max) / _common.ANGSTROM_PER_NM
        self._compiled = {}

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False, returnEnergyType="interaction_energy",
               multiplicity=1, _eager=False):
        """The TorchScript module (MACEAdapter) for these atoms.

        ``returnEnergyType`` as openmm-ml: ``"interaction_energy"`` (default, without the isolated-atom energies)
        or ``"energy"``. ``charge`` and ``multiplicity`` go to the model as ``total_charge``/``total_spin``.
        """
        _common.check_elements(atomic_numbers, self.elements, "MACE")
        dtype = _common.precision_dtype(precision) or next(self.model.parameters()).dtype
        if _eager:  # for torch.export (.pt2): the plain module, no e3nn/TorchScript compilation
            import copy

            adapter = MACEAdapter(copy.deepcopy(self.model).to(dtype).eval(), None, self.head, returnEnergyType)
            adapter.total_charge = float(charge)
            adapter.total_spin = float(multiplicity)
            return adapter
        if dtype not in self._compiled:
            import copy

            from e3nn.util import jit as e3nn_jit

            # e3nn modules declare how they compile (script or trace); e3nn compiles MACE by those declarations
            self._compiled[dtype] = e3nn_jit.compile(copy.deepcopy(self.model).to(dtype).eval())
        adapter = MACEAdapter(self._compiled[dtype], None, self.head, returnEnergyType)
        adapter.total_charge = float(charge)
        adapter.total_spin = float(multiplicity)
        return torch.jit.script(adapter)
