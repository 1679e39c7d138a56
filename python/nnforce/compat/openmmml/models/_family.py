"""One builder for the ``openmmml.models.*potential`` classes: openmm-ml's impl/factory names over nnforce's families."""
import importlib

from nnforce.potentials._potential import _FAMILIES, MLPotentialImpl, MLPotentialImplFactory, NNForcePotentialImpl


def family_classes(prefix, label, family_class, parameters, module):
    """``<prefix>PotentialImpl`` and ``<prefix>PotentialImplFactory`` (defined in ``module``) for the nnforce family ``family_class`` (a class name in ``_FAMILIES``).

    ``label`` is the family's name in openmm-ml's error ("Unsupported <label> model: <name>"); ``parameters`` are
    the impl constructor's positional parameters after ``name``, as openmm-ml 1.8 orders them.
    """
    names = sorted(n for n, (_, cls) in _FAMILIES.items() if cls == family_class)

    class Impl(MLPotentialImpl):
        def __init__(self, name, *args, **kwargs):
            if len(args) > len(parameters):
                raise TypeError(f"{type(self).__name__}() takes at most {len(parameters) + 1} positional arguments")
            self.name = name
            self.options = {k: v for k, v in zip(parameters, args) if v is not None}
            self.options.update({k: v for k, v in kwargs.items() if v is not None})
            self._impl = None

        def _nnforce(self):
            if self.name not in names:
                raise ValueError(f"Unsupported {label} model: {self.name} (nnforce's {label} names: "
                                 f"{', '.join(names)})")
            if self._impl is None:
                module_name, class_name = _FAMILIES[self.name]
                module = importlib.import_module(f"nnforce.potentials.{module_name}")
                self._impl = NNForcePotentialImpl(self.name, getattr(module, class_name)(self.name, **self.options))
            return self._impl

        def addForces(self, topology, system, atoms, forceGroup, **args):
            self._nnforce().addForces(topology, system, atoms, forceGroup, **args)

        def createMixedSystem(self, topology, system, atoms, forceGroup, interpolate, embedding, **args):
            return self._nnforce().createMixedSystem(topology, system, atoms, forceGroup, interpolate, embedding,
                                                     **args)

        def getSupportedEmbeddings(self):
            return self._nnforce().getSupportedEmbeddings()

        def getMLLongRange(self):
            return self._nnforce().getMLLongRange()

    class Factory(MLPotentialImplFactory):
        def createImpl(self, name, *args, **kwargs):
            return Impl(name, *args, **kwargs)

    for cls, suffix in ((Impl, "PotentialImpl"), (Factory, "PotentialImplFactory")):
        cls.__name__ = cls.__qualname__ = prefix + suffix
        cls.__module__ = module
    return Impl, Factory
