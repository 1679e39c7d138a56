"""ML/MM: put an NNForce on part of an OpenMM System and remove that region's MM internal terms.

Mechanical embedding: the ML region interacts with the MM region through the MM force field (charges and
Lennard-Jones of the cross pairs, bonded terms that cross the boundary); inside the region the model replaces
the MM bonded terms and nonbonded pairs. Electrostatic embedding (the model also receiving MM charges and
positions) fits the same design: the NNForce would gain per-atom inputs for the MM environment; it is not
implemented yet and ``embedding="electrostatic"`` says so.

With ``lambda_ml`` the region's energy is interpolated, E = E_rest + lambda E_ML + (1 - lambda) E_MM,internal,
through a CustomCVForce whose exact dE/dlambda = E_ML - E_MM,internal is available from
``Context.getState(getParameterDerivatives=True)``.
"""
import itertools

import openmm

from .atoms import atomic_numbers_of, validate_atoms
from .force import build_nnforce
from .units import COULOMB_KJ_MOL_NM

_BONDED = {
    "HarmonicBondForce": (2, "getNumBonds", "getBondParameters"),
    "HarmonicAngleForce": (3, "getNumAngles", "getAngleParameters"),
    "PeriodicTorsionForce": (4, "getNumTorsions", "getTorsionParameters"),
    "RBTorsionForce": (4, "getNumTorsions", "getTorsionParameters"),
    "CustomBondForce": (2, "getNumBonds", "getBondParameters"),
    "CustomAngleForce": (3, "getNumAngles", "getAngleParameters"),
    "CustomTorsionForce": (4, "getNumTorsions", "getTorsionParameters"),
}
_IGNORED = {"CMMotionRemover", "MonteCarloBarostat", "AndersenThermostat", "MonteCarloAnisotropicBarostat",
            "MonteCarloMembraneBarostat", "MonteCarloFlexibleBarostat"}


def copy_system(system):
    return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(system))


def remove_internal_constraints(system, atoms):
    """Remove from ``system`` (in place) every constraint between two of ``atoms`` (the ML region's bond lengths
    are the model's to keep); returns the removed constraints as ``(p, q, distance)``, last index first."""
    inside = set(int(a) for a in atoms)
    removed = []
    for index in reversed(range(system.getNumConstraints())):
        p, q, distance = system.getConstraintParameters(index)
        if p in inside and q in inside:
            removed.append((p, q, distance))
            system.removeConstraint(index)
    return removed


def _bonded_split(force, ml, internal_term=None):
    """Two copies of a bonded force: (terms not in the ML region, terms inside it). A term is inside when
    ``internal_term(atoms)`` says so, by default when all its atoms are in ``ml``."""
    kind = type(force).__name__
    n_atoms, count, getter = _BONDED[kind]
    keep = _empty_like(force)
    inside = _empty_like(force)
    for index in range(getattr(force, count)()):
        values = getattr(force, getter)(index)
        atoms, params = list(values[:n_atoms]), list(values[n_atoms:])
        is_inside = internal_term(atoms) if internal_term is not None else all(a in ml for a in atoms)
        target = inside if is_inside else keep
        _add_term(target, kind, atoms, params)
    return keep, inside


def _empty_like(force):
    kind = type(force).__name__
    if kind.startswith("Custom"):
        new = type(force)(force.getEnergyFunction())
        for i in range(force.getNumPerBondParameters() if hasattr(force, "getNumPerBondParameters") else
                       force.getNumPerAngleParameters() if hasattr(force, "getNumPerAngleParameters") else
                       force.getNumPerTorsionParameters()):
            name = (force.getPerBondParameterName(i) if hasattr(force, "getPerBondParameterName") else
                    force.getPerAngleParameterName(i) if hasattr(force, "getPerAngleParameterName") else
                    force.getPerTorsionParameterName(i))
            _add_per_term_parameter(new, name)
        for i in range(force.getNumGlobalParameters()):
            new.addGlobalParameter(force.getGlobalParameterName(i), force.getGlobalParameterDefaultValue(i))
        for i in range(force.getNumEnergyParameterDerivatives()):
            new.addEnergyParameterDerivative(force.getEnergyParameterDerivativeName(i))
    else:
        new = type(force)()
    new.setForceGroup(force.getForceGroup())
    new.setName(force.getName())
    new.setUsesPeriodicBoundaryConditions(force.usesPeriodicBoundaryConditions())
    return new


