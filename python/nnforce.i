// SWIG interface of the NNForce plugin: `nnforce.NNForce` is an openmm.Force usable in any openmm.System.
%module(package="nnforce") plugin

%pythonbegin %{
import io as _io
import os as _os

import openmm as _openmm


class ModelFileNotFoundError(FileNotFoundError, _openmm.OpenMMException):
    """A model file that does not exist: both a FileNotFoundError and an openmm.OpenMMException."""

class ModelIsADirectoryError(IsADirectoryError, _openmm.OpenMMException):
    """A directory given as a model file: both an IsADirectoryError and an openmm.OpenMMException."""

def _model_argument(args):
    """Turn the first constructor argument (path, os.PathLike, bytes or a torch.jit.ScriptModule) into what C++ takes."""
    if not args:
        return args
    model, rest = args[0], tuple(args[1:])
    if isinstance(model, _os.PathLike):
        model = _os.fspath(model)
    if isinstance(model, str):
        if _os.path.isdir(model):
            raise ModelIsADirectoryError(f"NNForce: {model!r} is a directory, not a model file: give the path of the model file inside it.")
        if not _os.path.exists(model):
            raise ModelFileNotFoundError(f"NNForce: no model file at {model!r}; pass the path of a TorchScript file written by "
                                    "torch.jit.save, or the scripted module itself.")
    elif isinstance(model, (bytes, bytearray, memoryview)):
        model = bytes(model)
    else:
        import torch
        if isinstance(model, torch.nn.Module) and not isinstance(model, torch.jit.ScriptModule):
            raise TypeError("NNForce: pass a TorchScript module (torch.jit.script(model)), a file path or its bytes, "
                            f"not a plain {type(model).__name__}.")
        if not isinstance(model, torch.jit.ScriptModule):
            raise TypeError(f"NNForce: the model must be a file path, bytes or a torch.jit.ScriptModule, not {type(model).__name__}.")
        buffer = _io.BytesIO()
        torch.jit.save(model, buffer)
        model = buffer.getvalue()
    if rest and rest[0] is None:
        rest = ({},) + rest[1:]
    return (model,) + rest
%}

%{
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>
// OpenMM's typemaps convert numpy arrays directly; numpy's C API is imported in the module's init.
static bool isNumpyAvailable() {
    return true;
}
%}

%import(module="openmm") "swig/OpenMMSwigHeaders.i"
%include "swig/typemaps.i"
%include <std_string.i>
%include <std_vector.i>
%include <std_map.i>

%{
#include "NNForce.h"
#include "NNForceModelArchive.h"
#include "internal/NNNeighborList.h"
#include "OpenMM.h"
#include "OpenMMAmoeba.h"
#include "OpenMMDrude.h"
#include "openmm/RPMDIntegrator.h"
#include "openmm/RPMDMonteCarloBarostat.h"
%}

%init %{
    import_array();
%}

namespace std {
    %template(_IntVector) vector<int>;
    %template(_DoubleVector) vector<double>;
    %template(_StringVector) vector<string>;
    %template(_StringMap) map<string, string>;
}

// Model bytes travel as Python bytes.
%typemap(typecheck, precedence=SWIG_TYPECHECK_STRING) const std::vector<char>& {
    $1 = (PyBytes_Check($input) || PyByteArray_Check($input)) ? 1 : 0;
}
%typemap(in) const std::vector<char>& (std::vector<char> temp) {
    char* data = NULL;
    Py_ssize_t size = 0;
    if (PyBytes_Check($input))
        PyBytes_AsStringAndSize($input, &data, &size);
    else if (PyByteArray_Check($input)) {
        data = PyByteArray_AsString($input);
        size = PyByteArray_Size($input);
    }
    else
        SWIG_exception_fail(SWIG_TypeError, "expected bytes");
    temp.assign(data, data + size);
    $1 = &temp;
}
%typemap(out) const std::vector<char>& {
    $result = PyBytes_FromStringAndSize($1->data(), $1->size());
}

