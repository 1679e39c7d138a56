"""The published ANI-1x potential (Smith et al., J. Chem. Phys. 148, 241733 (2018)) as a TorchScript model.

The 8-network ensemble is read with our own NeuroChem reader (:mod:`nnforce.models.neurochem`) from the files
shipped inside the ``torchani==2.1.1`` wheel (``torchani/resources/ani-1x_8x``); torchani itself is never
imported. Install the files with ``pip install --no-deps torchani==2.1.1`` (no dependencies: it must never pull
another torch) or point ``NNFORCE_ANI1X_DIR`` / ``ani1x(path=...)`` at a copy.

The module follows the model contract: ``forward(positions [nm], atomic_numbers, neighbors=None,
shifts=None, box=None) -> energy [kJ/mol]``. Internally ANI works in Angstrom and Hartree; the conversions
are the named constants below. Elements: H, C, N, O; any other atomic number raises an error.

Usage::

    from nnforce.models.ani1x import ani1x
    model = torch.jit.script(ani1x())          # float64 by default; ani1x(dtype=torch.float32) for speed
    energy_kj_mol = model(positions_nm, torch.tensor([6, 1, 1, 1, 1]))

``tests/test_ani1x.py`` checks the methane energy against the published value (``METHANE_PUBLISHED_HARTREE``).
"""
import importlib.util
import os
from typing import List, Optional

import torch
from torch import Tensor

from . import neurochem
from ._geometry import pair_vectors
from ._atomistic import Float64SelfEnergies
from .aev import AEV

ANGSTROM_PER_NM = 10.0
# CODATA 2018: E_h = 4.3597447222071e-18 J, N_A = 6.02214076e23 / mol
HARTREE_IN_KJ_PER_MOL = 4.3597447222071e-18 * 6.02214076e23 / 1000.0  # 2625.4996394799...
TORCHANI_WHEEL = "torchani==2.1.1"
RESOURCE_SUBDIR = os.path.join("resources", "ani-1x_8x")
SYMBOL_TO_Z = {"H": 1, "He": 2, "Li": 3, "Be": 4, "B": 5, "C": 6, "N": 7, "O": 8, "F": 9, "Ne": 10,
               "Na": 11, "Mg": 12, "Al": 13, "Si": 14, "P": 15, "S": 16, "Cl": 17, "Ar": 18}

# methane from torchani's documentation; published ANI-1x energy -40.45901871 Hartree
METHANE_ANGSTROM = [[0.03192167, 0.00638559, 0.01301679], [-0.83140486, 0.39370209, -0.26395324],
                    [-0.66518241, -0.84461308, 0.20759389], [0.45554739, 0.54289633, 0.81170881],
                    [0.66091919, -0.16799635, -0.91037834]]
METHANE_ATOMIC_NUMBERS = [6, 1, 1, 1, 1]
METHANE_PUBLISHED_HARTREE = -40.45901871


class _EnsembleLayer(torch.nn.Module):
    """One dense layer of every ensemble member at once: weight [M, out, in], bias [M, out]."""

    def __init__(self, weight: Tensor, bias: Tensor, activation: int):
        super().__init__()
        self.weight = torch.nn.Parameter(weight)
        self.bias = torch.nn.Parameter(bias)
        self.celu = activation == neurochem.ACTIVATION_CELU

    def forward(self, x: Tensor) -> Tensor:
        # x: [n, in] (first layer, shared input) or [M, n, in]. One mm per member, not a batched matmul: Inductor's
        # CPU bmm lowering (torch 2.13) guards on whether the data-dependent number of atoms is 1 and fails to
        # compile a .pt2 (GuardOnDataDependentSymNode); mm has no such guard.
        outputs: List[Tensor] = []
        for m in range(self.weight.shape[0]):
            rows = x if x.dim() == 2 else x[m]
            outputs.append(torch.mm(rows, self.weight[m].t()) + self.bias[m])
        y = torch.stack(outputs)
        if self.celu:
            y = torch.nn.functional.celu(y, alpha=0.1)
        return y


class _ElementEnsemble(torch.nn.Module):
    """The M networks of one element: AEVs [n, F] -> atomic energies [M, n] (Hartree)."""

    def __init__(self, layers: List[_EnsembleLayer]):
        super().__init__()
        self.layers = torch.nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(-1)


