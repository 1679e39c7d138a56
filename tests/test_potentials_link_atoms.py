"""Link atoms in MLPotential.createMixedSystem (openmm-ml 1.8's mechanical embedding; issue 23).

The ML region is alanine dipeptide's ALA residue, which cuts two peptide bonds (ACE C - ALA N, ALA C - NME N). Checked
against independent computations: the model's energy and forces equal nnforce's eager ANI-1x on the capped fragment
whose hydrogen positions are built here by hand (forces through torch autograd of the cap construction, not OpenMM's
virtual-site rules); the MM terms that remain are the ones a hand-written list of the documented rules keeps; lambda
0 gives the force field's energy; ``linkAtomDistances`` moves a cap exactly where asked.
"""
import numpy as np
import openmm
import openmm.unit as unit
import pytest

import potentials_systems as ps
from nnforce.potentials import MLPotential, MLPotentialImpl, MLPotentialImplFactory

#: Pyykko & Atsumi 2009 single-bond covalent radii (pm) of the elements at the cut bonds
RADIUS_PM = {"H": 32, "C": 75, "N": 71}


def energy_forces(system, positions_nm, groups=-1, parameters=None):
    """Reference platform, with the virtual sites (link atoms) placed by OpenMM first."""
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    extra = system.getNumParticles() - len(positions_nm)
    context.setPositions(np.vstack([positions_nm, np.zeros((extra, 3))]) * unit.nanometer)
    context.computeVirtualSites()
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, getParameterDerivatives=bool(parameters),
                             groups=groups)
    result = (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
              np.array(state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer)))
    if parameters:
        return result + (state.getEnergyParameterDerivatives(),)
    return result


def dipeptide_region():
    topology, positions, mm_system, _ = ps.vacuum_peptide()
    region = [a.index for a in topology.atoms() if a.residue.name == "ALA"]
    named = {(a.residue.name, a.name): a.index for a in topology.atoms() if a.residue.name != "HOH"}
    return topology, positions, mm_system, region, named


def hand_caps(positions, named):
    """The two caps, built by hand: on N(ALA)->C(ACE) at r_N + r_H, on C(ALA)->N(NME) at r_C + r_H."""
    caps = []
    for ml, mm, element in ((("ALA", "N"), ("ACE", "C"), "N"), (("ALA", "C"), ("NME", "N"), "C")):
        x, y = positions[named[ml]], positions[named[mm]]
        caps.append(x + (RADIUS_PM[element] + RADIUS_PM["H"]) / 1000.0 * (y - x) / np.linalg.norm(y - x))
    return np.array(caps)


def test_the_model_sees_the_capped_fragment(one_torch_thread):
    import torch
    from nnforce.models.ani1x import ani1x

    topology, positions, mm_system, region, named = dipeptide_region()
    n = topology.getNumAtoms()
    info = MLPotential("nnforce-ani1x").createMixedSystem(topology, mm_system, region, forceGroup=1,
                                                          returnInfo=True)
    system, capped = info["system"], info["topology"]
    assert system.getNumParticles() == capped.getNumAtoms() == n + 2 and topology.getNumAtoms() == n
    assert info["oldToNew"] == list(range(n))
    caps = list(capped.atoms())[n:]
    assert [a.element.symbol for a in caps] == ["H", "H"]
    assert caps[0].residue.chain is caps[1].residue.chain  # one new chain, after the given ones
    assert caps[0].residue.chain.index == capped.getNumChains() - 1 == topology.getNumChains()
    assert all(system.isVirtualSite(i) and system.getParticleMass(i).value_in_unit(unit.dalton) == 0.0
               for i in (n, n + 1))
    energy, forces = energy_forces(system, positions, groups={1})

    # reference: eager ANI-1x on the region plus caps built from the positions by hand, forces by autograd
    x = torch.tensor(positions, dtype=torch.float64, requires_grad=True)
    cap_list = []
    for ml, mm, element in ((("ALA", "N"), ("ACE", "C"), "N"), (("ALA", "C"), ("NME", "N"), "C")):
        a, b = x[named[ml]], x[named[mm]]
        cap_list.append(a + (RADIUS_PM[element] + RADIUS_PM["H"]) / 1000.0 * (b - a) / torch.linalg.norm(b - a))
    fragment = torch.cat([x[region], torch.stack(cap_list)])
    numbers = ps.atomic_numbers(topology, region) + [1, 1]
    ref = ani1x(dtype=torch.float64)(fragment, torch.tensor(numbers))
    ref_forces = -torch.autograd.grad(ref, x)[0].numpy()
    ps.assert_close(energy, forces[:n], ref.item(), ref_forces)
    # interpolated, the NNForce on region + caps inside the CustomCVForce: lambda 1 is the mixed System
    lam = MLPotential("nnforce-ani1x").createMixedSystem(topology, mm_system, region, interpolate=True)
    e_lam = energy_forces(lam, positions, parameters={"lambda_interpolate": 1.0})[0]
    assert e_lam == pytest.approx(energy_forces(system, positions)[0], rel=1e-9)
    # the caps differ from a plain cut: the uncapped region's energy is another number
    uncapped = ani1x(dtype=torch.float64)(x[region], torch.tensor(ps.atomic_numbers(topology, region))).item()
    assert abs(uncapped - energy) > 100.0