// Every C++ exception becomes openmm.OpenMMException, as for OpenMM's own classes.
%exception {
    try {
        $action
    }
    catch (std::exception& e) {
        PyObject* openmmModule = PyImport_ImportModule("openmm");
        PyObject* exceptionType = openmmModule ? PyObject_GetAttrString(openmmModule, "OpenMMException") : NULL;
        PyErr_SetString(exceptionType ? exceptionType : PyExc_RuntimeError, e.what());
        Py_XDECREF(exceptionType);
        Py_XDECREF(openmmModule);
        SWIG_fail;
    }
}

%pythonprepend NNForcePlugin::NNForce::NNForce %{
    args = _model_argument(args)
%}

// System.addForce takes ownership, as for OpenMM's forces.
%ignore NNForcePlugin::NNForce::getKnownProperties;
// getOutput(context, name) returns a numpy array in Python (see the %extend below).
%ignore NNForcePlugin::NNForce::getOutput;

#define NNFORCE_EXPORT
%include "NNForce.h"

// Archive checks and hashes for the Python helpers (the same code NNForce runs on every model it is given).
%ignore NNForcePlugin::ModelArchiveEntry;
%ignore NNForcePlugin::ModelArchiveLimits;
%ignore NNForcePlugin::verifyModelArchive;
%include <stdint.i>
%include "NNForceModelArchive.h"

%extend NNForcePlugin::NNForce {
    /** Return force as an NNForce (for a Force taken from System.getForce or XmlSerializer); throws if it is not one. */
    static NNForcePlugin::NNForce& cast(OpenMM::Force& force) {
        NNForcePlugin::NNForce* result = dynamic_cast<NNForcePlugin::NNForce*>(&force);
        if (result == NULL)
            throw OpenMM::OpenMMException("NNForce.cast: this Force is not an NNForce.");
        return *result;
    }
    static bool isinstance(OpenMM::Force& force) {
        return dynamic_cast<NNForcePlugin::NNForce*>(&force) != NULL;
    }
    /** getOutput flattened for Python: [number of dimensions, dimensions..., values...]. */
    std::vector<double> _getOutputFlat(OpenMM::Context& context, const std::string& name) {
        std::vector<double> values;
        std::vector<int> shape;
        self->getOutput(context, name, values, shape);
        std::vector<double> flat;
        flat.reserve(1 + shape.size() + values.size());
        flat.push_back((double) shape.size());
        flat.insert(flat.end(), shape.begin(), shape.end());
        flat.insert(flat.end(), values.begin(), values.end());
        return flat;
    }
    %pythoncode %{
    def getModule(self):
        """The model as a torch.jit.ScriptModule (loaded from the bytes this force holds)."""
        import torch
        return torch.jit.load(_io.BytesIO(self.getModelBytes()))

    def getOutput(self, context, name):
        """The output `name` of the model's last evaluation in `context`, as a float64 numpy array (no second model call).

        Parameters
        ----------
        context : openmm.Context
            A Context this force belongs to; the model must have been evaluated in it (a step or getState).
        name : str
            An output's name: "energy" (kJ/mol), "forces" (kJ/mol/nm, with setOutputsForces(True)), or any key of
            the Dict[str, Tensor] the model's forward returns. getOutputNames(context) lists them.

        Returns
        -------
        numpy.ndarray
            The output with the shape the model gave it (0-d for a scalar), in the model's units.
        """
        import numpy as np
        flat = np.asarray(self._getOutputFlat(context, str(name)), dtype=np.float64)
        ndim = int(flat[0])
        shape = tuple(int(d) for d in flat[1:1 + ndim])
        return flat[1 + ndim:].reshape(shape)

    @staticmethod
    def knownProperties():
        """The property names setProperty accepts."""
        return ("precision", "useCUDAGraphs", "CUDAGraphWarmupSteps")

    def __getstate__(self):
        import openmm
        return openmm.XmlSerializer.serialize(self)

    def __setstate__(self, state):
        import openmm
        restored = openmm.XmlSerializer.deserialize(state)  # keeps the C++ object alive while we read it
        force = NNForce.cast(restored)
        self.__init__(force.getModelBytes())
        _copy_settings(force, self)
        del force, restored

    def __copy__(self):
        return self.__deepcopy__(None)

    def __deepcopy__(self, memo):
        import openmm
        copy = NNForce(self.getModelBytes())
        _copy_settings(self, copy)
        return copy
    %}
}