class ANI(Float64SelfEnergies, torch.nn.Module):
    """An ANI ensemble (AEV + one network per element, averaged over members) following the model contract.

    ``forward(positions, atomic_numbers, neighbors=None, shifts=None, box=None)``: positions in nm, energy in
    kJ/mol. Without ``neighbors`` all pairs are formed (minimum image when ``box`` is given, which needs
    box heights >= 2 x 0.52 nm); with the plugin's neighbor list its cutoff must be at least ``cutoff_nm``.
    Parameters are stored in ``dtype``; positions of another dtype are converted. The energy is accumulated
    over atoms, and the self energies added, in float64, and returned as float64.
    """

    elements: List[int]
    cutoff_nm: float

    def __init__(self, ensemble: "neurochem.Ensemble", dtype: torch.dtype = torch.float64,
                 members: Optional[List[int]] = None, include_self_energies: bool = True):
        super().__init__()
        aev = ensemble.aev
        chosen = list(range(len(ensemble.members))) if members is None else list(members)
        if not chosen or any(m < 0 or m >= len(ensemble.members) for m in chosen):
            raise ValueError(f"members must be indices in 0..{len(ensemble.members) - 1}, got {members}")
        unknown = [s for s in aev.symbols if s not in SYMBOL_TO_Z]
        if unknown:
            raise ValueError(f"unknown element symbols in the ensemble: {unknown}")
        self.elements = [SYMBOL_TO_Z[s] for s in aev.symbols]
        self.num_species = len(aev.symbols)
        self.radial_cutoff = float(aev.radial_cutoff)    # Angstrom
        self.angular_cutoff = float(aev.angular_cutoff)  # Angstrom
        self.cutoff_nm = self.radial_cutoff / ANGSTROM_PER_NM
        self.angstrom_per_nm = ANGSTROM_PER_NM  # TorchScript reads constants from attributes
        self.kj_mol_per_hartree = HARTREE_IN_KJ_PER_MOL
        self.num_members = len(chosen)

        def buffer(values):
            return torch.tensor(values, dtype=dtype)

        self.environment = AEV(self.num_species, self.radial_cutoff, self.angular_cutoff, list(aev.radial_eta),
                               list(aev.radial_shifts), list(aev.angular_eta), list(aev.angular_shifts),
                               list(aev.zeta), list(aev.angle_shifts)).to(dtype)
        self.radial_length = len(aev.radial_eta) * len(aev.radial_shifts)
        self.angular_length = self.environment.angular_block
        self.aev_length = self.environment.length

        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(self.elements):
            lookup[z] = index
        self.register_buffer("species_of_z", lookup)
        energies = [ensemble.self_energies_hartree[s] if include_self_energies else 0.0 for s in aev.symbols]
        # float64 whatever dtype is (Float64SelfEnergies): the energy is accumulated in float64
        self.register_buffer("self_energies", torch.tensor(energies, dtype=torch.float64))

        networks = []
        for symbol in aev.symbols:
            nets = [ensemble.members[m][symbol] for m in chosen]
            depth = len(nets[0].layers)
            if any(len(n.layers) != depth or n.input_size != self.aev_length for n in nets):
                raise ValueError(f"the {symbol} networks differ in depth or do not take {self.aev_length} AEV inputs")
            layers = []
            for k in range(depth):
                shapes = {n.layers[k].weight.shape for n in nets}
                activations = {n.layers[k].activation for n in nets}
                if len(shapes) != 1 or len(activations) != 1:
                    raise ValueError(f"the {symbol} networks differ in layer {k + 1}: {shapes}, {activations}")
                weight = torch.stack([torch.from_numpy(n.layers[k].weight.copy()) for n in nets]).to(dtype)
                bias = torch.stack([torch.from_numpy(n.layers[k].bias.copy()) for n in nets]).to(dtype)
                layers.append(_EnsembleLayer(weight, bias, activations.pop()))
            networks.append(_ElementEnsemble(layers))
        self.networks = torch.nn.ModuleList(networks)

    def species(self, atomic_numbers: Tensor) -> Tensor:
        checking = not torch.compiler.is_compiling()  # a compiled .pt2 is checked at export and by the plugin
        if checking and (bool((atomic_numbers < 0).any()) or bool((atomic_numbers > 118).any())):
            raise ValueError("atomic_numbers must lie in 1..118")
        # .long(): a host that casts every buffer to its float dtype (libtorch's Module::to does) must not break us
        species = self.species_of_z.long().index_select(0, atomic_numbers.long())
        if checking and bool((species < 0).any()):
            raise ValueError(f"this ANI model only knows the elements with atomic numbers {self.elements}")
        return species

    def aev(self, positions: Tensor, species: Tensor, neighbors: Optional[Tensor] = None,
            shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        """Atomic environment vectors [N, aev_length] (positions in nm, computed in Angstrom by
        :class:`nnforce.models.aev.AEV`, the implementation the ANI-style model uses too)."""
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        return self.environment(species, i, j, vectors * self.angstrom_per_nm)

    def energy_hartree(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                       shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        """Ensemble-mean energy in Hartree (positions in nm): networks in the parameters' dtype, the sum over atoms
        and the self energies in float64."""
        dtype = self.environment.radial_shifts.dtype
        positions = positions.to(dtype)
        if box is not None:
            box = box.to(dtype)
        if shifts is not None:
            shifts = shifts.to(dtype)
        if positions.dim() != 2 or positions.shape[1] != 3:
            raise ValueError("positions must have shape [N, 3]")
        if atomic_numbers.shape[0] != positions.shape[0]:
            raise ValueError("atomic_numbers must give one atomic number per atom")
        species = self.species(atomic_numbers)
        features = self.aev(positions, species, neighbors, shifts, box)
        energy = self.self_energies.index_select(0, species).sum()
        for index, network in enumerate(self.networks):
            atoms = torch.nonzero(species == index).flatten()
            # skip absent elements (TorchScript's backward fails on empty matmuls); no value branch when traced
            if torch.compiler.is_compiling() or atoms.numel() > 0:
                energy = energy + network(features.index_select(0, atoms)).to(torch.float64).sum() / self.num_members
        return energy

    def forward(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        energy = self.energy_hartree(positions, atomic_numbers, neighbors, shifts, box)
        return energy * self.kj_mol_per_hartree  # float64: accumulated in float64 (see energy_hartree)


def resource_directory(path=None):
    """Where the ANI-1x NeuroChem files are: ``path``, ``$NNFORCE_ANI1X_DIR``, or the installed torchani wheel."""
    if path is not None:
        candidate = os.fspath(path)
    elif os.environ.get("NNFORCE_ANI1X_DIR"):
        candidate = os.environ["NNFORCE_ANI1X_DIR"]
    else:
        spec = importlib.util.find_spec("torchani")  # locates the package without importing it
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "the ANI-1x parameter files come from the torchani 2.1.1 wheel, which is not installed. Install "
                f"them with `pip install --no-deps {TORCHANI_WHEEL}` (no dependencies: it must not pull another torch) "
                "or set NNFORCE_ANI1X_DIR to a NeuroChem ani-1x_8x directory.")
        candidate = os.path.join(list(spec.submodule_search_locations)[0], RESOURCE_SUBDIR)
    if not os.path.isdir(candidate):
        raise FileNotFoundError(
            f"ANI-1x NeuroChem directory not found: {candidate}. The files ship in the {TORCHANI_WHEEL} wheel "
            "(later torchani versions download them at run time instead): run `pip install --no-deps "
            f"{TORCHANI_WHEEL}`, or set NNFORCE_ANI1X_DIR.")
    return candidate


_ENSEMBLE_CACHE = {}


def load_ensemble(path=None) -> "neurochem.Ensemble":
    """Parse the ANI-1x NeuroChem files once per process (they do not change while it runs)."""
    directory = os.path.abspath(resource_directory(path))
    if directory not in _ENSEMBLE_CACHE:
        _ENSEMBLE_CACHE[directory] = neurochem.read_ensemble(directory, size=8)
    return _ENSEMBLE_CACHE[directory]


def ani1x(path=None, dtype: torch.dtype = torch.float64, members: Optional[List[int]] = None,
          include_self_energies: bool = True) -> ANI:
    """The ANI-1x ensemble (8 networks; ``members=[k]`` picks single ones) as an eager ``ANI`` module.

    ``torch.jit.script(ani1x())`` gives the TorchScript model for NNForce. Elements H, C, N, O.
    """
    return ANI(load_ensemble(path), dtype=dtype, members=members, include_self_energies=include_self_energies)