def _hand_kept_terms(system, topology, region):
    """Bonded terms the documented rules keep, written out: bonds not inside, angles not centred inside, proper
    torsions not about an inside-inside bond, impropers not centred inside."""
    inside = set(region)
    bonded = {frozenset((b.atom1.index, b.atom2.index)) for b in topology.bonds()}

    def b(p, q):
        return frozenset((p, q)) in bonded

    kept = []
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            kept += [("bond",) + tuple(force.getBondParameters(i)[:2]) for i in range(force.getNumBonds())
                     if not all(a in inside for a in force.getBondParameters(i)[:2])]
        elif isinstance(force, openmm.HarmonicAngleForce):
            kept += [("angle",) + tuple(force.getAngleParameters(i)[:3]) for i in range(force.getNumAngles())
                     if force.getAngleParameters(i)[1] not in inside]
        elif isinstance(force, openmm.PeriodicTorsionForce):
            for i in range(force.getNumTorsions()):
                p, q, r, s = force.getTorsionParameters(i)[:4]
                if b(p, q) and b(q, r) and b(r, s):
                    removed = q in inside and r in inside
                else:  # amber improper: the third atom is bonded to the other three
                    assert b(r, p) and b(r, q) and b(r, s)
                    removed = r in inside
                if not removed:
                    kept.append(("torsion", p, q, r, s))
    return kept


def _terms(system):
    found = []
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            found += [("bond",) + tuple(force.getBondParameters(i)[:2]) for i in range(force.getNumBonds())]
        elif isinstance(force, openmm.HarmonicAngleForce):
            found += [("angle",) + tuple(force.getAngleParameters(i)[:3]) for i in range(force.getNumAngles())]
        elif isinstance(force, openmm.PeriodicTorsionForce):
            found += [("torsion",) + tuple(force.getTorsionParameters(i)[:4]) for i in range(force.getNumTorsions())]
    return found


class ExternalSpring(MLPotentialImpl):
    """k |x|^2 on every atom the potential is given (so a cap's position shows in the energy)."""

    def addForces(self, topology, system, atoms, forceGroup, **args):
        force = openmm.CustomExternalForce("2.5*(x*x+y*y+z*z)")
        for atom in (range(topology.getNumAtoms()) if atoms is None else atoms):
            force.addParticle(atom, [])
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getMLLongRange(self):
        return False


class SpringFactory(MLPotentialImplFactory):
    def createImpl(self, name, **args):
        return ExternalSpring()


def test_mm_terms_removed_and_kept():
    MLPotential.registerImplFactory("test-link-spring", SpringFactory())
    topology, positions, mm_system, region, named = dipeptide_region()
    mixed = MLPotential("test-link-spring").createMixedSystem(topology, mm_system, region, forceGroup=1)
    kept = sorted(_hand_kept_terms(mm_system, topology, region))
    assert sorted(_terms(mixed)) == kept
    found = set(_terms(mixed))
    c_ace, o_ace, n, ca, c = (named[k] for k in (("ACE", "C"), ("ACE", "O"), ("ALA", "N"), ("ALA", "CA"),
                                                   ("ALA", "C")))
    assert ("bond", c_ace, n) in found or ("bond", n, c_ace) in found  # the cut bond stays MM
    assert not {("angle", c_ace, n, ca), ("angle", ca, n, c_ace)} & found  # centred inside: the cap's job
    assert {("angle", o_ace, c_ace, n), ("angle", n, c_ace, o_ace)} & found  # centred outside: kept
    assert not {("torsion", c_ace, n, ca, c), ("torsion", c, ca, n, c_ace)} & found
    # the MM energy that is left: the force field without exactly the removed terms and the region's pairs
    # (checked through lambda 0 = the force field, below); the ML part is the spring on region + caps
    e_ml, _ = energy_forces(mixed, positions, groups={1})
    caps = hand_caps(positions, named)
    assert e_ml == pytest.approx(2.5 * ((positions[region] ** 2).sum() + (caps ** 2).sum()), rel=1e-12)


