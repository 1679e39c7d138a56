"""From a config to an OpenMM System, platform and integrator: the structure, the NNForce (pure ML) or the
ML/MM System (:func:`nnforce.mlmm.create_mlmm_system`), and the degrees of freedom for temperatures."""
import os

from ..contract import neighbor_cutoff
from ..atoms import atomic_numbers_of, check_elements, missing_hydrogens_warning, parse_atom_selection
from ..force import build_ml_system


def _pdb_atom_records(path):
    """ATOM/HETATM records of a PDB file's first model."""
    count = 0
    with open(path, errors="replace") as handle:
        for line in handle:
            if line.startswith("ENDMDL"):
                break
            count += line.startswith(("ATOM  ", "HETATM"))
    return count


def load_structure(config):
    """The topology and positions of a simulation.

    Parameters
    ----------
    config : SimulationConfig
        Its ``pdb`` (PDB or PDBx/mmCIF file), or its ``topology`` and ``positions`` (nm).

    Returns
    -------
    tuple
        ``(openmm.app.Topology, positions Quantity)``.

    Examples
    --------
    >>> topology, positions = load_structure(SimulationConfig(model="m.pt", pdb="mol.pdb"))  # doctest: +SKIP
    """
    import numpy as np
    from openmm import unit
    from openmm.app import PDBFile, PDBxFile

    if config.pdb is not None:
        path = os.fspath(config.pdb)
        if os.path.isdir(path):
            raise IsADirectoryError(f"structure {path} is a directory, not a PDB or PDBx/mmCIF file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"structure file not found: {path}")
        kind = "PDBx/mmCIF" if path.lower().endswith((".cif", ".pdbx")) else "PDB"
        try:
            structure = PDBxFile(path) if kind != "PDB" else PDBFile(path)
            topology, positions = structure.topology, structure.getPositions(asNumpy=True)
        except Exception as error:  # OpenMM's readers raise ValueError, IndexError, KeyError, ... on bad text
            first = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise ValueError(f"structure {path} is not a readable {kind} file ({type(error).__name__}: {first[:160]})") from None
        if kind == "PDB":
            records = _pdb_atom_records(path)
            if records > topology.getNumAtoms():
                raise ValueError(f"structure {path} has {records} ATOM/HETATM records but OpenMM read "
                                 f"{topology.getNumAtoms()} atoms: atoms with the same name in one residue are merged; "
                                 "give every atom of a residue its own name")
        if topology.getNumAtoms() == 0 or len(positions) != topology.getNumAtoms():
            raise ValueError(f"structure {path} holds no atoms with coordinates (is it a {kind} file? ATOM/HETATM "
                             "records are needed)")
        _check_coordinates(positions, f"structure {path}")
        return topology, positions
    positions = config.positions
    if not unit.is_quantity(positions):
        positions = unit.Quantity(np.asarray(positions, dtype=float), unit.nanometer)
    if len(positions) != config.topology.getNumAtoms():
        raise ValueError(f"{len(positions)} positions for a topology of {config.topology.getNumAtoms()} atoms")
    _check_coordinates(positions, "positions")
    return config.topology, positions


MAX_COORDINATE_NM = 1000.0  # beyond this no molecular structure lies (and final.pdb could not hold it)


def _check_coordinates(positions, what):
    """Raise ValueError for a non-finite coordinate or one beyond :data:`MAX_COORDINATE_NM`, naming the atom."""
    import numpy as np
    from openmm import unit

    values = np.asarray(positions.value_in_unit(unit.nanometer), dtype=float).reshape(-1, 3)
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"{what} has non-finite coordinates (atom {int(np.argmax(bad))})")
    far = np.abs(values).max(axis=1) > MAX_COORDINATE_NM
    if far.any():
        atom = int(np.argmax(far))
        raise ValueError(f"{what}: atom {atom} lies at {values[atom].tolist()} nm, beyond +-{MAX_COORDINATE_NM:g} nm from "
                         "the origin; fix the coordinates (positions are in nm, PDB files in angstrom)")


def mm_system(config, topology, ml_atoms):
    """The MM System of the whole structure from the config's force field, without constraints inside the ML
    region (the model describes its bonds)."""
    from openmm import app, unit

    from ..mlmm import remove_internal_constraints

    try:
        forcefield = app.ForceField(*config.forcefield)
    except (ValueError, OSError) as error:
        if "locate" in str(error) or isinstance(error, OSError):
            raise FileNotFoundError(f"force field file not found ({error}); give a path or one of OpenMM's "
                                    "bundled files such as amber14-all.xml, amber14/tip3p.xml") from None
        raise ValueError(f"could not load force field {config.forcefield}: {error}") from None
    periodic = topology.getPeriodicBoxVectors() is not None
    system = forcefield.createSystem(
        topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
        nonbondedCutoff=config.mm_cutoff_nm * unit.nanometer,
        constraints=app.HBonds if config.constraints == "hbonds" else None, rigidWater=True)
    remove_internal_constraints(system, ml_atoms)
    return system