def _add_per_term_parameter(force, name):
    for method in ("addPerBondParameter", "addPerAngleParameter", "addPerTorsionParameter"):
        if hasattr(force, method):
            getattr(force, method)(name)
            return


def _add_term(force, kind, atoms, params):
    if kind == "HarmonicBondForce":
        force.addBond(*atoms, *params)
    elif kind == "HarmonicAngleForce":
        force.addAngle(*atoms, *params)
    elif kind in ("PeriodicTorsionForce", "RBTorsionForce"):
        force.addTorsion(*atoms, *params)
    elif kind == "CustomBondForce":
        force.addBond(*atoms, *params)
    elif kind == "CustomAngleForce":
        force.addAngle(*atoms, *params)
    else:
        force.addTorsion(*atoms, *params)


def _strip_nonbonded(force, ml, internal_pairs):
    """Zero every ML-ML pair of a NonbondedForce (as exceptions), recording what MM computed for each pair."""
    exceptions = {}
    for index in range(force.getNumExceptions()):
        i, j, charge_prod, sigma, epsilon = force.getExceptionParameters(index)
        exceptions[(min(i, j), max(i, j))] = (index, charge_prod, sigma, epsilon)
    for i, j in itertools.combinations(sorted(ml), 2):
        if (i, j) in exceptions:
            index, charge_prod, sigma, epsilon = exceptions[(i, j)]
            force.setExceptionParameters(index, i, j, 0.0, 1.0, 0.0)
        else:
            qi, si, ei = (_value(x) for x in force.getParticleParameters(i))
            qj, sj, ej = (_value(x) for x in force.getParticleParameters(j))
            charge_prod, sigma, epsilon = qi * qj, 0.5 * (si + sj), (ei * ej) ** 0.5  # Lorentz-Berthelot
            force.addException(i, j, 0.0, 1.0, 0.0)
        internal_pairs.append((i, j, _value(charge_prod), _value(sigma), _value(epsilon)))


def _value(quantity):
    return quantity.value_in_unit_system(openmm.unit.md_unit_system) if openmm.unit.is_quantity(quantity) else float(quantity)


def _strip_custom_nonbonded(force, ml):
    excluded = set()
    for index in range(force.getNumExclusions()):
        i, j = force.getExclusionParticles(index)
        excluded.add((min(i, j), max(i, j)))
    for pair in itertools.combinations(sorted(ml), 2):
        if pair not in excluded:
            force.addExclusion(*pair)


def check_lambda(lambda_ml, name="lambda_ml"):
    """Raise ValueError unless ``lambda_ml`` is None or a number in [0, 1]: outside it the interpolated energy
    E_MM + lambda (E_ML - E_MM) is an extrapolation (lambda 2 gives 2 E_ML - E_MM), never what was meant.

    Examples
    --------
    >>> check_lambda(0.5)
    >>> check_lambda(2.0)
    Traceback (most recent call last):
    ...
    ValueError: lambda_ml must be a number between 0 (MM) and 1 (ML), got 2.0: outside it the energy E_MM + lambda (E_ML - E_MM) is an extrapolation
    """
    import math

    if lambda_ml is None:
        return
    if isinstance(lambda_ml, bool) or not isinstance(lambda_ml, (int, float)) or not math.isfinite(lambda_ml) \
            or not 0.0 <= lambda_ml <= 1.0:
        raise ValueError(f"{name} must be a number between 0 (MM) and 1 (ML), got {lambda_ml!r}: outside it the "
                         "energy E_MM + lambda (E_ML - E_MM) is an extrapolation")


