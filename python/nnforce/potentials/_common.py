"""What every potential adapter shares: unit constants, the directed edge list, element and input checks.

Units: the model contract is nm and kJ/mol; the families work in Angstrom and eV (MACE, NequIP, TorchMD-Net's
usual datasets) or Angstrom and Hartree (ANI). Every conversion is a named constant of :mod:`nnforce.units`.
"""
import contextlib
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..models._geometry import minimum_image
from ..units import ANGSTROM_PER_NM, KJ_MOL_PER_EV, KJ_MOL_PER_HARTREE  # noqa: F401 - the one place of constants


def directed_edges(i: Tensor, j: Tensor, vectors: Tensor, offsets: Tensor,
                   cutoff: float) -> Tuple[Tensor, Tensor, Tensor]:
    """Both directions of every pair closer than ``cutoff`` (same length unit as ``vectors``).

    ``vectors[p] = x[j[p]] - x[i[p]] + offsets[p]``. Returns ``(sender, receiver, edge_offsets)`` for the
    message-passing convention ``r = x[receiver] - x[sender] + edge_offsets`` (the reverse edge carries the
    negated offset). Pairs at or beyond ``cutoff`` (including the far-away padding of a fixed-capacity neighbor
    list) are dropped, matching the families' own neighbor lists (pairs strictly inside the cutoff).
    """
    r2 = (vectors * vectors).sum(dim=1)
    keep = torch.nonzero(r2 < cutoff * cutoff).flatten()
    i = i.index_select(0, keep)
    j = j.index_select(0, keep)
    kept = offsets.index_select(0, keep)
    return torch.cat([i, j]), torch.cat([j, i]), torch.cat([kept, -kept])


def pairs_with_offsets(positions: Tensor, neighbors: Optional[Tensor], shifts: Optional[Tensor],
                       box: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(i, j, vectors, offsets)`` from the plugin's neighbor list, or all pairs (minimum image with a box).

    The offsets are constants (no gradient): the neighbor list's shifts, or the minimum-image lattice vectors.
    """
    n = positions.shape[0]
    if neighbors is None:
        ij = torch.triu_indices(n, n, 1, device=positions.device)
        i = ij[0]
        j = ij[1]
        offsets = torch.zeros((i.shape[0], 3), dtype=positions.dtype, device=positions.device)
        if box is not None:
            raw = (positions.index_select(0, j) - positions.index_select(0, i)).detach()
            offsets = minimum_image(raw, box.to(positions.dtype)) - raw
    else:
        i = neighbors[0]
        j = neighbors[1]
        if shifts is None:
            offsets = torch.zeros((i.shape[0], 3), dtype=positions.dtype, device=positions.device)
        else:
            offsets = shifts.to(positions.dtype)
    vectors = positions.index_select(0, j) - positions.index_select(0, i) + offsets
    return i, j, vectors, offsets


def check_elements(atomic_numbers, known, family):
    """Raise a ValueError naming the elements a model does not know (before any Context is made)."""
    known = sorted(int(z) for z in known)
    unknown = sorted({int(z) for z in atomic_numbers} - set(known))
    if unknown:
        from openmm.app import Element

        def name(z):
            try:
                return Element.getByAtomicNumber(z).symbol
            except KeyError:
                return str(z)

        raise ValueError(
            f"the {family} model does not know the element(s) {', '.join(name(z) for z in unknown)} "
            f"(atomic numbers {unknown}); it was trained for {', '.join(name(z) for z in known)}. "
            "Use a model trained for these elements, or keep those atoms out of the ML region.")


def precision_dtype(precision):
    """openmm-ml's ``precision`` argument (None, 'single', 'double') as the model's dtype (None keeps it)."""
    if precision is None:
        return None
    if precision == "single":
        return torch.float32
    if precision == "double":
        return torch.float64
    raise ValueError(f"precision must be 'single', 'double' or None, got {precision!r}")


@contextlib.contextmanager
def builtin_torch_functions():
    """Script with torch's own ``index_select``/``select``.

    torch_geometric (imported by TorchMD-Net) replaces ``torch.index_select`` and ``torch.select`` with Python
    wrappers for its HashTensor; TorchScript then fails to compile any model that calls them (nequip's does:
    "Expected a value of type 'int' for argument 'dim' but instead found type 'str'"). The builtins are put back
    while scripting and the wrappers restored afterwards.
    """
    saved = {name: getattr(torch, name) for name in ("index_select", "select")}
    try:
        for name in saved:
            setattr(torch, name, getattr(torch._C._VariableFunctions, name))
        yield
    finally:
        for name, function in saved.items():
            setattr(torch, name, function)
