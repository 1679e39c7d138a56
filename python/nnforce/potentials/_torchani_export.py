"""Export-friendly stand-ins for the four torchani 2.1.1 functions that stop ``torch.export`` (the ``.pt2`` path).

torchani's ANI chain computes the same numbers with these; they differ only in how data-dependent sizes are handled,
which a symbolic trace (``make_fx(tracing_mode="symbolic")``, then ``torch.export``) cannot follow in torchani's code:

- ``torchani.aev.triple_by_molecule`` reads the largest neighbour count with ``.item()`` and builds the triplets
  from ``torch.tril_indices(m, m)`` of it, after a ``counts.numel() > 0`` test ("Could not guard on
  data-dependent expression u2 > 0 ... (torchani/aev.py:243 in triple_by_molecule)"). Here each directed pair is
  repeated once for every later pair of the same central atom (``repeat_interleave`` of counts from
  ``searchsorted``), which lists the same unordered pairs of neighbours (in another order; the AEV sums them).
- ``torchani.nn.ANIModel.forward`` skips a species' network when no atom has that species (``if midx.shape[0] >
  0``, a data-dependent branch: torchani/nn.py:66). Here every network runs, on zero rows when its species is absent,
  and the atomic energies are placed with ``index_add``.
- ``torchani.aev.neighbor_pairs_nopbc`` enumerates candidate pairs with ``torch.triu_indices(N, N, 1)``, which
  fixes the atom count N in the trace ("You marked atoms as dynamic but your code specialized it to be a constant").
  Here the same pairs (i < j within the cutoff, padding excluded) come from a comparison of ``arange(N)`` with itself.
- ``torchani.aev.angular_terms`` multiplies the two cutoff factors with ``prod(0)``, whose backward tests for zero
  elements (``Eq(2*u2, 0)`` in ``prod_safe_zeros_backward``). Here the two factors are multiplied directly.

:func:`exportable_torchani` swaps them in for the duration of a call (the eager module the ``.pt2`` compiler traces);
TorchScript modules are scripted from torchani's own functions and never see these.
"""
import contextlib

import torch
from torch import Tensor


def triple_by_molecule(atom_index12: Tensor):
    """``(central atom, the two pair indices, their signs)`` for every two pairs that share an atom (torchani's
    output convention: pair index ``p`` as stored, sign +1 when the central atom is the pair's first atom)."""
    flat = atom_index12.reshape(-1)
    ordered, origin = flat.sort(stable=True)
    rank = torch.arange(flat.shape[0], device=flat.device)
    later = torch.searchsorted(ordered, ordered, right=True) - rank - 1  # same-centre entries after this one
    first = torch.repeat_interleave(rank, later)
    start = torch.cumsum(later, 0) - later
    second = first + 1 + (torch.arange(first.shape[0], device=flat.device) - start.index_select(0, first))
    both = origin[torch.stack([first, second])]
    pairs = atom_index12.shape[1]
    sign = (both < pairs).to(torch.int8) * 2 - 1
    return ordered.index_select(0, first), both % pairs, sign


def neighbor_pairs_nopbc(padding_mask: Tensor, coordinates: Tensor, cutoff: float) -> Tensor:
    """``[2, P]`` indices (into the flattened molecules x atoms) of the pairs i < j of one molecule within ``cutoff``."""
    coordinates = coordinates.detach()
    molecules, atoms = padding_mask.shape
    index = torch.arange(atoms, device=coordinates.device)
    distances = (coordinates.unsqueeze(2) - coordinates.unsqueeze(1)).norm(2, -1)  # [M, N, N]
    real = ~padding_mask
    keep = (index.unsqueeze(1) < index.unsqueeze(0)).unsqueeze(0) & (distances <= cutoff) \
        & real.unsqueeze(2) & real.unsqueeze(1)
    found = keep.nonzero()  # rows (molecule, i, j), in torchani's order: molecule, then i, then j
    return found[:, 1:].t() + (found[:, 0] * atoms).unsqueeze(0)


def angular_terms(Rca: float, ShfZ: Tensor, EtaA: Tensor, Zeta: Tensor, ShfA: Tensor, vectors12: Tensor) -> Tensor:
    """ANI's angular AEV terms (equation 4 of the ANI paper) for each pair of neighbour vectors ``vectors12[0/1]``."""
    from torchani.aev import cutoff_cosine

    a, b = vectors12[0], vectors12[1]
    ra, rb = a.norm(2, dim=-1), b.norm(2, dim=-1)
    angle = torch.acos(0.95 * torch.nn.functional.cosine_similarity(a, b, dim=-1))  # 0.95 as torchani: no NaN
    column = (-1, 1, 1, 1, 1)  # broadcast against the constants' four trailing dimensions
    angular = ((1 + torch.cos(angle.view(column) - ShfZ)) / 2) ** Zeta
    radial = torch.exp(-EtaA * ((ra + rb).view(column) / 2 - ShfA) ** 2)
    cutoff = (cutoff_cosine(ra, Rca) * cutoff_cosine(rb, Rca)).view(column)
    return (2 * angular * radial * cutoff).flatten(start_dim=-4)


def ani_model_forward(self, species_aev, cell=None, pbc=None):
    """``torchani.nn.ANIModel.forward`` without the data-dependent skip of absent species."""
    from torchani.nn import SpeciesEnergies

    species, aev = species_aev
    flat_species = species.flatten()
    aev = aev.flatten(0, 1)
    atomic = aev.new_zeros(flat_species.shape)
    for index, (_, network) in enumerate(self.items()):
        rows = (flat_species == index).nonzero().flatten()
        atomic = atomic.index_add(0, rows, network(aev.index_select(0, rows)).flatten())
    return SpeciesEnergies(species, atomic.view_as(species).sum(dim=1))


@contextlib.contextmanager
def exportable_torchani():
    """Run torchani with the stand-ins above (restored afterwards)."""
    import torchani.aev
    import torchani.nn

    replaced = {(torchani.aev, "triple_by_molecule"): triple_by_molecule,
                (torchani.aev, "neighbor_pairs_nopbc"): neighbor_pairs_nopbc,
                (torchani.aev, "angular_terms"): angular_terms, (torchani.nn.ANIModel, "forward"): ani_model_forward}
    saved = {key: getattr(*key) for key in replaced}
    try:
        for (owner, name), function in replaced.items():
            setattr(owner, name, function)
        yield
    finally:
        for (owner, name), function in saved.items():
            setattr(owner, name, function)
