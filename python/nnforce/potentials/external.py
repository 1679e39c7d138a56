"""FeNNix (fennol, JAX), Orb (orb-models) and DeePMD (deepmd-kit): adapters through each package's documented Python
API, run as a Python callback (``openmm.PythonForce``), as openmm-ml 1.8 runs them.

Why a callback and not NNForce's C++ step: FeNNix models are JAX programs (no libtorch graph exists); Orb builds its
graph in Python (``orb_models.forcefield`` featurisation, ASE calculator); DeePMD's frozen models run through
deepmd-kit's own inference (``deepmd.infer.DeepPot``, TensorFlow or PyTorch backend). A package that registers its own
``openmmml.potentials`` entry point wins over these (see _potential._load_entry_points).

Without the package each name raises one ImportError that names the package and the pip line. The packages install
from PyPI but are not in nnforce's requirements: orb-models 0.5.5 pins ``filelock`` below torch's (it would downgrade
the shared venv's 4.3.2 to 3.32.7) and pulls cloud SDKs (boto3, google-cloud-storage), fennol needs JAX and flax,
deepmd-kit is large; docs/migrating.md says which adapters are tested.

Units: the packages' eV and Angstrom (FeNNix: the model's own energy unit, converted by its ASE calculator; DeePMD:
openmm-ml's ``coordinatesCoefficient``/``forceCoefficient``/``energyCoefficient``, same defaults).
"""
import numpy as np
import openmm
import openmm.unit as unit

from ..units import ANGSTROM_PER_NM, KJ_MOL_PER_EV

PIP = {
    "fennix": "pip install fennol jax",
    "orb": "pip install orb-models torch==2.13.0 openmm==8.6.1",
    "deepmd": "pip install deepmd-kit torch==2.13.0 openmm==8.6.1",
}

#: openmm-ml's FeNNix pretrained names: the .fnx files of the FeNNol-PMC repository
FENNIX_PRETRAINED = ("fennix-bio1-small", "fennix-bio1-medium", "fennix-bio1-small-finetune-ions",
                     "fennix-bio1-medium-finetune-ions")
ORB_PRETRAINED = ("orb-v3-conservative-inf-omat", "orb-v3-conservative-omol")


def _require(module, family, what):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"the {what} potentials need the {module.split('.')[0]} package, which failed to import "
                          f"({error}); install it with `{PIP[family]}`") from error


def _chosen_atoms(topology, atoms, family):
    chosen = list(topology.atoms())
    if atoms is not None:
        chosen = [chosen[i] for i in atoms]
    missing = [a.index for a in chosen if a.element is None]
    if missing:
        raise ValueError(f"atoms {missing[:5]} have no element; the {family} potential needs an element for every "
                         "atom it describes")
    return chosen


def _add_callback(system, compute, atoms, forceGroup, periodic, name):
    force = openmm.PythonForce(compute)
    force.setForceGroup(forceGroup)
    force.setUsesPeriodicBoundaryConditions(bool(periodic))
    if atoms is not None:
        force.setParticles(list(atoms))
    force.setName(f"MLPotential {name}")
    system.addForce(force)


def _check_unknown(args, allowed, name):
    unknown = sorted(set(args) - set(allowed) - {"precision", "device", "mlLongRange", "platformProperties",
                                                 "modelFormat"})
    if unknown:
        raise ValueError(f"the {name!r} potential does not take {', '.join(unknown)}")


class _ASECallback:
    """Positions (and box) from OpenMM into an ase.Atoms with a calculator; energy and forces back in OpenMM units.
    ``PythonForce.setParticles`` hands it only the potential's atoms."""

    def __init__(self, atoms, periodic):
        self.atoms = atoms
        self.periodic = periodic

    def __call__(self, state):
        positions = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
        self.atoms.set_positions(np.asarray(positions) * ANGSTROM_PER_NM)
        if self.periodic:
            box = state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer)
            self.atoms.set_cell(np.asarray(box) * ANGSTROM_PER_NM)
        energy = float(self.atoms.get_potential_energy()) * KJ_MOL_PER_EV
        forces = np.asarray(self.atoms.get_forces(), dtype=np.float64) * (KJ_MOL_PER_EV * ANGSTROM_PER_NM)
        return energy, forces


class FeNNixPotential:
    """FeNNix models (fennol): ``MLPotential('fennix', modelPath='model.fnx')``, or a pretrained name with the
    ``.fnx`` file downloaded from FeNNol-PMC (https://github.com/FeNNol-tools/FeNNol-PMC) as ``modelPath``.

    Runs fennol's ``FENNIXCalculator`` (JAX) from a callback; ``charge`` reaches it as the atoms' total charge;
    ``precision='double'`` enables JAX float64 (default single, as openmm-ml)."""

    ml_long_range = None  # depends on the model's terms: periodic Systems need mlLongRange

    def __init__(self, name, modelPath=None):
        self.name = name
        if modelPath is None:
            where = (f"download {name}.fnx from the FeNNol-PMC repository (https://github.com/FeNNol-tools/FeNNol-PMC,"
                     " FENNIX-BIO1) and pass it as modelPath (nnforce downloads nothing for FeNNix)"
                     if name in FENNIX_PRETRAINED else "pass modelPath='model.fnx'")
            raise ValueError(f"the {name!r} potential needs the model file: {where}")
        self.model_path = str(modelPath)
        _require("fennol", "fennix", "FeNNix")

    def add_forces(self, topology, system, atoms, forceGroup, periodic=False, charge=0, precision=None,
                   use_atom_padding=None, graph_config=None, **args):
        _check_unknown(args, ("charge",), self.name)
        import ase

        _require("fennol", "fennix", "FeNNix")
        from fennol.ase import FENNIXCalculator

        if precision not in (None, "single", "double"):
            raise ValueError(f"precision must be 'single' or 'double', got {precision!r}")
        options = {key: value for key, value in (("use_atom_padding", use_atom_padding),
                                                 ("graph_config", graph_config)) if value is not None}
        calculator = FENNIXCalculator(self.model_path, use_float64=precision == "double", **options)
        chosen = _chosen_atoms(topology, atoms, "FeNNix")
        ase_atoms = ase.Atoms(numbers=[a.element.atomic_number for a in chosen], pbc=bool(periodic))
        charges = np.zeros(len(chosen))
        charges[0] = float(charge)  # FENNIXCalculator reads the total charge as the sum of the initial charges
        ase_atoms.set_initial_charges(charges)
        ase_atoms.calc = calculator
        _add_callback(system, _ASECallback(ase_atoms, periodic), atoms, forceGroup, periodic, self.name)


