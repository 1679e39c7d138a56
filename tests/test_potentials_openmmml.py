"""openmm-ml's interface on nnforce.MLPotential (issue 23): the top-level name, the extension API (registerImplFactory,
MLPotentialImplFactory/MLPotentialImpl, the ``openmmml.potentials`` entry-point group), the ``ase`` potential,
createMixedSystem's removeConstraints/mlLongRange/embedding arguments, KeyError for unknown names. Energies are
checked against independent computations (OpenMM's own forces, ASE's calculator)."""
import os
import sys

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest

import nnforce
from nnforce.potentials import MLPotential, MLPotentialImpl, MLPotentialImplFactory
from nnforce.potentials import _potential
from nnforce.units import KJ_MOL_PER_EV

ase = pytest.importorskip("ase")  # installed with the test requirements; importorskip keeps the failure readable


def two_waters(rigid, periodic=False):
    """Two TIP3P waters (force field System with or without constraints) and their positions (nm)."""
    topology = app.Topology()
    chain = topology.addChain()
    positions = []
    for k in range(2):
        residue = topology.addResidue("HOH", chain)
        o = topology.addAtom("O", app.element.oxygen, residue)
        h1 = topology.addAtom("H1", app.element.hydrogen, residue)
        h2 = topology.addAtom("H2", app.element.hydrogen, residue)
        topology.addBond(o, h1)
        topology.addBond(o, h2)
        base = np.array([0.31 * k, 0.02 * k, 0.0])
        positions += [base, base + [0.0957, 0.0, 0.0], base + [-0.024, 0.0927, 0.0]]
    if periodic:
        topology.setPeriodicBoxVectors(np.eye(3) * 2.0 * unit.nanometer)
    forcefield = app.ForceField("amber14/tip3pfb.xml")
    system = forcefield.createSystem(topology, nonbondedMethod=app.PME if periodic else app.NoCutoff,
                                     constraints=None, rigidWater=rigid, nonbondedCutoff=0.9 * unit.nanometer)
    return topology, system, np.array(positions)


def energy(system, positions, parameters=None, groups=-1):
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatformByName("Reference"))
    context.setPositions(positions * unit.nanometer)
    for name, value in (parameters or {}).items():
        context.setParameter(name, value)
    state = context.getState(getEnergy=True, getForces=True, groups=groups)
    return (state.getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole),
            state.getForces(asNumpy=True).value_in_unit(unit.kilojoule_per_mole / unit.nanometer))


class SpringImpl(MLPotentialImpl):
    """A third-party potential written against openmm-ml's API: k |x|^2 on each of its atoms."""

    def __init__(self, k):
        self.k = k

    def addForces(self, topology, system, atoms, forceGroup, **args):
        force = openmm.CustomExternalForce("k*(x*x+y*y+z*z)")
        force.addGlobalParameter("k", self.k)
        for atom in (range(topology.getNumAtoms()) if atoms is None else atoms):
            force.addParticle(atom, [])
        force.setForceGroup(forceGroup)
        system.addForce(force)

    def getMLLongRange(self):
        return False


class SpringFactory(MLPotentialImplFactory):
    def createImpl(self, name, k=2.0, **args):
        return SpringImpl(k)


def test_top_level_name_and_unknown_names():
    assert nnforce.MLPotential is MLPotential
    with pytest.raises(KeyError, match="unknown potential name 'no-such-model'"):
        MLPotential("no-such-model")
    with pytest.raises(ValueError):  # also a ValueError, as every other bad request of MLPotential
        MLPotential("no-such-model")
    for name in ("mace-off23-small", "mace-omol-0-extra-large", "aceff-2.0", "ani2x", "ase", "aimnet2", "fennix"):
        assert name in MLPotential.knownNames()


