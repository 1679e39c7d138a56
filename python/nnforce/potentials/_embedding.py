"""openmm-ml's mechanical embedding on :func:`nnforce.mlmm.create_mlmm_system` (exact dE/dlambda): the ML
region's force (an NNForce for nnforce's families, whatever forces another MLPotentialImpl adds), constraints kept or
removed as openmm-ml does, and the periodic long-range bookkeeping of ``mlLongRange``. Used by
:meth:`nnforce.potentials.MLPotential.createMixedSystem`; imports nothing from ``_potential``."""
import openmm
import openmm.unit as unit


def _is_nnforce_family(impl):
    """Whether ``impl`` builds an NNForce (an nnforce family, ``NNForcePotentialImpl``) rather than adding forces
    of its own (``family.add_forces``, or another package's MLPotentialImpl)."""
    family = getattr(impl, "family", None)
    return family is not None and hasattr(impl, "createForce") and not hasattr(family, "add_forces")


def mechanical_embedding(impl, topology, system, atoms, forceGroup, interpolate, mlLongRange=None,
                         linkAtomDistances=None, **args):
    """openmm-ml 1.8's mechanical embedding semantics on nnforce.mlmm (exact dE/dlambda), link atoms included.

    Returns ``dict(system=, topology=, oldToNew=)``: the Topology is a copy with one hydrogen per link atom appended
    (the given one when the region cuts no bond); ``oldToNew`` is the identity (caps come after every atom).
    """
    from .. import mlmm
    from . import _link_atoms

    periodic = system.usesPeriodicBoundaryConditions()
    known = impl.getMLLongRange()
    if known is not None and mlLongRange is not None and bool(mlLongRange) != bool(known):
        raise ValueError(f"mlLongRange={mlLongRange} contradicts the model, which declares that it "
                         f"{'includes' if known else 'does not include'} long-range interactions; leave mlLongRange "
                         "out")
    long_range = known if known is not None else mlLongRange
    pme = [f for f in system.getForces() if isinstance(f, openmm.NonbondedForce)
           and f.getNonbondedMethod() in (openmm.NonbondedForce.Ewald, openmm.NonbondedForce.PME,
                                          openmm.NonbondedForce.LJPME)]
    if periodic and long_range is None:
        # the first sentence is openmm-ml's wording, which its tests match
        raise ValueError("The system is periodic and it is unknown if the ML model uses long-range interactions: "
                         "pass mlLongRange=True or mlLongRange=False to createMixedSystem")
    if periodic and long_range and not pme:
        raise ValueError("the System is periodic and the ML model includes long-range interactions while the MM "
                         "force field does not (no Ewald/PME NonbondedForce); pass mlLongRange=False")
    ml = set(atoms)
    if topology.getNumAtoms() != system.getNumParticles():
        raise ValueError(f"the topology has {topology.getNumAtoms()} atoms but the System has "
                         f"{system.getNumParticles()} particles; pass the Topology the System was created from")
    source = mlmm.copy_system(system)
    kept = mlmm.remove_internal_constraints(source, atoms)
    # link atoms: a capping hydrogen (virtual site) on every bond the region cuts, as openmm-ml 1.8
    link_bonds = _link_atoms.find_link_bonds(topology, atoms)
    new_topology, caps = _link_atoms.add_link_atoms(topology, source, link_bonds, linkAtomDistances)
    model_atoms = list(atoms) + caps
    if _is_nnforce_family(impl):
        if "charge" not in args:
            args["charge"] = region_charge(system, atoms)
        box = system.getDefaultPeriodicBoxVectors() if periodic else None
        force = impl.createForce(new_topology, model_atoms, periodic=periodic, box=box, forceGroup=forceGroup,
                                 **args)
    else:
        scratch = openmm.System()
        for i in range(source.getNumParticles()):
            scratch.addParticle(source.getParticleMass(i))
        scratch.setDefaultPeriodicBoxVectors(*system.getDefaultPeriodicBoxVectors())
        impl.addForces(new_topology, scratch, model_atoms, forceGroup, **args)
        # copies the new System owns (a PythonForce clones with its callable, pickled)
        forces = [openmm.XmlSerializer.clone(scratch.getForce(i)) for i in range(scratch.getNumForces())]
        if len(forces) == 1:
            force = forces[0]
        else:
            force = openmm.CustomCVForce(" + ".join(f"ml{k}" for k in range(len(forces))) or "0")
            for k, f in enumerate(forces):
                force.addCollectiveVariable(f"ml{k}", f)
            force.setForceGroup(forceGroup)
    result = mlmm.create_mlmm_system(source, new_topology, atoms, force, lambda_ml=1.0 if interpolate else None,
                                     lambda_name="lambda_interpolate", model_atoms=model_atoms,
                                     internal_term=_link_atoms.capped_region_rule(topology, atoms))
    for p, q, d in reversed(kept):
        result.addConstraint(p, q, d)
    if periodic and long_range:
        # the model already includes the region's interactions with its own periodic images: take the MM force
        # field's PME energy between the region and its images out, scaled like the model
        _subtract_region_pme(result, pme[0], ml, forceGroup, interpolate)
    return dict(system=result, topology=new_topology, oldToNew=list(range(topology.getNumAtoms())))


def _subtract_region_pme(result, nonbonded, ml, forceGroup, interpolate):
    region = openmm.NonbondedForce()
    region.setNonbondedMethod(openmm.NonbondedForce.PME)
    region.setCutoffDistance(nonbonded.getCutoffDistance())
    region.setEwaldErrorTolerance(nonbonded.getEwaldErrorTolerance())
    region.setPMEParameters(*nonbonded.getPMEParameters())
    region.setUseDispersionCorrection(False)
    for i in range(result.getNumParticles()):
        charge = nonbonded.getParticleParameters(i)[0] if i in ml else 0.0
        region.addParticle(charge, 1.0, 0.0)
    # create_mlmm_system already removed every same-image pair inside the region (exceptions); what the MM force field
    # still has of the region is its interactions with its own periodic images: the region's PME without those pairs
    members = sorted(ml)
    for a in range(len(members)):
        for b in range(a):
            region.addException(members[a], members[b], 0.0, 1.0, 0.0)
    cv = openmm.CustomCVForce("-lambda_interpolate*region" if interpolate else "-region")
    cv.addCollectiveVariable("region", region)
    if interpolate:
        cv.addGlobalParameter("lambda_interpolate", 1.0)
    cv.setForceGroup(forceGroup)
    cv.setName("NNForce ML region PME subtraction")
    result.addForce(cv)


def region_charge(system, atoms):
    """The net charge of ``atoms`` in the System's NonbondedForce, rounded (0 without one)."""
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            total = sum(force.getParticleParameters(a)[0].value_in_unit(unit.elementary_charge) for a in atoms)
            return int(round(total))
    return 0
