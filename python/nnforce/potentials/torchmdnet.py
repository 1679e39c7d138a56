"""TorchMD-Net models (TensorNet, ET, ...) behind the model contract.

TensorNet (torchmd-net's default and AceFF's architecture) runs on **nnforce's neighbor list**:
:class:`TensorNetAdapter` takes the contract's ``neighbors`` [2, P] and ``shifts`` [P, 3] (the plugin's Verlet or
cell list, C++), keeps the pairs with ``cutoff_lower <= r < cutoff_upper`` (a Verlet list's skin pairs would be
zeroed by TensorNet's cosine cutoff anyway; dropping them saves their work), and evaluates the torchmd-net model's
own layers -- its RBF expansion, cosine cutoffs, embedding tables and linear layers, interaction layers, output
head, Atomref prior, ``std``/``mean`` scaling -- in a forward written here with torchmd-net's own pure-torch
tensor algebra (``torchmdnet.models.tensornet``'s non-warp functions). Nothing inside has a data-dependent shape
baked in, and no torchmd-net custom operator is called (its neighbor search and its warp kernels are Python
operators), so the same module scripts to TorchScript, compiles to a correct ``.pt2`` with dynamic atom and pair
counts, and runs in a process that never imported torchmdnet. It equals torchmd-net's own ``forward`` (1e-10
relative in float64, tests/test_potentials_torchmdnet.py). Per-pair work (RBFs, the edge MLPs, the cutoff) is
done once per unordered pair and shared by both directions, and the atomic-number edge embedding is tabulated per
element pair at load time (TorchMD-Net's own "inference mode" idea), which is why it is faster than the model's
own forward.

Other TorchMD-Net models (ET, graph network, transformer, TensorNet2, an atom filter, priors other than Atomref,
output heads other than ``Scalar``) keep :class:`TorchMDNetAdapter`, which calls the model's own ``forward``: the
model finds its own pairs (TorchMD-Net's ``OptimizedDistance``, a Python custom operator registered when
``torchmdnet`` is imported, so a serialized System of such a model needs ``import torchmdnet`` first) and has no
``.pt2`` (its pair capacity comes from the atom count at trace time; the package gave energies 0.8-2.3 relative
off, bench/results/vs_openmmml.md).

``lengthScale`` (nm per model length unit, default 0.1: Angstrom) and ``energyScale`` (kJ/mol per model energy
unit, default eV) are openmm-ml's arguments with the same defaults... except that openmm-ml 1.8 uses 96.4916 for
eV, and we use the CODATA value 96.48533 (see _common.py).
"""
import os
from typing import Optional

import torch
from torch import Tensor

from . import _common


class TorchMDNetAdapter(torch.nn.Module):
    """``forward(positions [nm], atomic_numbers, box=None) -> energy [kJ/mol]`` through the model's own forward
    (its own neighbor search): the path for the TorchMD-Net models :class:`TensorNetAdapter` does not cover."""

    def __init__(self, model: torch.nn.Module, length_scale: float, energy_scale: float, charge: Optional[float]):
        super().__init__()
        self.model = model
        self.length_scale = float(length_scale)
        self.energy_scale = float(energy_scale)
        self.uses_charge = charge is not None
        self.register_buffer("charge", torch.tensor([0.0 if charge is None else float(charge)]))
        # the interaction range (nm), for the model's metadata: torchmdnet's own `cutoff` attributes are modules
        rep = getattr(model, "representation_model", None)
        self.cutoff_nm = float(getattr(rep, "cutoff_upper", 0.0) or 0.0) * self.length_scale

    def forward(self, positions: Tensor, atomic_numbers: Tensor, box: Optional[Tensor] = None) -> Tensor:
        pos = positions / self.length_scale
        cell: Optional[Tensor] = None
        if box is not None:
            cell = box.to(positions.dtype) / self.length_scale
        q: Optional[Tensor] = None
        if self.uses_charge:
            q = self.charge.to(positions.dtype)
        energy, _ = self.model(atomic_numbers.long(), pos, box=cell, q=q)
        return energy.sum() * self.energy_scale


def import_torchmdnet():
    try:
        from torchmdnet.models import model as tmn_model
    except ImportError as error:
        raise ImportError(f"the 'torchmdnet' potential needs torchmd-net, which failed to import ({error}). Install "
                          "it with `pip install -r requirements-potentials.txt` (see docs/potentials.md)") from error
    return tmn_model


def read_checkpoint(path):
    """The hyperparameters of a TorchMD-Net checkpoint; ValueError if the file is not one."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"TorchMD-Net checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)  # a Lightning checkpoint (pickled dict)
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"{path} is not a TorchMD-Net checkpoint (torch.load failed: {error})") from error
    if not isinstance(ckpt, dict) or "hyper_parameters" not in ckpt or "state_dict" not in ckpt \
            or "model" not in ckpt["hyper_parameters"]:
        raise ValueError(f"{path} is not a TorchMD-Net checkpoint (no 'hyper_parameters' with a 'model' and "
                         "'state_dict'); the 'torchmdnet' potential takes a .ckpt written by torchmd-train")
    return dict(ckpt["hyper_parameters"])


def _prior_names(prior_model):
    """The prior class names in a checkpoint's ``prior_model`` hyperparameter (None, a name, a dict, a list)."""
    if not prior_model:
        return []
    if isinstance(prior_model, str):
        return [prior_model]
    if isinstance(prior_model, dict):
        return [str(name) for name in prior_model]
    names = []
    for entry in prior_model:
        names.extend(_prior_names(entry))
    return names


