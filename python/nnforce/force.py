"""One builder for an ``NNForce`` configured from a topology: used by ``nnforce.simulate`` and ``nnforce.mlmm``.

:func:`build_nnforce` takes a model (a path, bytes, ``ScriptModule``, an :func:`nnforce.contract.inspect_model`
dict, or an existing ``NNForce``) and sets what the topology decides: periodicity, the atom subset, the atoms'
atomic numbers and the neighbor list.
"""
from .contract import atomic_numbers_of, validate_atoms


def build_nnforce(model, topology, atoms=None, *, neighbor_cutoff_nm=None, neighbor_skin_nm=0.0, precision=None,
                  properties=None, periodic=None):
    """An ``NNForce`` for ``model``, configured from ``topology``.

    Parameters
    ----------
    model : str, bytes, torch.jit.ScriptModule, dict or nnforce.NNForce
        The model file, its bytes, a scripted module, the dict of :func:`nnforce.contract.inspect_model`
        (its ``bytes`` are used), or an ``NNForce`` to configure in place.
    topology : openmm.app.Topology
        Gives the atomic numbers (set unless an ``inspect_model`` dict shows the model takes none) and, unless ``periodic`` is given, periodicity (a box means periodic).
    atoms : sequence of int, optional
        The atoms the model acts on (``setAtoms``); all particles when omitted. Validated with
        :func:`nnforce.contract.validate_atoms`.
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
