"""TorchANI models behind the model contract.

:class:`TorchANIAdapter` wraps a torchani model object (``torchani.models.BuiltinEnsemble``/``BuiltinModel`` or
any module with the same call, ``model((species, coordinates), cell, pbc).energies``, built with
``periodic_table_index=True``). Positions go in as Angstrom; with a box, atoms are first wrapped into the cell
(torchani's periodic search expects that) and the cell and ``pbc`` are passed. torchani finds its own pairs
(``AEVComputer``), so no plugin neighbor list is requested. Energies (Hartree) come back in kJ/mol.

Names: ``ani1x`` builds torchani's ANI-1x ensemble with torchani's own constructors from the NeuroChem files
shipped in the torchani 2.1.1 wheel (the wheel lacks the small ``ani-1x_8x.info`` index, so
``torchani.models.ANI1x()`` would try to download it); ``ani2x``/``ani1ccx`` call torchani's constructors, which
download their networks (no network here: that fails with torchani's own error); ``torchani`` takes any torchani
model object as ``model=``.
"""
import importlib.util
import os
from typing import Optional

import torch
from torch import Tensor

from . import _common

ANI1X_DIR = os.path.join("resources", "ani-1x_8x")


class TorchANIAdapter(torch.nn.Module):
    """``forward(positions [nm], atomic_numbers, box=None) -> energy [kJ/mol]`` for a torchani model."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model
        self.angstrom_per_nm = _common.ANGSTROM_PER_NM
        self.kj_mol_per_hartree = _common.KJ_MOL_PER_HARTREE
        self.register_buffer("pbc", torch.ones(3, dtype=torch.bool))

    def forward(self, positions: Tensor, atomic_numbers: Tensor, box: Optional[Tensor] = None) -> Tensor:
        species = atomic_numbers.long().unsqueeze(0)
        if box is None:
            coordinates = (positions * self.angstrom_per_nm).unsqueeze(0)
            energy = self.model((species, coordinates)).energies
        else:
            box = box.to(positions.dtype)
            # wrap into the reduced (lower-triangular) cell; floor has zero gradient, so forces are unchanged
            wrapped = positions - torch.outer(torch.floor(positions[:, 2] / box[2, 2]), box[2])
            wrapped = wrapped - torch.outer(torch.floor(wrapped[:, 1] / box[1, 1]), box[1])
            wrapped = wrapped - torch.outer(torch.floor(wrapped[:, 0] / box[0, 0]), box[0])
            coordinates = (wrapped * self.angstrom_per_nm).unsqueeze(0)
            energy = self.model((species, coordinates), box * self.angstrom_per_nm, self.pbc).energies
        return energy.sum() * self.kj_mol_per_hartree


class TorchANIExportAdapter(TorchANIAdapter):
    """The eager adapter the ``.pt2`` compiler traces: torchani's chain with the export-friendly stand-ins of
    :mod:`nnforce.potentials._torchani_export` (same numbers; torchani's own code has data-dependent branches and
    sizes that ``torch.export`` cannot trace)."""

    def forward(self, positions: Tensor, atomic_numbers: Tensor, box: Optional[Tensor] = None) -> Tensor:
        from ._torchani_export import exportable_torchani

        with exportable_torchani():
            return super().forward(positions, atomic_numbers, box)


def import_torchani():
    """Import torchani (2.1.1 imports ``pkg_resources``, which setuptools >= 81 no longer ships)."""
    try:
        import torchani
    except ImportError as error:
        raise ImportError(f"the torchani potentials need torchani, which failed to import ({error}). Install it with "
                          "`pip install -r requirements-potentials.txt` (torchani 2.1.1 also needs setuptools<81 for "
                          "pkg_resources); see docs/potentials.md") from error
    return torchani


def torchani_ani1x(path=None):
    """torchani's ANI-1x ensemble, built with torchani's own constructors from the wheel's NeuroChem files.

    Parameters
    ----------
    path : str, optional
        The ``ani-1x_8x`` NeuroChem directory (default: the one inside the installed torchani wheel).
    """
    torchani = import_torchani()
    if path is None:
        spec = importlib.util.find_spec("torchani")
        path = os.path.join(list(spec.submodule_search_locations)[0], ANI1X_DIR)
    params = os.path.join(path, "rHCNO-5.2R_16-3.5A_a4-8.params")
    if not os.path.isfile(params):
        raise FileNotFoundError(f"the ANI-1x NeuroChem files are not in {path}; they ship in the torchani 2.1.1 wheel "
                                "(pip install --no-deps torchani==2.1.1)")
    consts = torchani.neurochem.Constants(params)
    shifter, sae = torchani.neurochem.load_sae(os.path.join(path, "sae_linfit.dat"), return_dict=True)
    networks = torchani.neurochem.load_model_ensemble(consts.species, os.path.join(path, "train"), 8)
    return torchani.models.BuiltinEnsemble(torchani.nn.SpeciesConverter(consts.species),
                                           torchani.AEVComputer(**consts), networks, shifter,
                                           consts.species_to_tensor, consts, sae, True)


class TorchANIPotential:
    """The torchani family for :class:`nnforce.potentials.MLPotential` (``ani1x``, ``ani2x``, ``ani1ccx``, ``torchani``)."""

    supports_periodic = True
    supports_charge = False
    cutoff_nm = None  # torchani's AEVComputer finds its own pairs

    def __init__(self, name, model=None, path=None):
        torchani = import_torchani()
        if name == "torchani":
            if model is None:
                raise ValueError("the 'torchani' potential needs model=<torchani model> built with "
                                 "periodic_table_index=True (e.g. torchani.models.ANI2x(periodic_table_index=True))")
            self.model = model
        elif model is not None:
            raise ValueError(f"{name!r} builds its own model; pass a custom one with MLPotential('torchani', model=...)")
        elif name == "ani1x":
            self.model = torchani_ani1x(path)
        else:
            self.model = _downloaded_model(torchani, name)
        if not getattr(self.model, "periodic_table_index", False):
            raise ValueError("the torchani model must be built with periodic_table_index=True (atomic numbers in)")
        self.elements = _species_atomic_numbers(self.model)

    ml_long_range = False  # ANI is local (openmm-ml says the same)

    #: torchani's periodic pair search (aev.neighbor_pairs) enumerates candidate pairs with triu_indices(N, N) and a
    #: cartesian product over arange(N), which fixes the atom count N in the trace; the vacuum path traces with the
    #: stand-ins of _torchani_export (whose neighbor_pairs_nopbc replaces the vacuum search's triu_indices)
    pt2_refused_periodic = ("torchani's periodic neighbour search (aev.neighbor_pairs) fixes the atom count when traced "
                            "(torch.export: 'You marked atoms as dynamic but your code specialized it to be a "
                            "constant'), so no periodic .pt2 is made; the vacuum .pt2 is available")

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False, modelIndex=None, _eager=False):
        """``modelIndex`` (openmm-ml's): use that member of the ensemble only (default: the mean of all)."""
        _common.check_elements(atomic_numbers, self.elements, "torchani")
        import copy

        dtype = _common.precision_dtype(precision) or torch.float64
        model = copy.deepcopy(self.model).to(dtype).eval()
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        parts = ("species_converter", "aev_computer", "neural_networks", "energy_shifter")
        if all(hasattr(model, part) for part in parts):
            # a torchani BuiltinModel/BuiltinEnsemble computes exactly this chain; its own attributes (a Python
            # symbol table) do not script under torch 2.13, the chain of torchani modules does
            chain = [getattr(model, part) for part in parts]
            if modelIndex is not None:
                members = len(chain[2]) if isinstance(chain[2], import_torchani().nn.Ensemble) else 1
                if not -members <= int(modelIndex) < members:
                    raise ValueError(f"modelIndex {modelIndex} is out of range: this model has {members} members")
                if members > 1:
                    chain[2] = chain[2][int(modelIndex)]
            model = import_torchani().nn.Sequential(*chain)
        elif modelIndex is not None:
            raise ValueError("modelIndex needs a torchani built-in ensemble (ANI1x, ANI2x, ANI1ccx)")
        if _eager:
            return TorchANIExportAdapter(model)
        return torch.jit.script(TorchANIAdapter(model))


def _species_atomic_numbers(model):
    from openmm.app import Element

    return [Element.getBySymbol(symbol).atomic_number for symbol in model.species]


def _downloaded_model(torchani, name):
    """torchani's ANI-2x / ANI-1ccx, whose networks torchani downloads on first use; without a network (or with a
    broken download) one OSError naming the potential and the way out instead of torchani's long traceback."""
    import zipfile

    constructor = {"ani2x": torchani.models.ANI2x, "ani1ccx": torchani.models.ANI1ccx}[name]
    try:
        return constructor(periodic_table_index=True)
    except (OSError, RuntimeError, ValueError, zipfile.BadZipFile) as error:  # requests' errors are OSErrors
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise OSError(f"MLPotential({name!r}): torchani could not download or read the {name} networks ({first}). "
                      f"Run once with network access so torchani caches them, or use MLPotential('ani1x') (shipped "
                      f"with torchani) or MLPotential('torchani', model=...) with a model built offline.") from None