def build_system(config, topology, info):
    """The OpenMM System of a simulation: an NNForce on all atoms, or ML/MM when a force field and ML atoms
    are given.

    Parameters
    ----------
    config : SimulationConfig
    topology : openmm.app.Topology
    info : dict
        The model, from :func:`nnforce.contract.inspect_model`.

    Returns
    -------
    openmm.System

    Raises
    ------
    ValueError
        When the structure (or ML region) has an element the model does not know, or an atom without an element.

    Examples
    --------
    >>> system = build_system(config, topology, inspect_model(config.model))  # doctest: +SKIP
    """
    cutoff = neighbor_cutoff(info, config.neighbor_cutoff_nm)
    if config.forcefield is None:
        check_elements(info["elements"], atomic_numbers_of(topology), "the structure")
        _warn_missing_hydrogens(info, atomic_numbers_of(topology), "the structure")
        return build_ml_system(info, topology, neighbor_cutoff_nm=cutoff, neighbor_skin_nm=config.neighbor_skin_nm,
                               precision=config.model_precision)
    ml_atoms = parse_atom_selection(config.ml_atoms, topology)
    check_elements(info["elements"], atomic_numbers_of(topology, ml_atoms), "the ML region")
    from ..mlmm import create_mlmm_system

    return create_mlmm_system(
        mm_system(config, topology, ml_atoms), topology, ml_atoms, info, lambda_ml=config.lambda_ml,
        neighbor_cutoff_nm=cutoff, neighbor_skin_nm=config.neighbor_skin_nm,
        properties=None if config.model_precision is None else {"precision": config.model_precision})


def build_potential_system(config, name, model_path=None, model_precision=None):
    """The System of a named potential (``nnforce simulate --potential NAME [--model-path FILE]``):
    ``MLPotential.createSystem``, or ``createMixedSystem`` for ML/MM (a force field and ML atoms in ``config``;
    ``config.lambda_ml`` sets the interpolation parameter).

    Returns
    -------
    openmm.System

    Examples
    --------
    >>> system = build_potential_system(config, "ani2x")  # doctest: +SKIP
    """
    from ..potentials import MLPotential

    potential = MLPotential(name, **({} if model_path is None else {"modelPath": model_path}))
    topology, _ = load_structure(config)
    options = {} if model_precision is None else {"precision": model_precision}
    if config.forcefield is None:
        return potential.createSystem(topology, **options)
    ml_atoms = parse_atom_selection(config.ml_atoms, topology)
    system = potential.createMixedSystem(topology, mm_system(config, topology, ml_atoms), ml_atoms,
                                         interpolate=config.lambda_ml is not None, **options)
    if config.lambda_ml is not None:
        system.getForce(system.getNumForces() - 1).setGlobalParameterDefaultValue(0, float(config.lambda_ml))
    return system


def get_platform(name=None, precision=None):
    """An OpenMM platform by name (case-insensitive) and its properties for ``precision``.

    Parameters
    ----------
    name : str, optional
        Reference, CPU, CUDA, OpenCL, ...; None picks OpenMM's fastest.
    precision : {"single", "mixed", "double"}, optional
        For CUDA/OpenCL/HIP; the Reference platform only accepts double.

    Returns
    -------
    tuple
        ``(openmm.Platform, properties dict)``.

    Raises
    ------
    ValueError
        For an unknown platform (the message lists the available ones) or precision.

    Examples
    --------
    >>> get_platform("reference")[0].getName()
    'Reference'
    """
    import openmm

    platforms = [openmm.Platform.getPlatform(i) for i in range(openmm.Platform.getNumPlatforms())]
    if name is None:
        platform = max(platforms, key=lambda p: p.getSpeed())
    else:
        matches = [p for p in platforms if p.getName().lower() == str(name).lower()]
        if not matches:
            raise ValueError(f"unknown OpenMM platform {name!r}; available here: "
                             f"{', '.join(p.getName() for p in platforms)}")
        platform = matches[0]
    properties = {}
    if precision is not None:
        if precision not in ("single", "mixed", "double"):
            raise ValueError(f"precision must be single, mixed or double, got {precision!r}")
        if platform.getName() in ("CUDA", "OpenCL", "HIP"):
            properties["Precision"] = precision
        elif platform.getName() == "Reference" and precision != "double":
            raise ValueError("the Reference platform always computes in double precision")
    return platform, properties


def make_integrator(config):
    """The integrator of a config: ``LangevinMiddleIntegrator`` (seeded) or ``VerletIntegrator`` (NVE).

    Examples
    --------
    >>> make_integrator(SimulationConfig(model="m", pdb="x.pdb", integrator="nve")).getStepSize()  # doctest: +SKIP
    Quantity(value=0.0005, unit=picosecond)

    Parameters
    ----------
    config : SimulationConfig

    Returns
    -------
    openmm.Integrator
    """
    import openmm
    from openmm import unit

    step = config.timestep_fs * unit.femtoseconds
    if config.integrator == "verlet":
        return openmm.VerletIntegrator(step)
    integrator = openmm.LangevinMiddleIntegrator(config.temperature_k * unit.kelvin,
                                                 config.friction_per_ps / unit.picosecond, step)
    integrator.setRandomNumberSeed(int(config.seed))
    return integrator


def degrees_of_freedom(system):
    """Degrees of freedom of a System: 3 per massive particle, minus constraints and a removed COM motion.

    Examples
    --------
    >>> import openmm
    >>> system = openmm.System(); _ = [system.addParticle(1.0) for _ in range(3)]
    >>> degrees_of_freedom(system)
    9

    Parameters
    ----------
    system : openmm.System

    Returns
    -------
    int
    """
    import openmm

    dof = 3 * sum(1 for i in range(system.getNumParticles()) if system.getParticleMass(i)._value > 0)
    dof -= system.getNumConstraints()
    if any(isinstance(system.getForce(i), openmm.CMMotionRemover) for i in range(system.getNumForces())):
        dof -= 3
    return max(dof, 1)


def _warn_missing_hydrogens(info, atomic_numbers, what):
    """Say on stderr (one line) when a model trained with hydrogens is given a structure without any."""
    import sys

    message = missing_hydrogens_warning(info.get("elements"), atomic_numbers, what)
    if message:
        print(f"nnforce simulate: warning: {message}", file=sys.stderr)
