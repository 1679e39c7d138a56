"""AIMNet2 (the ``aimnet`` package) behind the model contract, compiled to a ``.pt2`` package that runs in NNForce.

openmm-ml 1.8's names: ``aimnet`` (a local model, ``modelPath=``) and the pretrained families ``aimnet2``,
``aimnet2-2025``, ``aimnet2-nse``, ``aimnet2-pd``, ``aimnet2-rxn`` (four-member ensembles, ``modelIndex`` 0-3 picks
one, default 0). Models load through aimnet's own ``AIMNet2Calculator`` (its registry downloads and caches the
pretrained ones on first use; a local file, or ``model=`` an ``nn.Module``/``AIMNet2Calculator``, needs no network).

:class:`AIMNet2Adapter` feeds the calculator's model what the calculator does for one molecule in aimnet's dense
layout (``coord`` [1, N, 3] in Angstrom, ``numbers``, ``charge``, ``mult``; the model finds its own pairs within its
cutoff), then the calculator's external long-range modules when the model needs them (Coulomb, DFT-D3, energy in the
autograd graph), and returns the energy in kJ/mol; NNForce takes forces by autograd, as the calculator does.

Format: ``.pt2`` only (``modelFormat`` defaults to ``"pt2"`` for these names). aimnet's modules are not
TorchScript-able (``torch.jit.script`` stops at an ``import`` statement inside ``AEVSV.forward``, aimnet 0.2.6), but
they trace: :func:`nnforce.export`'s compiler exports the adapter with a dynamic atom count and AOTInductor compiles it.
Not periodic: the dense layout has no periodic images (aimnet's periodic path builds neighbor lists in Python, with
its own kernels); openmm-ml's Python callback takes a box, nnforce refuses one with a clear error.
"""
import os

import torch
from torch import Tensor

from . import _common

#: openmm-ml's family names -> aimnet's registry prefix (the member index is appended: ``..._0`` to ``..._3``)
PRETRAINED = {
    "aimnet2": "aimnet2-wb97m-d3",
    "aimnet2-2025": "aimnet2-b973c-2025-d3",
    "aimnet2-nse": "aimnet2-nse",
    "aimnet2-pd": "aimnet2-pd",
    "aimnet2-rxn": "aimnet2-rxn",
}

PIP_LINE = "pip install aimnet torch==2.13.0 openmm==8.6.1"


def import_aimnet():
    try:
        from aimnet.calculators import AIMNet2Calculator
    except ImportError as error:
        raise ImportError(f"the AIMNet2 potentials need the aimnet package, which failed to import ({error}); "
                          f"install it with `{PIP_LINE}` (see docs/potentials.md)") from error
    return AIMNet2Calculator


class AIMNet2Adapter(torch.nn.Module):
    """An AIMNet2 calculator's model (plus its external Coulomb/DFT-D3 modules) as a contract-following module:
    ``forward(positions, atomic_numbers) -> energy`` (nm in, kJ/mol out)."""

    def __init__(self, calculator, charge=0.0, multiplicity=1.0):
        super().__init__()
        self.model = calculator.model
        self.coulomb = calculator.external_coulomb
        self.dftd3 = calculator.external_dftd3
        self.charge = float(charge)
        self.multiplicity = float(multiplicity)
        self.angstrom_per_nm = _common.ANGSTROM_PER_NM
        self.kj_mol_per_ev = _common.KJ_MOL_PER_EV

    def forward(self, positions: Tensor, atomic_numbers: Tensor) -> Tensor:
        coord = (positions * self.angstrom_per_nm).unsqueeze(0)
        charge = torch.full((1,), self.charge, dtype=coord.dtype, device=coord.device)
        data = {"coord": coord, "numbers": atomic_numbers.to(torch.long).unsqueeze(0), "charge": charge,
                "mult": torch.full((1,), self.multiplicity, dtype=coord.dtype, device=coord.device)}
        data = self.model(data)
        if self.coulomb is not None:
            data = self.coulomb(data)
        if self.dftd3 is not None:
            data = self.dftd3(data, hessian=True)  # aimnet's energy-in-graph (pure torch) path
        return data["energy"].sum().to(positions.dtype) * self.kj_mol_per_ev