class OrbPotential:
    """Orb-v3 pretrained models (orb-models): ``MLPotential('orb-v3-conservative-omol')``.

    Loads ``orb_models.forcefield.pretrained.ORB_PRETRAINED_MODELS[name]`` (downloaded and cached by orb-models on
    first use) with precision 'float32-highest' (as openmm-ml) and runs its ``ORBCalculator`` from a callback;
    ``charge`` and ``multiplicity`` reach models that read them (``atoms.info['charge']``/``['spin']``)."""

    ml_long_range = False

    def __init__(self, name):
        self.name = name
        _require("orb_models", "orb", "Orb")

    def add_forces(self, topology, system, atoms, forceGroup, periodic=False, charge=0, multiplicity=1, **args):
        _check_unknown(args, ("charge", "multiplicity"), self.name)
        import ase

        pretrained = _require("orb_models.forcefield.pretrained", "orb", "Orb")
        from orb_models.forcefield.calculator import ORBCalculator

        try:
            model = pretrained.ORB_PRETRAINED_MODELS[self.name](device="cpu", precision="float32-highest")
        except Exception as error:  # noqa: BLE001 - offline: one clear line
            raise RuntimeError(f"could not load the Orb model {self.name!r} with orb_models' pretrained loader "
                               f"({type(error).__name__}: {error}); it is downloaded on first use") from error
        if isinstance(model, tuple):  # older orb-models return (model, adapter)
            model = model[0]
        chosen = _chosen_atoms(topology, atoms, "Orb")
        ase_atoms = ase.Atoms(numbers=[a.element.atomic_number for a in chosen], pbc=bool(periodic))
        ase_atoms.info["charge"] = charge
        ase_atoms.info["spin"] = multiplicity
        ase_atoms.calc = ORBCalculator(model, device="cpu")
        _add_callback(system, _ASECallback(ase_atoms, periodic), atoms, forceGroup, periodic, self.name)


class DeePMDPotential:
    """DeePMD-kit models: ``MLPotential('deepmd', model='graph.pb')`` (a frozen model of any deepmd-kit backend).

    openmm-ml's arguments and defaults: ``model`` (the file), ``coordinatesCoefficient=10.0`` (nm -> the model's
    length unit), ``forceCoefficient=964.8792534459`` and ``energyCoefficient=96.48792534459`` (the model's units ->
    kJ/mol/nm and kJ/mol; openmm-ml's values, those of the OpenMM DeePMD plugin). Runs ``deepmd.infer.DeepPot``'s
    ``eval(coords, cells, atom_types)`` from a callback; atom types follow the model's type map (element symbols)."""

    ml_long_range = None

    def __init__(self, name, model=None, coordinatesCoefficient=10.0, forceCoefficient=964.8792534459,
                 energyCoefficient=96.48792534459):
        if model is None:
            raise ValueError("the 'deepmd' potential needs model='graph.pb' (a frozen DeePMD-kit model file)")
        self.name = name
        self.model_path = str(model)
        self.coefficients = (float(coordinatesCoefficient), float(forceCoefficient), float(energyCoefficient))
        _require("deepmd", "deepmd", "DeePMD")

    def add_forces(self, topology, system, atoms, forceGroup, periodic=False, **args):
        _check_unknown(args, ("charge",), self.name)
        if args.get("charge", 0):
            raise ValueError("a DeePMD model takes no total charge; use a neutral ML region")
        infer = _require("deepmd.infer", "deepmd", "DeePMD")
        potential = infer.DeepPot(self.model_path)
        type_map = list(potential.get_type_map())
        chosen = _chosen_atoms(topology, atoms, "DeePMD")
        symbols = [a.element.symbol for a in chosen]
        unknown = sorted(set(symbols) - set(type_map))
        if unknown:
            raise ValueError(f"the DeePMD model's type map {type_map} has no {', '.join(unknown)}; use a model trained "
                             "for these elements")
        types = np.array([type_map.index(s) for s in symbols], dtype=np.int32)
        _add_callback(system, _DeePMDCallback(potential, types, periodic, self.coefficients), atoms, forceGroup,
                      periodic, self.name)


class _DeePMDCallback:
    def __init__(self, potential, types, periodic, coefficients):
        self.potential, self.types, self.periodic = potential, types, periodic
        self.length, self.force, self.energy = coefficients

    def __call__(self, state):
        positions = np.asarray(state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)) * self.length
        cell = None
        if self.periodic:
            cell = (np.asarray(state.getPeriodicBoxVectors(asNumpy=True).value_in_unit(unit.nanometer))
                    * self.length).reshape(1, 9)
        energy, forces, _ = self.potential.eval(positions.reshape(1, -1), cell, self.types)[:3]
        return float(np.asarray(energy).sum()) * self.energy, \
            np.asarray(forces, dtype=np.float64).reshape(-1, 3) * self.force