def test_interpolation_ends_with_link_atoms():
    MLPotential.registerImplFactory("test-link-spring", SpringFactory())
    topology, positions, mm_system, region, _ = dipeptide_region()
    potential = MLPotential("test-link-spring")
    mixed = potential.createMixedSystem(topology, mm_system, region)
    lam = potential.createMixedSystem(topology, mm_system, region, interpolate=True)
    e_mm, _ = ps.openmm_energy_forces(mm_system, positions)
    e_mixed, f_mixed = energy_forces(mixed, positions)
    e0, _, d0 = energy_forces(lam, positions, parameters={"lambda_interpolate": 0.0})
    e1, f1, _ = energy_forces(lam, positions, parameters={"lambda_interpolate": 1.0})
    assert e0 == pytest.approx(e_mm, rel=1e-10)  # lambda 0: the force field, every removed term back
    assert e1 == pytest.approx(e_mixed, rel=1e-10)
    np.testing.assert_allclose(f1, f_mixed, rtol=1e-9, atol=1e-9)
    assert d0["lambda_interpolate"] == pytest.approx(e_mixed - e_mm, rel=1e-8)  # linear: dE/dlambda = E1 - E0


def test_link_atom_distances_and_errors():
    MLPotential.registerImplFactory("test-link-spring", SpringFactory())
    topology, positions, mm_system, region, named = dipeptide_region()
    potential = MLPotential("test-link-spring")
    n_ala, c_ace = named[("ALA", "N")], named[("ACE", "C")]
    for distance in (0.1 * unit.nanometer, 1.0 * unit.angstrom):
        mixed = potential.createMixedSystem(topology, mm_system, region, forceGroup=1,
                                            linkAtomDistances=[(c_ace, n_ala, distance)])  # either order
        e_ml, _ = energy_forces(mixed, positions, groups={1})
        caps = hand_caps(positions, named)
        x, y = positions[n_ala], positions[c_ace]
        caps[0] = x + 0.1 * (y - x) / np.linalg.norm(y - x)
        assert e_ml == pytest.approx(2.5 * ((positions[region] ** 2).sum() + (caps ** 2).sum()), rel=1e-12)
    # an MM atom bonded to two region atoms would get two caps in one place
    no_ca = [i for i in region if i != named[("ALA", "CA")]]
    with pytest.raises(ValueError, match="bonded twice to MM atom"):
        potential.createMixedSystem(topology, mm_system, no_ca)
    with pytest.raises(ValueError, match="linkAtomDistances entries are"):
        potential.createMixedSystem(topology, mm_system, region, linkAtomDistances=[(c_ace, n_ala)])
    with pytest.raises(ValueError, match="must be positive"):
        potential.createMixedSystem(topology, mm_system, region, linkAtomDistances=[(c_ace, n_ala, -0.1)])


