"""The published ANI-1x potential (Smith et al., J. Chem. Phys. 148, 241733 (2018)) as a TorchScript model.

The 8-network ensemble is read with our own NeuroChem reader (:mod:`nnforce.models.neurochem`) from the files
shipped inside the ``torchani==2.1.1`` wheel (``torchani/resources/ani-1x_8x``); torchani itself is never
imported. Install the files with ``python -m nnforce.models.ani1x --fetch`` (which runs
``pip install --no-deps torchani==2.1.1``) or point ``NNFORCE_ANI1X_DIR`` / ``ani1x(path=...)`` at a copy.

The module follows the model contract: ``forward(positions [nm], atomic_numbers, neighbors=None,
shifts=None, box=None) -> energy [kJ/mol]``. Internally ANI works in Angstrom and Hartree; the conversions
are the named constants below. Elements: H, C, N, O; any other atomic number raises an error.

Usage::

    from nnforce.models.ani1x import ani1x
    model = torch.jit.script(ani1x())          # float64 by default; ani1x(dtype=torch.float32) for speed
    energy_kj_mol = model(positions_nm, torch.tensor([6, 1, 1, 1, 1]))

Run ``python -m nnforce.models.ani1x --check`` to print the methane energy next to the published value.
"""
import argparse
import importlib.util
import os
import subprocess
import sys
from typing import List, Optional

import torch
from torch import Tensor

from . import neurochem
from ._geometry import pair_vectors

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
        # x: [n, in] (first layer, shared input) or [M, n, in]
        y = torch.matmul(x, self.weight.transpose(1, 2)) + self.bias.unsqueeze(1)
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