def create_mlmm_system(system, topology, ml_atoms, model, *, lambda_ml=None, lambda_name="lambda_ml",
                       neighbor_cutoff_nm=None, neighbor_skin_nm=0.0, properties=None, embedding="mechanical",
                       internal_term=None, model_atoms=None):
    """Return a new System in which ``model`` acts on ``ml_atoms`` and the MM terms inside that region are removed.

    Bonded terms with all atoms in the region and all nonbonded pairs inside it are removed; everything else
    (MM-MM and ML-MM interactions) is kept. The input System is not modified.

    Parameters
    ----------
    system : openmm.System
        The MM System of the whole structure (no constraints between ML atoms).
    topology : openmm.app.Topology
        The topology ``system`` was created from (atomic numbers of the region).
    ml_atoms : sequence of int
        The ML region (validated by :func:`nnforce.atoms.validate_atoms`).
    model : nnforce.NNForce, str, bytes, torch.jit.ScriptModule, dict or openmm.Force
        Anything :func:`nnforce.force.build_nnforce` takes, or another OpenMM Force that already computes the ML
        region's energy (used as is; MLPotential's openmm-ml-style potentials, e.g. ``ase``).
    lambda_ml : float, optional
        Adds the global parameter ``lambda_name`` interpolating MM (0) and ML (1) inside the region, with its
        exact energy derivative requested.
    lambda_name : str
    neighbor_cutoff_nm, neighbor_skin_nm : float, optional
        Give the model a neighbor list.
    properties : dict, optional
        ``NNForce`` properties (e.g. ``{"precision": "double"}``).
    embedding : {"mechanical"}
        Electrostatic embedding is not implemented yet (NotImplementedError).
    internal_term : callable, optional
        ``internal_term(atoms) -> bool`` decides which bonded terms (``atoms``: the term's 2, 3 or 4 atoms, 8 for
        CMAP) belong to the ML region and are removed (interpolated with ``lambda_ml``); by default those with all
        atoms in the region. MLPotential's link atoms use openmm-ml 1.8's rules
        (:func:`nnforce.potentials._link_atoms.capped_region_rule`).
    model_atoms : sequence of int, optional
        The atoms the model (or the NNForce given, which is configured with them) acts on, default ``ml_atoms``
        (MLPotential passes the region plus its link atoms).

    Returns
    -------
    openmm.System

    Examples
    --------
    >>> mlmm = create_mlmm_system(system, topology, ligand_atoms, "model.pt", lambda_ml=1.0)  # doctest: +SKIP
    """
    ml = _checked_region(system, topology, ml_atoms, lambda_ml, embedding)
    ml_set = set(ml)
    source = copy_system(system)
    # particles, virtual sites (a System must own its sites: they cannot be handed over from `source`), constraints
    # and box of `source`, without its forces
    result = copy_system(source)
    for index in reversed(range(result.getNumForces())):
        result.removeForce(index)

    internal_forces, internal_pairs = _split_forces(source, ml_set, result, internal_term)
    if _is_other_force(model):
        ml_force = model  # an openmm-ml MLPotentialImpl's own Force (e.g. the ase potential's PythonForce), as is
    else:
        ml_force = build_nnforce(model, topology, ml if model_atoms is None else model_atoms,
                                 neighbor_cutoff_nm=neighbor_cutoff_nm,
                                 neighbor_skin_nm=neighbor_skin_nm, properties=properties,
                                 periodic=source.usesPeriodicBoundaryConditions())

    if lambda_ml is None:
        result.addForce(ml_force)
        return result
    result.addForce(_lambda_force(ml_force, internal_forces, internal_pairs, lambda_ml, lambda_name,
                                  source.usesPeriodicBoundaryConditions()))
    return result


def _checked_region(system, topology, ml_atoms, lambda_ml, embedding):
    """The validated ML region of create_mlmm_system's inputs (sorted atom indices)."""
    if embedding != "mechanical":
        raise NotImplementedError("only mechanical embedding is implemented; electrostatic embedding (MM charges and "
                                  "positions as model inputs) is planned, see docs/mlmm.md")
    n = system.getNumParticles()
    if topology.getNumAtoms() != n:
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System has {n} particles; "
                         "pass the Topology the System was created from")
    ml = validate_atoms(ml_atoms, n)
    check_lambda(lambda_ml)
    atomic_numbers_of(topology, ml)  # every ML atom needs an element (no virtual sites)
    ml_set = set(ml)
    for i in range(system.getNumConstraints()):
        p, q, _ = system.getConstraintParameters(i)
        if p in ml_set and q in ml_set:
            raise ValueError("the System has constraints inside the ML region; create it with constraints=None and "
                             "rigidWater=False for the ML atoms")
    return ml