%inline %{
// The plugin's cell-list search, for tests and tools: flat [i, j, sx, sy, sz] per pair.
std::vector<double> _neighborPairs(const std::vector<double>& flatPositions, const std::vector<double>& flatBox, double cutoff,
                                   const std::vector<int>& replicas = std::vector<int>()) {
    std::vector<OpenMM::Vec3> positions(flatPositions.size() / 3), box(flatBox.size() / 3);
    for (size_t i = 0; i < positions.size(); i++)
        positions[i] = OpenMM::Vec3(flatPositions[3 * i], flatPositions[3 * i + 1], flatPositions[3 * i + 2]);
    for (size_t i = 0; i < box.size(); i++)
        box[i] = OpenMM::Vec3(flatBox[3 * i], flatBox[3 * i + 1], flatBox[3 * i + 2]);
    NNForcePlugin::CellNeighborList list;
    list.build(positions, box.size() == 3 ? box.data() : NULL, cutoff, replicas);
    std::vector<double> out;
    out.reserve(5 * list.getNumPairs());
    for (int p = 0; p < list.getNumPairs(); p++) {
        out.push_back((double) list.first[p]);
        out.push_back((double) list.second[p]);
        for (int k = 0; k < 3; k++)
            out.push_back(list.shifts[3 * p + k]);
    }
    return out;
}
%}

%pythoncode %{
def neighbor_pairs(positions, cutoff_nm, box=None, replicas=None):
    """All pairs closer than cutoff_nm found by NNForce's cell list: (pairs int64 [2, P], shifts float64 [P, 3] nm).

    pairs is laid out as the model contract's ``neighbors`` argument (row 0: i, row 1: j), so it can be passed to a
    model as torch.from_numpy(pairs).

    positions: [N, 3] nm; box: None (non-periodic) or [3, 3] reduced periodic box vectors (rows), nm.
    replicas: None, or the replica index of each atom (as NNForce.setAtomReplicas): only pairs within a replica.
    r_ij = positions[j] - positions[i] + shift for each pair p (i = pairs[0, p] < j = pairs[1, p]).
    """
    import numpy as np
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    box_flat = [] if box is None else np.asarray(box, dtype=np.float64).reshape(9).tolist()
    groups = [] if replicas is None else [int(r) for r in np.asarray(replicas).reshape(-1)]
    flat = np.asarray(_neighborPairs(positions.reshape(-1).tolist(), box_flat, float(cutoff_nm), groups)).reshape(-1, 5)
    return np.ascontiguousarray(flat[:, :2].T.astype(np.int64)), flat[:, 2:].copy()


def _copy_settings(source, target):
    target.setForceGroup(source.getForceGroup())
    target.setName(source.getName())
    target.setUsesPeriodicBoundaryConditions(source.usesPeriodicBoundaryConditions())
    target.setOutputsForces(source.getOutputsForces())
    target.setNeighborList(source.getNeighborListCutoff(), source.getNeighborListSkin(), source.getNeighborListCapacity())
    target.setAtoms(list(source.getAtoms()))
    target.setAtomicNumbers(list(source.getAtomicNumbers()))
    target.setAtomReplicas(list(source.getAtomReplicas()))
    for i in range(source.getNumGlobalParameters()):
        target.addGlobalParameter(source.getGlobalParameterName(i), source.getGlobalParameterDefaultValue(i))
    for i in range(source.getNumEnergyParameterDerivatives()):
        target.addEnergyParameterDerivative(source.getEnergyParameterDerivativeName(i))
    for name, value in source.getProperties().items():
        target.setProperty(name, value)
    for i in range(source.getNumPerAtomInputs()):
        target.addPerAtomInput(source.getPerAtomInputName(i), list(source.getPerAtomInputValues(i)), source.getPerAtomInputWidth(i))
%}