class ANI(torch.nn.Module):
    """An ANI ensemble (AEV + one network per element, averaged over members) following the model contract.

    ``forward(positions, atomic_numbers, neighbors=None, shifts=None, box=None)``: positions in nm, energy in
    kJ/mol. Without ``neighbors`` all pairs are formed (minimum image when ``box`` is given, which needs
    box heights >= 2 x 0.52 nm); with the plugin's neighbor list its cutoff must be at least ``cutoff_nm``.
    Parameters are stored in ``dtype``; positions of another dtype are converted and the energy is returned
    in the positions' dtype.
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

        self.register_buffer("radial_eta", buffer(aev.radial_eta))
        self.register_buffer("radial_shifts", buffer(aev.radial_shifts))
        self.register_buffer("zeta", buffer(aev.zeta))
        self.register_buffer("angle_shifts", buffer(aev.angle_shifts))
        self.register_buffer("angular_eta", buffer(aev.angular_eta))
        self.register_buffer("angular_shifts", buffer(aev.angular_shifts))
        self.radial_length = len(aev.radial_eta) * len(aev.radial_shifts)
        self.angular_length = len(aev.angular_eta) * len(aev.zeta) * len(aev.angular_shifts) * len(aev.angle_shifts)
        num_pairs = self.num_species * (self.num_species + 1) // 2
        self.aev_length = self.num_species * self.radial_length + num_pairs * self.angular_length

        lookup = torch.full((119,), -1, dtype=torch.long)
        for index, z in enumerate(self.elements):
            lookup[z] = index
        self.register_buffer("species_of_z", lookup)
        # species pair (a, b), a <= b, in row-major upper-triangle order -> angular block index
        pair_index = torch.zeros(self.num_species, self.num_species, dtype=torch.long)
        block = 0
        for a in range(self.num_species):
            for b in range(a, self.num_species):
                pair_index[a, b] = block
                pair_index[b, a] = block
                block += 1
        self.register_buffer("pair_index", pair_index)
        energies = [ensemble.self_energies_hartree[s] if include_self_energies else 0.0 for s in aev.symbols]
        self.register_buffer("self_energies", torch.tensor(energies, dtype=dtype))

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
        if bool((atomic_numbers < 0).any()) or bool((atomic_numbers > 118).any()):
            raise ValueError("atomic_numbers must lie in 1..118")
        # .long(): a host that casts every buffer to its float dtype (libtorch's Module::to does) must not break us
        species = self.species_of_z.long().index_select(0, atomic_numbers.long())
        if bool((species < 0).any()):
            raise ValueError(f"this ANI model only knows the elements with atomic numbers {self.elements}")
        return species

    def aev(self, positions: Tensor, species: Tensor, neighbors: Optional[Tensor] = None,
            shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        """Atomic environment vectors [N, aev_length] (positions in nm, computed in Angstrom)."""
        n = positions.shape[0]
        i, j, vectors = pair_vectors(positions, neighbors, shifts, box)
        vectors = vectors * self.angstrom_per_nm
        r2 = (vectors * vectors).sum(dim=1)
        keep = torch.nonzero(r2 < self.radial_cutoff * self.radial_cutoff).flatten()
        i = i.index_select(0, keep)
        j = j.index_select(0, keep)
        vectors = vectors.index_select(0, keep)
        distances = torch.sqrt(r2.index_select(0, keep))

        # radial part: 0.25 exp(-eta (r - shift)^2) fc(r), channel = the neighbour's species
        fc = 0.5 * torch.cos(distances * (torch.pi / self.radial_cutoff)) + 0.5
        radial = 0.25 * torch.exp(-self.radial_eta.view(1, -1, 1)
                                  * (distances.view(-1, 1, 1) - self.radial_shifts.view(1, 1, -1)) ** 2)
        radial = (radial * fc.view(-1, 1, 1)).reshape(-1, self.radial_length)
        width = self.num_species * self.radial_length
        columns = torch.arange(self.radial_length, device=positions.device)
        radial_aev = torch.zeros(n * width, dtype=positions.dtype, device=positions.device)
        rows_i = i.unsqueeze(1) * width + (species.index_select(0, j) * self.radial_length).unsqueeze(1) + columns
        rows_j = j.unsqueeze(1) * width + (species.index_select(0, i) * self.radial_length).unsqueeze(1) + columns
        radial_aev = radial_aev.index_add(0, rows_i.reshape(-1), radial.reshape(-1))
        radial_aev = radial_aev.index_add(0, rows_j.reshape(-1), radial.reshape(-1)).view(n, width)

        # angular part: every unordered pair (j, k) of neighbours of a centre within the angular cutoff
        close = torch.nonzero(distances < self.angular_cutoff).flatten()
        centre = torch.cat([i.index_select(0, close), j.index_select(0, close)])
        other = torch.cat([j.index_select(0, close), i.index_select(0, close)])
        close_vectors = vectors.index_select(0, close)
        directed = torch.cat([close_vectors, -close_vectors])
        directed_r = torch.cat([distances.index_select(0, close), distances.index_select(0, close)])
        num_pairs = self.num_species * (self.num_species + 1) // 2
        angular_width = num_pairs * self.angular_length
        angular_aev = torch.zeros(n * angular_width, dtype=positions.dtype, device=positions.device)
        if centre.numel() > 0:
            order = torch.argsort(centre, stable=True)
            sorted_centre = centre.index_select(0, order)
            counts = torch.bincount(sorted_centre, minlength=n)
            starts = torch.cumsum(counts, 0) - counts
            rank = torch.arange(sorted_centre.numel(), device=positions.device) - starts.index_select(0, sorted_centre)
            most = int(counts.max())
            table = torch.full((n * most,), -1, dtype=torch.long, device=positions.device)
            table = table.index_put((sorted_centre * most + rank,), order).view(n, most)
            ab = torch.triu_indices(most, most, 1, device=positions.device)
            first = table.index_select(1, ab[0]).reshape(-1)
            second = table.index_select(1, ab[1]).reshape(-1)
            valid = torch.nonzero((first >= 0) & (second >= 0)).flatten()
            first = first.index_select(0, valid)
            second = second.index_select(0, valid)
            v1 = directed.index_select(0, first)
            v2 = directed.index_select(0, second)
            r1 = directed_r.index_select(0, first)
            r2_ = directed_r.index_select(0, second)
            cosines = (v1 * v2).sum(dim=1) / (r1 * r2_)
            angles = torch.acos(0.95 * cosines)  # the 0.95 keeps acos away from its singular ends
            fc1 = 0.5 * torch.cos(r1 * (torch.pi / self.angular_cutoff)) + 0.5
            fc2 = 0.5 * torch.cos(r2_ * (torch.pi / self.angular_cutoff)) + 0.5
            # [T, Zeta, ShfZ] and [T, EtaA, ShfA]
            angle_term = ((1.0 + torch.cos(angles.view(-1, 1, 1) - self.angle_shifts.view(1, 1, -1))) * 0.5) \
                ** self.zeta.view(1, -1, 1)
            radius_term = torch.exp(-self.angular_eta.view(1, -1, 1) * (
                (0.5 * (r1 + r2_)).view(-1, 1, 1) - self.angular_shifts.view(1, 1, -1)) ** 2)
            terms = 2.0 * radius_term.unsqueeze(2).unsqueeze(4) * angle_term.unsqueeze(1).unsqueeze(3)
            terms = terms.reshape(-1, self.angular_length) * (fc1 * fc2).unsqueeze(1)
            owner = centre.index_select(0, first)
            block = self.pair_index.long()[species.index_select(0, other.index_select(0, first)),
                                    species.index_select(0, other.index_select(0, second))]
            columns = torch.arange(self.angular_length, device=positions.device)
            rows = (owner * angular_width + block * self.angular_length).unsqueeze(1) + columns
            angular_aev = angular_aev.index_add(0, rows.reshape(-1), terms.reshape(-1))
        return torch.cat([radial_aev, angular_aev.view(n, angular_width)], dim=1)

    def energy_hartree(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                       shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        """Ensemble-mean energy in Hartree, in the parameters' dtype (positions in nm)."""
        dtype = self.self_energies.dtype
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
            if atoms.numel() > 0:
                energy = energy + network(features.index_select(0, atoms)).sum() / self.num_members
        return energy

    def forward(self, positions: Tensor, atomic_numbers: Tensor, neighbors: Optional[Tensor] = None,
                shifts: Optional[Tensor] = None, box: Optional[Tensor] = None) -> Tensor:
        energy = self.energy_hartree(positions, atomic_numbers, neighbors, shifts, box)
        return (energy * self.kj_mol_per_hartree).to(positions.dtype)


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
                f"them with `python -m nnforce.models.ani1x --fetch` (= pip install --no-deps {TORCHANI_WHEEL}) "
                "or set NNFORCE_ANI1X_DIR to a NeuroChem ani-1x_8x directory.")
        candidate = os.path.join(list(spec.submodule_search_locations)[0], RESOURCE_SUBDIR)
    if not os.path.isdir(candidate):
        raise FileNotFoundError(
            f"ANI-1x NeuroChem directory not found: {candidate}. The files ship in the {TORCHANI_WHEEL} wheel "
            "(later torchani versions download them at run time instead): run `python -m nnforce.models.ani1x "
            "--fetch`, or set NNFORCE_ANI1X_DIR.")
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