def _is_other_force(model):
    """An OpenMM Force that is not an NNForce (already configured for the ML atoms by whoever made it)."""
    if not isinstance(model, openmm.Force):
        return False
    try:
        import nnforce

        return not isinstance(model, nnforce.NNForce)
    except ImportError:
        return True


def _num_terms(force):
    for method in ("getNumBonds", "getNumAngles", "getNumTorsions"):
        if hasattr(force, method):
            return getattr(force, method)()
    return 0


def _copy_force(force):
    return openmm.XmlSerializer.deserialize(openmm.XmlSerializer.serialize(force))


def _split_forces(source, ml_set, result, internal_term=None):
    """Add to ``result`` every force of ``source`` without its terms inside the ML region; returns the removed
    internal terms as forces (bonded, CMAP) and as nonbonded pair parameters."""
    internal_forces = []
    internal_pairs = []
    for index in range(source.getNumForces()):
        force = source.getForce(index)
        kind = type(force).__name__
        if kind in _BONDED:
            keep, inside = _bonded_split(force, ml_set, internal_term)
            result.addForce(keep)
            if _num_terms(inside):
                internal_forces.append(inside)
        elif kind == "NonbondedForce":
            _strip_nonbonded(force, ml_set, internal_pairs)
            result.addForce(_copy_force(force))
        elif kind == "CustomNonbondedForce":
            _strip_custom_nonbonded(force, ml_set)
            result.addForce(_copy_force(force))
        elif kind == "CMAPTorsionForce":
            keep = openmm.CMAPTorsionForce()
            for m in range(force.getNumMaps()):
                size, energy = force.getMapParameters(m)
                keep.addMap(size, energy)
            inside = openmm.CMAPTorsionForce()
            for m in range(force.getNumMaps()):
                inside.addMap(*force.getMapParameters(m))
            for t in range(force.getNumTorsions()):
                m, *atoms8 = force.getTorsionParameters(t)
                is_inside = internal_term(atoms8) if internal_term is not None else all(a in ml_set for a in atoms8)
                (inside if is_inside else keep).addTorsion(m, *atoms8)
            keep.setForceGroup(force.getForceGroup())
            result.addForce(keep)
            if inside.getNumTorsions():
                internal_forces.append(inside)
        elif kind in _IGNORED or kind == "CustomExternalForce":
            result.addForce(_copy_force(force))
        else:
            raise ValueError(f"create_mlmm_system does not know how to remove ML-region terms from a {kind}; "
                             "remove them before calling it")
    return internal_forces, internal_pairs


def _lambda_force(ml_force, internal_forces, internal_pairs, lambda_ml, lambda_name, periodic):
    """A CustomCVForce: lambda E_ML + (1 - lambda) E_MM,internal with its exact dE/dlambda requested."""
    if internal_pairs:
        pairs = openmm.CustomBondForce(
            f"{COULOMB_KJ_MOL_NM}*chargeProd/r + 4*epsilon*((sigma/r)^12 - (sigma/r)^6)")
        for name in ("chargeProd", "sigma", "epsilon"):
            pairs.addPerBondParameter(name)
        for i, j, charge_prod, sigma, epsilon in internal_pairs:
            if charge_prod != 0.0 or epsilon != 0.0:
                pairs.addBond(i, j, [charge_prod, sigma, epsilon])
        pairs.setUsesPeriodicBoundaryConditions(periodic)
        internal_forces.append(pairs)
    names = [f"mm_{k}" for k in range(len(internal_forces))]
    mm_sum = " + ".join(names) if names else "0"
    cv = openmm.CustomCVForce(f"{lambda_name}*ml + (1 - {lambda_name})*({mm_sum})")
    cv.addCollectiveVariable("ml", ml_force)
    for name, force in zip(names, internal_forces):
        cv.addCollectiveVariable(name, force)
    cv.addGlobalParameter(lambda_name, float(lambda_ml))
    cv.addEnergyParameterDerivative(lambda_name)
    cv.setName("NNForce ML/MM lambda")
    return cv