class AIMNet2Potential:
    """The AIMNet2 family for :class:`nnforce.potentials.MLPotential`."""

    supports_periodic = False
    supports_charge = True
    cutoff_nm = None  # the model finds its own pairs (dense layout)
    ml_long_range = False  # as openmm-ml: the calculator's default Coulomb without a box is not periodic
    default_format = "pt2"
    torchscript_refused = ("aimnet's modules are not TorchScript-able (torch.jit.script fails at an import statement "
                           "inside AEVSV.forward); they run as a .pt2 package, modelFormat='pt2' (the default for "
                           "this family)")
    pt2_refused = None

    def __init__(self, name, modelPath=None, model=None, charge=0, multiplicity=1):
        # openmm-ml's tests pass charge/multiplicity to MLPotential(...), where its AIMNet2 factory drops them; the
        # values that matter are createSystem's. A value here that would be dropped is refused, not ignored.
        if charge != 0 or multiplicity != 1:
            raise ValueError("pass charge= and multiplicity= to createSystem/createMixedSystem, not to "
                             "MLPotential(...) (openmm-ml ignores them there)")
        self.name = name
        if name in PRETRAINED:
            if modelPath is not None or model is not None:
                raise ValueError(f"{name!r} loads its own pretrained model; pass a local one with "
                                 "MLPotential('aimnet', modelPath=...)")
        elif (modelPath is None) == (model is None):
            raise ValueError("the 'aimnet' potential needs modelPath='model.pt' (a model file AIMNet2Calculator "
                             "loads) or model=<nn.Module or AIMNet2Calculator>")
        if modelPath is not None and not os.path.isfile(os.fspath(modelPath)):
            raise FileNotFoundError(f"AIMNet2 model file not found: {os.fspath(modelPath)}")
        self.model_path = None if modelPath is None else os.fspath(modelPath)
        self.model = model
        self._calculators = {}
        import_aimnet()

    def calculator(self, modelIndex=0):
        """aimnet's own AIMNet2Calculator for this potential (the registry member ``modelIndex`` for pretrained)."""
        AIMNet2Calculator = import_aimnet()
        if self.name in PRETRAINED:
            if isinstance(modelIndex, bool) or modelIndex not in (0, 1, 2, 3):
                raise ValueError(f"modelIndex must be 0, 1, 2 or 3 for {self.name!r} (a four-member ensemble), got "
                                 f"{modelIndex!r}")
            source = f"{PRETRAINED[self.name]}_{modelIndex}"
        else:
            if modelIndex != 0:
                raise ValueError("modelIndex must be 0 for a local AIMNet2 model ('aimnet'): only the model given "
                                 "is available")
            source = self.model_path if self.model_path is not None else self.model
            if isinstance(source, AIMNet2Calculator):
                return source
        key = source if isinstance(source, str) else id(source)
        if key not in self._calculators:
            try:
                self._calculators[key] = AIMNet2Calculator(source, device="cpu")
            except Exception as error:  # noqa: BLE001 - offline, a bad file: one clear line
                where = ("it is downloaded by aimnet's registry on first use; on an offline machine use "
                         "MLPotential('aimnet', modelPath=<local file>)") if self.name in PRETRAINED else \
                    "check that the file is an AIMNet2 model aimnet can load"
                raise RuntimeError(f"could not load the AIMNet2 model {source if isinstance(source, str) else ''!s} "
                                   f"with aimnet.calculators.AIMNet2Calculator: {type(error).__name__}: {error}; "
                                   f"{where}") from error
        return self._calculators[key]

    def module(self, atomic_numbers, charge=0, precision=None, periodic=False, modelIndex=0, multiplicity=1,
               _eager=False):
        """The eager adapter module (compiled to ``.pt2`` by MLPotential); ``precision`` None/'double' runs the
        model in float64 (its float64 atomic shifts kept exact), 'single' in float32."""
        import copy

        calculator = self.calculator(modelIndex)
        species = (getattr(calculator, "metadata", None) or {}).get("implemented_species")
        if species:
            _common.check_elements(atomic_numbers, [int(z) for z in species], "AIMNet2")
        dtype = _common.precision_dtype(precision) or torch.float64
        adapter = AIMNet2Adapter(calculator, charge, multiplicity)
        adapter = copy.deepcopy(adapter).to(dtype).eval()
        for parameter in adapter.parameters():
            parameter.requires_grad_(False)
        return adapter
