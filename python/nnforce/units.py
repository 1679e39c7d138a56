"""Every physical constant and unit conversion of nnforce, in one place.

nnforce speaks OpenMM's units at every boundary: nm, ps, kJ/mol, kJ/mol/nm, K. Data in other units is converted
once, on read, with the named factors below; reports convert back with the ``*_PER_KJ_MOL`` factors.
Constants are CODATA 2018 (the values OpenMM 8 uses).

Examples
--------
>>> from nnforce import units
>>> round(2.0 * units.KJ_PER_KCAL, 3)
8.368
>>> units.energy_factor("eV") == units.KJ_MOL_PER_EV
True
"""
# --- energies -------------------------------------------------------------------------------------------
KJ_PER_KCAL = 4.184  # thermochemical calorie
KJ_MOL_PER_EV = 96.48533212331  # 1 eV per particle in kJ/mol (CODATA 2018, N_A e / 1000)
KJ_MOL_PER_HARTREE = 2625.4996394799  # CODATA 2018 (E_h N_A / 1000)
KCAL_MOL_PER_KJ_MOL = 1.0 / KJ_PER_KCAL
MEV_PER_KJ_MOL = 1000.0 / KJ_MOL_PER_EV
HARTREE_PER_KJ_MOL = 1.0 / KJ_MOL_PER_HARTREE

# --- lengths --------------------------------------------------------------------------------------------
NM_PER_ANGSTROM = 0.1
ANGSTROM_PER_NM = 10.0
NM_PER_BOHR = 0.0529177210903  # CODATA 2018 Bohr radius

# --- forces ---------------------------------------------------------------------------------------------
KCAL_MOL_A_PER_KJ_MOL_NM = NM_PER_ANGSTROM / KJ_PER_KCAL  # (kJ/mol/nm) -> (kcal/mol/Angstrom)
MEV_A_PER_KJ_MOL_NM = MEV_PER_KJ_MOL * NM_PER_ANGSTROM  # (kJ/mol/nm) -> (meV/Angstrom)
KJ_MOL_NM_PER_EV_A = KJ_MOL_PER_EV / NM_PER_ANGSTROM  # (eV/Angstrom, ASE's force unit) -> (kJ/mol/nm)
KJ_MOL_NM_PER_HARTREE_BOHR = KJ_MOL_PER_HARTREE / NM_PER_BOHR  # (Hartree/Bohr) -> (kJ/mol/nm)

# --- thermal and electrostatic --------------------------------------------------------------------------
MOLAR_GAS_CONSTANT_KJ_MOL_K = 0.00831446261815324  # R = k_B N_A (CODATA 2018, exact), kJ/(mol K); as OpenMM
KB_KJ_MOL_K = MOLAR_GAS_CONSTANT_KJ_MOL_K  # Boltzmann constant per mole: kT in kJ/mol is KB_KJ_MOL_K * T
COULOMB_KJ_MOL_NM = 138.93545764438198  # 1 / (4 pi eps0) in kJ mol^-1 nm e^-2, the value OpenMM uses

# --- time -----------------------------------------------------------------------------------------------
FS_PER_PS = 1000.0
PS_PER_NS = 1000.0
SECONDS_PER_DAY = 86400.0

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


def energy_factor(unit):
    """The factor that turns an energy in ``unit`` into kJ/mol.

    Parameters
    ----------
    unit : str
        One of ``kJ/mol``, ``kcal/mol``, ``eV``, ``meV``, ``hartree`` (case and spaces ignored).

    Returns
    -------
    float
        Multiply values in ``unit`` by this to get kJ/mol.

    Raises
    ------
    ValueError
        For an unknown unit (the message lists the known ones).

    Examples
    --------
    >>> energy_factor("kcal/mol")
    4.184
    """
    key = str(unit).strip().lower().replace(" ", "")
    if key not in ENERGY_TO_KJ_MOL:
        raise ValueError(f"unknown energy unit {unit!r}; use one of {sorted(ENERGY_TO_KJ_MOL)}")
    return ENERGY_TO_KJ_MOL[key]


def length_factor(unit):
    """The factor that turns a length in ``unit`` into nm.

    Parameters
    ----------
    unit : str
        One of ``nm``, ``angstrom`` (or ``A``, ``Å``), ``bohr``.

    Returns
    -------
    float
        Multiply values in ``unit`` by this to get nm.

    Examples
    --------
    >>> length_factor("angstrom")
    0.1
    """
    key = str(unit).strip().lower().replace(" ", "").replace("å", "angstrom")
    if key not in LENGTH_TO_NM:
        raise ValueError(f"unknown length unit {unit!r}; use one of {sorted(LENGTH_TO_NM)}")
    return LENGTH_TO_NM[key]


def force_factor(energy_unit, length_unit):
    """The factor that turns a force in ``energy_unit``/``length_unit`` into kJ/mol/nm.

    Parameters
    ----------
    energy_unit, length_unit : str
        As for :func:`energy_factor` and :func:`length_factor`.

    Returns
    -------
    float

    Examples
    --------
    >>> round(force_factor("eV", "angstrom"), 6)
    964.853321
    """
    return energy_factor(energy_unit) / length_factor(length_unit)


def kt_kj_mol(temperature_k):
    """Thermal energy kT in kJ/mol at ``temperature_k`` kelvin.

    Examples
    --------
    >>> round(kt_kj_mol(300.0), 4)
    2.4943

    Parameters
    ----------
    temperature_k : float

    Returns
    -------
    float
    """
    return KB_KJ_MOL_K * float(temperature_k)


def temperature_k(kinetic_kj_mol, degrees_of_freedom):
    """Instantaneous temperature (K) of a kinetic energy (kJ/mol) spread over ``degrees_of_freedom``.

    Examples
    --------
    >>> round(temperature_k(1.5 * kt_kj_mol(300.0), 3), 6)
    300.0

    Parameters
    ----------
    kinetic_kj_mol : float
    degrees_of_freedom : int

    Returns
    -------
    float
    """
    return 2.0 * float(kinetic_kj_mol) / (degrees_of_freedom * KB_KJ_MOL_K)


def ns_per_day(steps, timestep_ps, seconds):
    """Simulation speed: ``steps`` of ``timestep_ps`` run in ``seconds`` of wall time, in ns/day (0 if no time).

    Examples
    --------
    >>> ns_per_day(1000, 0.001, 86.4)
    1.0

    Parameters
    ----------
    steps : int
    timestep_ps, seconds : float

    Returns
    -------
    float
    """
    if seconds <= 0:
        return 0.0
    return steps * timestep_ps / PS_PER_NS / seconds * SECONDS_PER_DAY

