"""nnforce.compat.openmmml: openmm-ml 1.8's module layout (``openmmml.models.*potential``) over nnforce."""
import sys

import numpy as np
import openmm
import openmm.app as app
import openmm.unit as unit
import pytest

import nnforce.compat.openmmml as compat


@pytest.fixture
def installed():
    saved = {k: v for k, v in sys.modules.items() if k == "openmmml" or k.startswith("openmmml.")}
    compat.install()
    yield sys.modules["openmmml"]
    for key in [k for k in sys.modules if k == "openmmml" or k.startswith("openmmml.")]:
        del sys.modules[key]
    sys.modules.update(saved)


def _two_copper_atoms():
    topology = app.Topology()
    residue = topology.addResidue("CU", topology.addChain())
    for _ in range(2):
        topology.addAtom("Cu", app.Element.getBySymbol("Cu"), residue)
    return topology, np.array([[0.0, 0.0, 0.0], [0.25, 0.03, 0.01]])


def test_openmm_ml_module_paths_give_nnforce_classes(installed):
    from openmmml.mlpotential import MLPotentialImpl
    from openmmml.models.aimnet2potential import AIMNet2PotentialImpl
    from openmmml.models.macepotential import MACEPotentialImplFactory

    import nnforce

    assert installed is compat
    assert sys.modules["openmmml.models.aimnet2potential"] is compat.models.aimnet2potential  # no second copy
    assert installed.MLPotential is nnforce.MLPotential
    assert issubclass(AIMNet2PotentialImpl, MLPotentialImpl)
    assert AIMNet2PotentialImpl.__name__ == "AIMNet2PotentialImpl"
    assert MACEPotentialImplFactory().createImpl("mace-off23-small", None).name == "mace-off23-small"


def test_unknown_model_names_fail_in_addForces_as_in_openmm_ml(installed):
    from openmmml.models.aimnet2potential import AIMNet2PotentialImpl
    from openmmml.models.macepotential import MACEPotentialImpl

    topology, _ = _two_copper_atoms()
    for impl in (AIMNet2PotentialImpl("aimnet2-b973c"), AIMNet2PotentialImpl("not-a-model"),
                 MACEPotentialImpl("mace-off99", None)):
        with pytest.raises(ValueError, match="Unsupported (AIMNet2|MACE) model"):
            impl.addForces(topology, openmm.System(), None, 0)


def test_impl_adds_the_nnforce_family_force(installed):
    """The ase impl through openmm-ml's module path: the System's energy equals ASE's own EMT energy."""
    ase = pytest.importorskip("ase")
    from ase.calculators.emt import EMT
    from openmmml.models.asepotential import ASEPotentialImplFactory

    topology, positions_nm = _two_copper_atoms()
    system = openmm.System()
    for _ in range(2):
        system.addParticle(63.5)
    ASEPotentialImplFactory().createImpl("ase").addForces(topology, system, None, 0, calculator=EMT())
    context = openmm.Context(system, openmm.VerletIntegrator(0.001), openmm.Platform.getPlatform("Reference"))
    context.setPositions(positions_nm * unit.nanometer)
    energy = context.getState(getEnergy=True).getPotentialEnergy().value_in_unit(unit.kilojoule_per_mole)
    atoms = ase.Atoms("Cu2", positions=positions_nm * 10.0, calculator=EMT())
    expected = atoms.get_potential_energy() * 96.48533212331001  # eV -> kJ/mol
    assert energy == pytest.approx(expected, rel=1e-6)


def test_install_refuses_when_openmm_ml_is_already_imported():
    import types

    saved = sys.modules.get("openmmml")
    sys.modules["openmmml"] = types.ModuleType("openmmml")
    try:
        with pytest.raises(ValueError, match="already imported"):
            compat.install()
    finally:
        if saved is None:
            del sys.modules["openmmml"]
        else:
            sys.modules["openmmml"] = saved


def test_one_line_shim_module_becomes_the_compat_package(tmp_path):
    """A file openmmml/__init__.py whose one line calls install(): importing it gives the compat package."""
    import subprocess

    shim = tmp_path / "openmmml"
    shim.mkdir()
    (shim / "__init__.py").write_text("import nnforce.compat.openmmml; nnforce.compat.openmmml.install()\n")
    code = ("import openmmml, nnforce, nnforce.compat.openmmml as c\n"
            "from openmmml.models.anipotential import ANIPotentialImpl\n"
            "assert openmmml is c and openmmml.MLPotential is nnforce.MLPotential\n"
            "print(ANIPotentialImpl.__module__)\n")
    import os

    import nnforce

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(nnforce.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), package_parent]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "nnforce.compat.openmmml.models.anipotential"
