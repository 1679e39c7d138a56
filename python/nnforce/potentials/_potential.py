"""``MLPotential``: openmm-ml's interface, with Systems whose ML part is an NNForce (no Python in the step).

Each family (MACE, TorchANI, TorchMD-Net, NequIP/Allegro, nnforce's own) is a class with

* ``supports_periodic`` / ``supports_charge`` (bool), ``elements`` (atomic numbers it knows, or None),
* ``cutoff_nm`` (the plugin neighbor list it wants, or None for a model that finds its own pairs),
* ``module(atomic_numbers, charge=..., precision=..., **options)`` -> a TorchScript module following the contract.

Everything that can be wrong with the request (unknown name, wrong file, unknown element, a charge the model
cannot take, periodic boxes it cannot do) is a ValueError raised here, before any Context exists.
"""
import importlib

import openmm
import openmm.unit as unit

#: name -> (module, class); the names follow openmm-ml where the family exists there
_FAMILIES = {
    "mace": ("mace", "MACEPotential"),
    "ani1x": ("ani", "TorchANIPotential"),
    "ani2x": ("ani", "TorchANIPotential"),
    "ani1ccx": ("ani", "TorchANIPotential"),
    "torchani": ("ani", "TorchANIPotential"),
    "nnforce-ani1x": ("native", "NNForceANI1xPotential"),
    "torchmdnet": ("torchmdnet", "TorchMDNetPotential"),
    "nequip": ("nequip", "NequIPPotential"),
    "allegro": ("nequip", "NequIPPotential"),
    "nnforce": ("native", "NativePotential"),
}