def tensornet_unsupported(hparams):
    """None when :class:`TensorNetAdapter` covers the checkpoint's model, else why not (it then keeps the model's
    own forward and neighbor search)."""
    if hparams.get("model") != "tensornet":
        return f"its representation is {hparams.get('model')!r}, not 'tensornet'"
    if int(hparams.get("atom_filter", -1)) > -1:
        return "it has an atom filter"
    if hparams.get("output_model", "Scalar") != "Scalar":
        return f"its output head is {hparams.get('output_model')!r}, not 'Scalar'"
    others = [name for name in _prior_names(hparams.get("prior_model")) if name.lower() != "atomref"]
    if others:
        return f"its prior(s) {others} search their own pairs (only Atomref is supported)"
    if hparams.get("spin", False):
        return "it takes spins"
    return None


class TorchMDNetPotential:
    """The ``torchmdnet`` family for :class:`nnforce.potentials.MLPotential` (``modelPath`` = a .ckpt file)."""

    supports_periodic = True
    cutoff_nm = None  # set per checkpoint: TensorNet takes the plugin's pairs, other models find their own

    #: openmm-ml's pretrained names -> (Hugging Face repository, file), loaded with huggingface_hub as openmm-ml does
    PRETRAINED = {"aceff-1.0": ("Acellera/AceFF-1.0", "aceff_v1.0.ckpt"),
                  "aceff-1.1": ("Acellera/AceFF-1.1", "aceff_v1.1.ckpt"),
                  "aceff-2.0": ("Acellera/AceFF-2.0", "aceff_v2.0.ckpt")}
    ml_long_range = None

    def __init__(self, name, modelPath=None, lengthScale=0.1, energyScale=_common.KJ_MOL_PER_EV,
                 maxNumNeighbors=128):
        if name in self.PRETRAINED:
            if modelPath is not None:
                raise ValueError(f"{name!r} loads its own checkpoint; pass a local one with MLPotential('torchmdnet', "
                                 "modelPath=...)")
            repo, filename = self.PRETRAINED[name]
            try:
                from huggingface_hub import hf_hub_download

                modelPath = hf_hub_download(repo_id=repo, filename=filename)
            except Exception as error:  # noqa: BLE001 - missing package or offline: one clear line
                raise RuntimeError(f"could not load {name!r} with huggingface_hub.hf_hub_download({repo!r}, "
                                   f"{filename!r}): {type(error).__name__}: {error}. It is downloaded on first use; "
                                   "offline, use MLPotential('torchmdnet', modelPath=...)") from error
            self.ml_long_range = False
        if modelPath is None:
            raise ValueError("the 'torchmdnet' potential needs modelPath='model.ckpt' (a TorchMD-Net checkpoint)")
        self.hparams = read_checkpoint(modelPath)
        self.path = os.fspath(modelPath)
        self.length_scale = lengthScale
        self.energy_scale = energyScale
        self.max_num_neighbors = int(maxNumNeighbors)
        self.supports_charge = bool(self.hparams.get("charge", False))
        self.elements = None  # an embedding over atomic numbers 1..max_z
        self.max_z = int(self.hparams.get("max_z", 100))
        self.cutoff_upper_nm = float(self.hparams.get("cutoff_upper", 5.0)) * lengthScale
        if self.ml_long_range is None:
            # TorchMD-Net's graph reaches cutoff_upper; only a Coulomb prior adds long-range terms
            self.ml_long_range = None if "coulomb" in str(self.hparams.get("prior_model", "")).lower() else False
        #: why this model keeps its own forward and neighbor search (None: TensorNet on the plugin's neighbor list)
        self.own_forward_reason = tensornet_unsupported(self.hparams)
        if self.own_forward_reason is None:
            self.cutoff_nm = self.cutoff_upper_nm
        else:
            # a model that finds its own pairs has no .pt2: its neighbor search's pair capacity is fixed at trace time
            self.pt2_refused = (f"this TorchMD-Net model runs its own neighbor search ({self.own_forward_reason}), "
                                "whose .pt2 gives wrong energies (its pair capacity is fixed at trace time; "
                                "bench/results/vs_openmmml.md); only TensorNet models compile to .pt2")

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False, _eager=False):
        bad = sorted({int(z) for z in atomic_numbers if int(z) >= self.max_z or int(z) < 1})
        if bad:
            raise ValueError(f"the TorchMD-Net model embeds atomic numbers below max_z={self.max_z}; the topology has "
                             f"{bad}. Use a model trained for these elements")
        tmn_model = import_torchmdnet()
        model = tmn_model.load_model(self.path, derivative=False, max_num_neighbors=self.max_num_neighbors)
        dtype = _common.precision_dtype(precision)
        if dtype is not None:
            model = model.to(dtype)
        model = model.eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        q = float(charge) if self.supports_charge else None
        if self.own_forward_reason is None:
            from ._torchmdnet_tensornet import TensorNetAdapter

            adapter = TensorNetAdapter(model, sorted({int(z) for z in atomic_numbers}), self.length_scale,
                                       self.energy_scale, q)
        else:
            adapter = TorchMDNetAdapter(model, self.length_scale, self.energy_scale, q)
        return adapter if _eager else torch.jit.script(adapter)
