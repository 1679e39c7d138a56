"""A committee (query-by-committee) wrapper: an ANI-style ensemble whose ``forward`` returns a
``Dict[str, Tensor]`` with the members' mean energy and their spread, which NNForce exposes through
``NNForce.getOutput(context, "uncertainty")`` after every evaluation (no second model call).

Outputs (kJ/mol; NNForce takes the forces from the gradient of ``"energy"``):

* ``"energy"``: the mean of the members' energies (the same number as the wrapped model's ``forward``);
* ``"uncertainty"``: the population standard deviation of the members' energies, ``sqrt(mean((E_m - E)^2))``;
* ``"member_energies"``: ``[M]``, each member's energy.

The spread of the members' *forces* would need one backward pass per member inside ``forward``; it is not
computed (the energy spread is the committee disagreement the active-learning loop selects frames with).
Export-friendly: no Python control flow on tensor values.
"""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from .ani import ANIModel, ani_ensemble


class Committee(torch.nn.Module):
    """Wrap an :class:`ANIModel` with ``ensemble_size >= 2`` (or merge several with :func:`ani_ensemble`).

    Parameters
    ----------
    model : ANIModel or list of ANIModel
        The ensemble, or trained members (same elements and AEV) merged with :func:`ani_ensemble`.

    Raises
    ------
    ValueError
        If the ensemble has fewer than two members (no spread to measure).

    Examples
    --------
    >>> from nnforce.models import ANIModel
    >>> committee = Committee(ANIModel(elements=[1, 8], hidden=[8], ensemble_size=3))
    >>> import torch
    >>> out = committee(torch.rand(3, 3) * 0.2, torch.tensor([8, 1, 1]))
    >>> sorted(out)
    ['energy', 'member_energies', 'uncertainty']
    """

    def __init__(self, model):
        super().__init__()
        if isinstance(model, (list, tuple)):
            model = ani_ensemble(list(model))
        if not isinstance(model, ANIModel):
            raise ValueError(f"Committee wraps an ANIModel ensemble, not {type(model).__name__}")
        if len(model.members) < 2:
            raise ValueError(f"a committee needs at least two members; this model has {len(model.members)} "
                             "(train with ensemble_size >= 2 or merge models with ani_ensemble)")
        self.model = model
        self.elements: List[int] = list(model.elements)
        self.cutoff = float(model.cutoff)

    def forward(self, positions: Tensor, atomic_numbers: Optional[Tensor] = None,
                neighbors: Optional[Tensor] = None, shifts: Optional[Tensor] = None,
                box: Optional[Tensor] = None) -> Dict[str, Tensor]:
        dtype = positions.dtype
        members = self.model.member_energies(positions, atomic_numbers, neighbors, shifts, box)
        energy = members.mean()
        deviation = members - energy
        spread = torch.sqrt((deviation * deviation).mean())
        return {"energy": energy.to(dtype), "uncertainty": spread.to(dtype), "member_energies": members.to(dtype)}
