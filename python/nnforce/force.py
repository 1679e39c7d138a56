"""The one builder of ML forces, pure-ML Systems and their Contexts.

:func:`build_nnforce` takes a model (a path, bytes, ``ScriptModule``, an :func:`nnforce.contract.inspect_model`
dict, or an existing ``NNForce``) and sets what the topology decides: periodicity, the atom subset, the atoms'
atomic numbers and the neighbor list. :func:`build_ml_system` puts one on a System of the topology's atoms (masses
from the elements, the topology's box); :func:`topology_of` makes a one-residue topology from atomic numbers (for
molecules known only by their numbers); :func:`build_context` makes the Context on a platform by name.
Used by simulate, replicas, the stability check, active learning, the demo, potentials and mlmm.
"""
from .atoms import atomic_numbers_of, validate_atoms


def build_nnforce(model, topology, atoms=None, *, neighbor_cutoff_nm=None, neighbor_skin_nm=0.0, precision=None,
                  properties=None, periodic=None):
    """An ``NNForce`` for ``model``, configured from ``topology``.

    Parameters
    ----------
    model : str, bytes, torch.jit.ScriptModule, dict or nnforce.NNForce
        The model file, its bytes, a scripted module, the dict of :func:`nnforce.contract.inspect_model` (the
        ``NNForce`` it built while verifying the bytes is taken, the first time; later calls build one from its
        ``bytes``), or an ``NNForce`` to configure in place.
    topology : openmm.app.Topology
        Gives the atomic numbers (set unless an ``inspect_model`` dict shows the model takes none) and, unless ``periodic`` is given, periodicity (a box means periodic).
    atoms : sequence of int, optional
        The atoms the model acts on (``setAtoms``); all particles when omitted. Validated with
        :func:`nnforce.atoms.validate_atoms`.
    neighbor_cutoff_nm : float, optional
        Give the model a neighbor list with this cutoff (``setNeighborList``); none when omitted.
    neighbor_skin_nm : float
        Verlet skin of the neighbor list.
    precision : {"single", "double"}, optional
        The precision the model runs in (``setProperty("precision", ...)``).
    properties : dict, optional
        Further ``NNForce`` properties.
    periodic : bool, optional
        Override the topology's periodicity.

    Returns
    -------
    nnforce.NNForce

    Examples
    --------
    >>> force = build_nnforce("model.pt", topology, neighbor_cutoff_nm=0.5)  # doctest: +SKIP
    >>> system.addForce(force)  # doctest: +SKIP
    """
    import nnforce

    if isinstance(model, nnforce.NNForce):
        force = model
        for name, value in (properties or {}).items():
            force.setProperty(name, str(value))
    elif isinstance(model, dict) and model.get("verified_force"):
        # the NNForce inspect_model built (and so verified) from these bytes: taken once, as a System owns its forces
        force = model["verified_force"].pop()
        for name, value in (properties or {}).items():
            force.setProperty(name, str(value))
    else:
        data = model["bytes"] if isinstance(model, dict) else model
        force = nnforce.NNForce(data, dict(properties or {}))
    if precision is not None:
        force.setProperty("precision", precision)
    if periodic is None:
        periodic = topology.getPeriodicBoxVectors() is not None
    if periodic:
        force.setUsesPeriodicBoundaryConditions(True)
    if atoms is not None:
        atoms = validate_atoms(atoms, topology.getNumAtoms())
        force.setAtoms(atoms)
    if not isinstance(model, dict) or "atomic_numbers" in model["arguments"]:
        force.setAtomicNumbers(atomic_numbers_of(topology, atoms))
    if neighbor_cutoff_nm is not None:
        force.setNeighborList(float(neighbor_cutoff_nm), float(neighbor_skin_nm))
    return force


def topology_of(atomic_numbers):
    """A one-chain, one-residue, no-box ``openmm.app.Topology`` with one atom per atomic number.

    Examples
    --------
    >>> topology_of([8, 1, 1]).getNumAtoms()
    3
    """
    from openmm import app

    topology = app.Topology()
    residue = topology.addResidue("MOL", topology.addChain())
    for z in atomic_numbers:
        element = app.element.Element.getByAtomicNumber(int(z))
        topology.addAtom(element.symbol, element, residue)
    return topology


def build_ml_system(model, topology, **options):
    """A pure-ML ``openmm.System``: a particle per atom of ``topology`` (element masses), its box, one NNForce.

    Parameters
    ----------
    model
        As for :func:`build_nnforce`.
    topology : openmm.app.Topology
        Every atom needs an element.
    **options
        Passed to :func:`build_nnforce` (``neighbor_cutoff_nm``, ``neighbor_skin_nm``, ``precision``, ...).

    Returns
    -------
    openmm.System

    Examples
    --------
    >>> system = build_ml_system("model.pt", topology_of([8, 1, 1]))  # doctest: +SKIP
    """
    import openmm

    missing = [atom.index for atom in topology.atoms() if atom.element is None]
    if missing:
        raise ValueError(f"atoms {missing[:5]} of the topology have no element; an ML System needs an element "
                         "for every atom (remove virtual sites, or give elements in the structure file)")
    system = openmm.System()
    for atom in topology.atoms():
        system.addParticle(atom.element.mass)
    box = topology.getPeriodicBoxVectors()
    if box is not None:
        system.setDefaultPeriodicBoxVectors(*box)
    system.addForce(build_nnforce(model, topology, **options))
    return system


def build_context(system, integrator, platform="CPU", properties=None):
    """An ``openmm.Context`` for ``system`` on the platform named ``platform`` (with its ``properties``).

    Examples
    --------
    >>> context = build_context(system, openmm.VerletIntegrator(0.001), "Reference")  # doctest: +SKIP
    """
    import openmm

    if isinstance(platform, str):
        platform = openmm.Platform.getPlatformByName(platform)
    if properties:
        return openmm.Context(system, integrator, platform, {k: str(v) for k, v in properties.items()})
    return openmm.Context(system, integrator, platform)