def fetch():
    """Install the torchani 2.1.1 wheel without its dependencies (it must never pull another torch)."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", TORCHANI_WHEEL]
    print("+", " ".join(command), flush=True)
    subprocess.run(command, check=True)
    importlib.invalidate_caches()
    return resource_directory()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m nnforce.models.ani1x",
        description="Set up and check the ANI-1x parameter files (read from the torchani 2.1.1 wheel).",
        epilog="example: python -m nnforce.models.ani1x --fetch --check")
    parser.add_argument("--fetch", action="store_true",
                        help=f"pip install --no-deps {TORCHANI_WHEEL} if its files are missing")
    parser.add_argument("--check", action="store_true", help="print the methane energy next to the published one")
    args = parser.parse_args(argv)
    if args.fetch:
        try:
            print("ANI-1x files:", resource_directory())
        except FileNotFoundError:
            print("ANI-1x files:", fetch())
    if args.check or not args.fetch:
        model = ani1x()
        positions = torch.tensor(METHANE_ANGSTROM, dtype=torch.float64) / ANGSTROM_PER_NM
        energy = model.energy_hartree(positions, torch.tensor(METHANE_ATOMIC_NUMBERS)).item()
        print(f"methane: {energy:.8f} Ha (published {METHANE_PUBLISHED_HARTREE:.8f}, "
              f"difference {energy - METHANE_PUBLISHED_HARTREE:+.2e} Ha)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