class MLPotential:
    """A machine-learned potential by name, as in openmm-ml: ``MLPotential("mace", modelPath="file.model")``.

    Parameters
    ----------
    name : str
        One of :meth:`knownNames`: ``"mace"``, ``"ani1x"`` (torchani's ANI-1x from the networks in the torchani
        wheel), ``"ani2x"``/``"ani1ccx"`` (torchani's own, which it downloads), ``"torchani"`` (any torchani model
        object, ``model=``), ``"nnforce-ani1x"`` (nnforce's own ANI-1x reader), ``"torchmdnet"``, ``"nequip"``,
        ``"allegro"``, ``"nnforce"`` (any TorchScript file following the model contract).
    **args
        Family options, e.g. ``modelPath`` (a model file), ``model`` (a model object), ``lengthScale`` and
        ``energyScale`` (TorchMD-Net, NequIP), ``head`` (MACE). See docs/potentials.md.
    """

    def __init__(self, name, **args):
        if name not in _FAMILIES:
            raise ValueError(f"unknown potential name {name!r}; the known names are {', '.join(self.knownNames())}")
        module_name, class_name = _FAMILIES[name]
        module = importlib.import_module(f"{__package__}.{module_name}")
        self.name = name
        self._impl = getattr(module, class_name)(name, **args)

    @staticmethod
    def knownNames():
        """The potential names MLPotential accepts."""
        return sorted(_FAMILIES)

    def createSystem(self, topology, removeCMMotion=True, **args):
        """A System in which this potential computes every interaction of ``topology``.

        Parameters
        ----------
        topology : openmm.app.Topology
            Periodic (``topology.getPeriodicBoxVectors()`` set) or not.
        removeCMMotion : bool
            Add a CMMotionRemover.
        **args
            ``charge`` (total charge, models that take it), ``precision`` (``"single"``/``"double"``, default the
            model's own dtype), ``forceGroup``, ``platformProperties`` (extra NNForce properties), and family options.

        Returns
        -------
        openmm.System
        """
        from ..force import build_ml_system

        force = self.createForce(topology, None, periodic=topology.getPeriodicBoxVectors() is not None, **args)
        system = build_ml_system(force, topology)
        if removeCMMotion:
            system.addForce(openmm.CMMotionRemover())
        return system

    def createMixedSystem(self, topology, system, atoms, removeConstraints=True, forceGroup=0, interpolate=False,
                          embedding="mechanical", **args):
        """A copy of ``system`` in which this potential describes the interactions inside ``atoms``.

        Uses :func:`nnforce.mlmm.create_mlmm_system` (mechanical embedding): bonded terms and nonbonded pairs
        entirely inside the ML region are removed, everything else stays with the force field. With
        ``interpolate=True`` the global parameter ``lambda_interpolate`` (1 = ML, 0 = MM) interpolates the region's
        energy, and its exact derivative is available.

        Parameters
        ----------
        topology : openmm.app.Topology
        system : openmm.System
            The force-field System of ``topology`` (not modified).
        atoms : iterable of int
            Indices of the ML atoms.
        removeConstraints : bool
            Drop constraints between two ML atoms (create_mlmm_system refuses them otherwise).
        forceGroup : int
            Force group of the ML force.
        interpolate : bool
            Add ``lambda_interpolate``.
        embedding : str
            Only ``"mechanical"``.
        **args
            As for :meth:`createSystem`; ``charge`` defaults to the ML region's net MM charge, rounded.

        Returns
        -------
        openmm.System
        """
        from .. import mlmm

        if embedding != "mechanical":
            raise ValueError(f"embedding {embedding!r} is not supported; nnforce's ML/MM uses 'mechanical' embedding")
        from ..contract import validate_atoms

        atoms = validate_atoms(atoms, system.getNumParticles(), "atoms")  # before any MM force reads an index
        if "charge" not in args:
            args["charge"] = _region_charge(system, atoms)
        periodic = topology.getPeriodicBoxVectors() is not None or system.usesPeriodicBoundaryConditions()
        box = system.getDefaultPeriodicBoxVectors() if periodic else None
        force = self.createForce(topology, atoms, periodic=periodic, box=box, forceGroup=forceGroup, **args)
        source = system
        if removeConstraints:
            source = mlmm._copy_system(system)
            ml = set(atoms)
            for index in reversed(range(source.getNumConstraints())):
                p, q, _ = source.getConstraintParameters(index)
                if p in ml and q in ml:
                    source.removeConstraint(index)
        return mlmm.create_mlmm_system(source, topology, atoms, force, lambda_ml=1.0 if interpolate else None,
                                       lambda_name="lambda_interpolate")

    def createForce(self, topology, atoms=None, periodic=None, box=None, charge=0, precision=None, forceGroup=0,
                    platformProperties=None, **options):
        """The NNForce for ``atoms`` of ``topology`` (all atoms when None), validated before any Context exists.

        Returns
        -------
        nnforce.NNForce
        """
        impl = self._impl
        all_atoms = list(topology.atoms())
        chosen = all_atoms if atoms is None else [all_atoms[a] for a in atoms]
        missing = [a.index for a in chosen if a.element is None]
        if missing:
            raise ValueError(f"atoms {missing[:5]} have no element (virtual sites or unknown residues); an ML "
                             "potential needs an element for every atom it describes")
        numbers = [a.element.atomic_number for a in chosen]
        if periodic is None:
            periodic = topology.getPeriodicBoxVectors() is not None
        if periodic and not impl.supports_periodic:
            raise ValueError(f"the {self.name!r} model cannot handle periodic boundary conditions (it has no box "
                             "input), but the topology/System is periodic; use a vacuum topology "
                             "(topology.setPeriodicBoxVectors(None)) or a model that supports periodic systems")
        charge = _as_charge(charge)
        if charge != 0 and not impl.supports_charge:
            raise ValueError(f"the system has total charge {charge:g} but the {self.name!r} model takes no charge input "
                             "and would treat it as neutral; use a model that takes the total charge, or a neutral "
                             "ML region")
        if box is None and periodic:
            box = topology.getPeriodicBoxVectors()
        cutoff = impl.cutoff_nm
        if periodic and cutoff is not None:
            _check_box(box, cutoff, self.name)
        from . import _common

        with _common.builtin_torch_functions():
            module = impl.module(numbers, charge=charge, precision=precision, periodic=periodic, **options)
        from ..force import build_nnforce

        properties = {"precision": "double" if _module_dtype(module) == "float64" else "single"}
        properties.update({key: str(value) for key, value in (platformProperties or {}).items()})
        force = build_nnforce(module, topology, atoms, neighbor_cutoff_nm=cutoff, properties=properties,
                              periodic=bool(periodic))
        force.setForceGroup(forceGroup)
        force.setName(f"MLPotential {self.name}")
        return force


def _as_charge(charge):
    value = charge.value_in_unit(unit.elementary_charge) if unit.is_quantity(charge) else charge
    value = float(value)
    if abs(value - round(value)) > 1e-6:
        raise ValueError(f"charge must be a whole number of elementary charges, got {value}")
    return int(round(value))


def _region_charge(system, atoms):
    """The net charge of ``atoms`` in the System's NonbondedForce, rounded (0 without one)."""
    for force in system.getForces():
        if isinstance(force, openmm.NonbondedForce):
            total = sum(force.getParticleParameters(a)[0].value_in_unit(unit.elementary_charge) for a in atoms)
            return int(round(total))
    return 0


def _check_box(box, cutoff_nm, name):
    vectors = _box_rows(box)
    heights = (vectors[0][0], vectors[1][1], vectors[2][2])  # OpenMM's reduced (lower-triangular) form
    if 2.0 * cutoff_nm > min(heights):
        raise ValueError(f"the {name!r} model's cutoff {cutoff_nm:g} nm is more than half the smallest periodic box "
                         f"height {min(heights):g} nm; use a larger box")


def _box_rows(box):
    if unit.is_quantity(box):
        box = box.value_in_unit(unit.nanometer)
    rows = []
    for vec in box:
        if unit.is_quantity(vec):
            vec = vec.value_in_unit(unit.nanometer)
        rows.append([float(vec[0]), float(vec[1]), float(vec[2])])
    return rows


def _module_dtype(module):
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            return str(tensor.dtype).replace("torch.", "")
    return "float32"