def test_registered_impl_runs_in_create_system_and_mechanical_embedding():
    MLPotential.registerImplFactory("test-spring", SpringFactory())
    topology, mm_system, positions = two_waters(rigid=False)
    potential = MLPotential("test-spring", k=3.0)
    assert potential.getSupportedEmbeddings() == ["mechanical"]
    e_ml, f_ml = energy(potential.createSystem(topology), positions)
    assert e_ml == pytest.approx(3.0 * (positions ** 2).sum(), rel=1e-12)
    np.testing.assert_allclose(f_ml, -6.0 * positions, rtol=1e-12)
    # mechanical embedding of water 0: the MM System without water 0's internal terms, plus the spring on water 0
    mixed = potential.createMixedSystem(topology, mm_system, [0, 1, 2])
    e_mm, _ = energy(mm_system, positions)
    ff_system = app.ForceField("amber14/tip3pfb.xml").createSystem(
        _first_water(topology), nonbondedMethod=app.NoCutoff, constraints=None, rigidWater=False)
    e_w0, _ = energy(ff_system, positions[:3])
    e_mixed, _ = energy(mixed, positions)
    assert e_mixed == pytest.approx(e_mm - e_w0 + 3.0 * (positions[:3] ** 2).sum(), rel=1e-9)
    interp = potential.createMixedSystem(topology, mm_system, [0, 1, 2], interpolate=True)
    assert energy(interp, positions, {"lambda_interpolate": 1.0})[0] == pytest.approx(e_mixed, rel=1e-9)
    assert energy(interp, positions, {"lambda_interpolate": 0.0})[0] == pytest.approx(e_mm, rel=1e-9)
    with pytest.raises(KeyError, match="unknown embedding 'electrostatic'"):
        potential.createMixedSystem(topology, mm_system, [0, 1, 2], embedding="electrostatic")


def _first_water(topology):
    modeller = app.Modeller(topology, [openmm.Vec3(0, 0, 0)] * topology.getNumAtoms())
    modeller.delete(list(topology.residues())[1:])
    return modeller.topology


def test_remove_constraints_false_keeps_them():
    MLPotential.registerImplFactory("test-spring", SpringFactory())
    topology, mm_system, _ = two_waters(rigid=True)
    assert mm_system.getNumConstraints() == 6
    potential = MLPotential("test-spring")
    kept = potential.createMixedSystem(topology, mm_system, [0, 1, 2], removeConstraints=False)
    removed = potential.createMixedSystem(topology, mm_system, [0, 1, 2])
    assert kept.getNumConstraints() == 6
    assert removed.getNumConstraints() == 3
    assert all(kept.getConstraintParameters(i)[0] >= 0 for i in range(6))
    pairs = {tuple(sorted(removed.getConstraintParameters(i)[:2])) for i in range(3)}
    assert all(p >= 3 and q >= 3 for p, q in pairs)


def test_ml_long_range_rules():
    MLPotential.registerImplFactory("test-unknown-range", _UnknownRangeFactory())
    topology, mm_system, positions = two_waters(rigid=False, periodic=True)
    with pytest.raises(ValueError, match="pass mlLongRange=True or mlLongRange=False"):
        MLPotential("test-unknown-range").createMixedSystem(topology, mm_system, [0, 1, 2])
    with pytest.raises(ValueError, match="contradicts the model"):  # SpringImpl declares itself local
        MLPotential("test-spring").createMixedSystem(topology, mm_system, [0, 1, 2], mlLongRange=True)
    short = MLPotential("test-unknown-range").createMixedSystem(topology, mm_system, [0, 1, 2], mlLongRange=False)
    long = MLPotential("test-unknown-range").createMixedSystem(topology, mm_system, [0, 1, 2], mlLongRange=True)
    # the difference is the MM PME energy between water 0 and its own periodic images, subtracted
    region = openmm.System()
    for i in range(6):
        region.addParticle(1.0)
    region.setDefaultPeriodicBoxVectors(*mm_system.getDefaultPeriodicBoxVectors())
    nonbonded = next(f for f in mm_system.getForces() if isinstance(f, openmm.NonbondedForce))
    pme = openmm.NonbondedForce()
    pme.setNonbondedMethod(openmm.NonbondedForce.PME)
    pme.setCutoffDistance(nonbonded.getCutoffDistance())
    pme.setEwaldErrorTolerance(nonbonded.getEwaldErrorTolerance())
    for i in range(6):
        pme.addParticle(nonbonded.getParticleParameters(i)[0] if i < 3 else 0.0, 1.0, 0.0)
    for i, j in ((0, 1), (0, 2), (1, 2)):  # the same-image pairs are gone already: only the images remain
        pme.addException(i, j, 0.0, 1.0, 0.0)
    region.addForce(pme)
    e_region, _ = energy(region, positions)
    assert energy(short, positions)[0] - energy(long, positions)[0] == pytest.approx(e_region, rel=1e-6)


class _UnknownRangeFactory(MLPotentialImplFactory):
    def createImpl(self, name, **args):
        impl = SpringImpl(1.0)
        impl.getMLLongRange = lambda: None
        return impl


