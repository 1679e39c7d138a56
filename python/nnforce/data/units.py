"""Unit conversions for readers: kept for old imports; everything now lives in :mod:`nnforce.units`."""
from ..units import (ENERGY_TO_KJ_MOL, KCAL_MOL_A_PER_KJ_MOL_NM, KCAL_MOL_PER_KJ_MOL, KJ_MOL_PER_EV,  # noqa: F401
                     KJ_MOL_PER_HARTREE, KJ_PER_KCAL, LENGTH_TO_NM, MEV_A_PER_KJ_MOL_NM, MEV_PER_KJ_MOL, NM_PER_ANGSTROM,
                     NM_PER_BOHR, energy_factor, force_factor, length_factor)
