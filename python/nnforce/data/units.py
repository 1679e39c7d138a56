"""Named unit conversions into OpenMM units (nm, kJ/mol). Readers take units explicitly and convert once."""

KJ_PER_KCAL = 4.184
KJ_MOL_PER_EV = 96.48533212331  # 1 eV per particle in kJ/mol (CODATA 2018, N_A e / 1000)
KJ_MOL_PER_HARTREE = 2625.4996394799  # CODATA 2018
NM_PER_ANGSTROM = 0.1
NM_PER_BOHR = 0.0529177210903

ENERGY_TO_KJ_MOL = {
    "kj/mol": 1.0,
    "kcal/mol": KJ_PER_KCAL,
    "ev": KJ_MOL_PER_EV,
    "mev": KJ_MOL_PER_EV / 1000.0,
    "hartree": KJ_MOL_PER_HARTREE,
}
LENGTH_TO_NM = {
    "nm": 1.0,
    "angstrom": NM_PER_ANGSTROM,
    "a": NM_PER_ANGSTROM,
    "bohr": NM_PER_BOHR,
}

# report units
KCAL_MOL_PER_KJ_MOL = 1.0 / KJ_PER_KCAL
MEV_PER_KJ_MOL = 1000.0 / KJ_MOL_PER_EV
KCAL_MOL_A_PER_KJ_MOL_NM = NM_PER_ANGSTROM / KJ_PER_KCAL  # (kJ/mol/nm) -> (kcal/mol/Angstrom)
MEV_A_PER_KJ_MOL_NM = MEV_PER_KJ_MOL * NM_PER_ANGSTROM  # (kJ/mol/nm) -> (meV/Angstrom)


def energy_factor(unit):
    """Factor that turns an energy in ``unit`` into kJ/mol (ValueError for an unknown unit)."""
    key = str(unit).strip().lower().replace(" ", "")
    if key not in ENERGY_TO_KJ_MOL:
        raise ValueError(f"unknown energy unit {unit!r}; use one of {sorted(ENERGY_TO_KJ_MOL)}")
    return ENERGY_TO_KJ_MOL[key]


def length_factor(unit):
    """Factor that turns a length in ``unit`` into nm (ValueError for an unknown unit)."""
    key = str(unit).strip().lower().replace(" ", "").replace("å", "angstrom")
    if key not in LENGTH_TO_NM:
        raise ValueError(f"unknown length unit {unit!r}; use one of {sorted(LENGTH_TO_NM)}")
    return LENGTH_TO_NM[key]


def force_factor(energy_unit, length_unit):
    """Factor that turns a force in energy_unit/length_unit into kJ/mol/nm."""
    return energy_factor(energy_unit) / length_factor(length_unit)
