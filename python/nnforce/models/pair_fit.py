"""Old home of :class:`PairPotential`, now in :mod:`nnforce.models.pair` beside ``LennardJones``; kept so that
``from nnforce.models.pair_fit import PairPotential`` still works."""
from .pair import PairPotential  # noqa: F401

__all__ = ["PairPotential"]