def test_custom_nonbonded_gets_exclusions_for_caps():
    """A CustomNonbondedForce gives a cap zero parameters and an exclusion with every particle (its expression
    would otherwise see the cap); the NonbondedForce gets the same exceptions, keeping the exclusion sets equal."""
    MLPotential.registerImplFactory("test-link-spring", SpringFactory())
    topology, positions, mm_system, region, _ = dipeptide_region()
    system = openmm.XmlSerializer.clone(mm_system)
    custom = openmm.CustomNonbondedForce("1/(r+s1+s2)")
    custom.addPerParticleParameter("s")
    for i in range(system.getNumParticles()):
        custom.addParticle([0.1])
    custom.setForceGroup(5)
    system.addForce(custom)
    mixed = MLPotential("test-link-spring").createMixedSystem(topology, system, region, forceGroup=1)
    n = topology.getNumAtoms()
    force = next(f for f in mixed.getForces() if isinstance(f, openmm.CustomNonbondedForce))
    excluded = {tuple(sorted(force.getExclusionParticles(i))) for i in range(force.getNumExclusions())}
    assert all((j, cap) in excluded for cap in (n, n + 1) for j in range(cap))
    nonbonded = next(f for f in mixed.getForces() if isinstance(f, openmm.NonbondedForce))
    exceptions = {tuple(sorted(nonbonded.getExceptionParameters(i)[:2])) for i in range(nonbonded.getNumExceptions())}
    assert all((j, cap) in exceptions for cap in (n, n + 1) for j in range(cap))
    # the caps add nothing: the custom energy is the original's with only the region's own pairs excluded
    reference = openmm.XmlSerializer.clone(custom)
    for p in range(len(region)):
        for q in range(p):
            reference.addExclusion(region[p], region[q])
    alone = openmm.System()
    for i in range(n):
        alone.addParticle(1.0)
    alone.addForce(reference)
    e_ref = ps.openmm_energy_forces(alone, positions)[0]
    assert energy_forces(mixed, positions, groups={5})[0] == pytest.approx(e_ref, rel=1e-12)


def test_system_with_virtual_sites():
    """A force field with virtual sites (TIP4P-Ew's M sites): the mixed System keeps them (create_mlmm_system used to
    hand the input's sites to the new System, which OpenMM refuses: "does not own its corresponding OpenMM object")."""
    MLPotential.registerImplFactory("test-link-spring", SpringFactory())
    topology = openmm.app.Topology()
    chain = topology.addChain()
    positions = []
    for k in range(2):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", openmm.app.element.oxygen, residue)
        for name in ("H1", "H2"):
            topology.addBond(o, topology.addAtom(name, openmm.app.element.hydrogen, residue))
        base = np.array([0.31 * k, 0.02 * k, 0.0])
        positions += [base, base + [0.0957, 0.0, 0.0], base + [-0.024, 0.0927, 0.0]]
    forcefield = openmm.app.ForceField("amber14/tip4pew.xml")
    modeller = openmm.app.Modeller(topology, np.array(positions) * unit.nanometer)
    modeller.addExtraParticles(forcefield)
    system = forcefield.createSystem(modeller.topology, nonbondedMethod=openmm.app.NoCutoff, constraints=None,
                                     rigidWater=False)
    positions = np.array(modeller.positions.value_in_unit(unit.nanometer))
    sites = [i for i in range(system.getNumParticles()) if system.isVirtualSite(i)]
    assert len(sites) == 2
    water0 = [a.index for a in modeller.topology.atoms() if a.residue.index == 0 and a.element is not None]
    mixed = MLPotential("test-link-spring").createMixedSystem(modeller.topology, system, water0, forceGroup=1)
    assert [i for i in range(mixed.getNumParticles()) if mixed.isVirtualSite(i)] == sites
    # the MM part lost exactly water 0's bond and angle terms (its internal pairs are force-field exclusions)
    internal = openmm.System()
    for i in range(system.getNumParticles()):
        internal.addParticle(1.0)
    bonds, angles = openmm.HarmonicBondForce(), openmm.HarmonicAngleForce()
    for force in system.getForces():
        if isinstance(force, openmm.HarmonicBondForce):
            for i in range(force.getNumBonds()):
                p, q, r0, k = force.getBondParameters(i)
                if p in water0 and q in water0:
                    bonds.addBond(p, q, r0, k)
        elif isinstance(force, openmm.HarmonicAngleForce):
            for i in range(force.getNumAngles()):
                p, q, s, theta, k = force.getAngleParameters(i)
                if {p, q, s} <= set(water0):
                    angles.addAngle(p, q, s, theta, k)
    internal.addForce(bonds)
    internal.addForce(angles)
    e_internal = energy_forces(internal, positions)[0]
    e_mm = energy_forces(system, positions)[0]
    assert energy_forces(mixed, positions, groups={0})[0] == pytest.approx(e_mm - e_internal, rel=1e-9)
    assert energy_forces(mixed, positions, groups={1})[0] == pytest.approx(2.5 * (positions[water0] ** 2).sum(),
                                                                            rel=1e-12)