def test_entry_point_group_registers_a_package(tmp_path, monkeypatch):
    package = tmp_path / "springpkg"
    package.mkdir()
    (package / "__init__.py").write_text(
        "from nnforce.potentials import MLPotentialImplFactory\n"
        "from test_potentials_openmmml import SpringImpl\n"
        "class Factory(MLPotentialImplFactory):\n"
        "    def createImpl(self, name, **args):\n"
        "        return SpringImpl(5.0)\n")
    info = tmp_path / "springpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: springpkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[openmmml.potentials]\nspring-ep = springpkg:Factory\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(_potential, "_ENTRY_POINTS_LOADED", [])
    monkeypatch.setattr(MLPotential, "_implFactories", dict(MLPotential._implFactories))
    topology, _, positions = two_waters(rigid=False)
    e, _ = energy(MLPotential("spring-ep").createSystem(topology), positions)
    assert e == pytest.approx(5.0 * (positions ** 2).sum(), rel=1e-12)


def test_ase_potential_equals_the_calculator():
    from ase.calculators.lj import LennardJones

    topology, _, positions = two_waters(rigid=False)
    calculator = LennardJones(sigma=2.5, epsilon=0.01, rc=6.0)
    potential = MLPotential("ase")
    e, f = energy(potential.createSystem(topology, calculator=calculator), positions)
    atoms = ase.Atoms(numbers=[8, 1, 1, 8, 1, 1], positions=positions * 10.0)
    atoms.calc = LennardJones(sigma=2.5, epsilon=0.01, rc=6.0)
    assert e == pytest.approx(atoms.get_potential_energy() * KJ_MOL_PER_EV, rel=1e-12)
    np.testing.assert_allclose(f, atoms.get_forces() * KJ_MOL_PER_EV * 10.0, rtol=1e-10, atol=1e-10)
    # on a subset (mechanical embedding of water 1): the calculator sees only those atoms; the rest get no force
    topology2, mm_system, _ = two_waters(rigid=False)
    mixed = potential.createMixedSystem(topology2, mm_system, [3, 4, 5], calculator=calculator, forceGroup=2)
    e_sub, f_sub = energy(mixed, positions, groups={2})
    sub = ase.Atoms(numbers=[8, 1, 1], positions=positions[3:] * 10.0)
    sub.calc = LennardJones(sigma=2.5, epsilon=0.01, rc=6.0)
    assert e_sub == pytest.approx(sub.get_potential_energy() * KJ_MOL_PER_EV, rel=1e-12)
    assert np.abs(f_sub[:3]).max() == 0.0
    with pytest.raises(ValueError, match="needs calculator="):
        potential.createSystem(topology)


class OwnEmbeddingImpl(SpringImpl):
    """An openmm-ml 1.8-style potential with its own embedding that returns openmm-ml's info dict itself."""

    def getSupportedEmbeddings(self):
        return ["own"]

    def createMixedSystem(self, topology, system, atoms, forceGroup, interpolate, embedding, returnInfo=False,
                          **args):
        copy = openmm.XmlSerializer.clone(system)
        self.addForces(topology, copy, atoms, forceGroup)
        return dict(system=copy, topology=topology, oldToNew=[2 * i for i in range(topology.getNumAtoms())]) \
            if returnInfo else copy


class OwnEmbeddingFactory(MLPotentialImplFactory):
    def createImpl(self, name, **args):
        return OwnEmbeddingImpl(2.0)


def test_return_info_as_openmm_ml_18():
    MLPotential.registerImplFactory("test-spring", SpringFactory())
    topology, mm_system, positions = two_waters(rigid=True)
    potential = MLPotential("test-spring")
    plain = potential.createMixedSystem(topology, mm_system, [0, 1, 2])
    info = potential.createMixedSystem(topology, mm_system, [0, 1, 2], returnInfo=True)
    assert sorted(info) == ["oldToNew", "system", "topology"]
    assert info["topology"] is topology and info["oldToNew"] == list(range(6))  # no link atoms: nothing moves
    assert info["system"].getNumConstraints() == plain.getNumConstraints() == 3  # removeConstraints applies to it
    assert energy(info["system"], positions)[0] == pytest.approx(energy(plain, positions)[0], rel=1e-12)
    MLPotential.registerImplFactory("test-own", OwnEmbeddingFactory())
    own = MLPotential("test-own").createMixedSystem(topology, mm_system, [0, 1, 2], embedding="own", returnInfo=True)
    assert own["oldToNew"] == [0, 2, 4, 6, 8, 10]  # the potential's own dict is returned as it made it
    assert own["system"].getNumConstraints() == 3  # ML-ML constraints removed, as openmm-ml does on info["system"]
    e_own = energy(own["system"], positions)[0]
    assert e_own == pytest.approx(energy(mm_system, positions)[0] + 2.0 * (positions[:3] ** 2).sum(), rel=1e-9)
