#include "ReferenceNNForceKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"
#include <torch/csrc/autograd/autograd.h>
#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

static ReferencePlatform::PlatformData& platformData(ContextImpl& context) {
    return *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
}

// libtorch's own messages carry a C++ backtrace we do not want in an OpenMMException.
static string torchMessage(const std::exception& e) {
    if (auto* error = dynamic_cast<const c10::Error*>(&e))
        return error->what_without_backtrace();
    return e.what();
}

static string join(const vector<string>& names) {
    string result;
    for (auto& n : names)
        result += (result.empty() ? "" : ", ") + n;
    return result;
}

void ReferenceCalcNNForceKernel::initialize(const System& system, const NNForce& force) {
    const vector<char>& bytes = force.getModelBytes();
    try {
        istringstream stream(string(bytes.begin(), bytes.end()));
        module = torch::jit::load(stream, torch::kCPU);
    }
    catch (const std::exception& e) {
        throw OpenMMException("NNForce: could not load the TorchScript model: " + torchMessage(e));
    }
    module.eval();
    bool isReference = getPlatform().getName() == "Reference";
    auto precision = force.getProperties().find("precision");
    bool useDouble = precision == force.getProperties().end() ? isReference : precision->second == "double";
    dtype = useDouble ? torch::kFloat64 : torch::kFloat32;
    module.to(dtype);
    for (auto parameter : module.parameters())
        parameter.set_requires_grad(false);  // only gradients with respect to inputs are ever needed

    periodic = force.usesPeriodicBoundaryConditions();
    outputsForces = force.getOutputsForces();
    atoms = force.getAtoms();
    if (atoms.empty())
        for (int i = 0; i < system.getNumParticles(); i++)
            atoms.push_back(i);
    modelPositions.resize(atoms.size());
    globalNames.clear();
    for (int i = 0; i < force.getNumGlobalParameters(); i++)
        globalNames.push_back(force.getGlobalParameterName(i));
    derivativeNames.clear();
    derivativeIndex.clear();
    for (int i = 0; i < force.getNumEnergyParameterDerivatives(); i++) {
        derivativeNames.push_back(force.getEnergyParameterDerivativeName(i));
        derivativeIndex.push_back(find(globalNames.begin(), globalNames.end(), derivativeNames.back()) - globalNames.begin());
    }
    cutoff = force.getNeighborListCutoff();
    skin = force.getNeighborListSkin();
    capacity = force.getNeighborListCapacity();
    neighborListValid = false;
    loadParameters(force);
    bindInputs(force);
}

void ReferenceCalcNNForceKernel::bindInputs(const NNForce& force) {
    torch::jit::Method forward = module.get_method("forward");
    const auto& arguments = forward.function().getSchema().arguments();
    // What the force provides, by name.
    vector<string> available = {"positions"};
    if (periodic)
        available.push_back("box");
    if (cutoff > 0) {
        available.push_back("neighbors");
        available.push_back("shifts");
    }
    if (atomicNumbers.defined())
        available.push_back("atomic_numbers");
    for (auto& name : globalNames)
        available.push_back(name);
    for (int i = 0; i < force.getNumPerAtomInputs(); i++)
        available.push_back(force.getPerAtomInputName(i));

    auto isFloatArgument = [](const c10::Argument& argument) {
        return argument.type()->kind() == c10::TypeKind::FloatType;
    };
    inputs.clear();
    vector<string> unmatched;
    for (size_t a = 1; a < arguments.size(); a++) {  // arguments[0] is self
        const c10::Argument& argument = arguments[a];
        const string& name = argument.name();
        ModelInput input{ModelInput::Default, -1, c10::IValue()};
        auto global = find(globalNames.begin(), globalNames.end(), name);
        if (name == "positions")
            input.kind = ModelInput::Positions;
        else if (name == "box" && periodic)
            input.kind = ModelInput::Box;
        else if (name == "neighbors" && cutoff > 0)
            input.kind = ModelInput::Neighbors;
        else if (name == "shifts" && cutoff > 0)
            input.kind = ModelInput::Shifts;
        else if (name == "atomic_numbers" && atomicNumbers.defined())
            input.kind = ModelInput::AtomicNumbers;
        else if (global != globalNames.end()) {
            input.kind = isFloatArgument(argument) ? ModelInput::GlobalFloat : ModelInput::Global;
            input.index = global - globalNames.begin();
        }
        else {
            int perAtom = -1;
            for (int i = 0; i < force.getNumPerAtomInputs(); i++)
                if (force.getPerAtomInputName(i) == name)
                    perAtom = i;
            if (perAtom >= 0) {
                input.kind = ModelInput::PerAtom;
                input.index = perAtom;
            }
            else if (argument.default_value().has_value())
                input.value = *argument.default_value();
            else
                unmatched.push_back(name);
        }
        inputs.push_back(input);
    }
    int numArguments = arguments.size() - 1;
    if (!unmatched.empty()) {
        // openmm-torch's TorchForce convention: forward(positions[, box][, globals...]) by position.
        int expected = 1 + (periodic ? 1 : 0) + (int) globalNames.size();
        if (numArguments == expected) {
            inputs.clear();
            inputs.push_back({ModelInput::Positions, -1, c10::IValue()});
            if (periodic)
                inputs.push_back({ModelInput::Box, -1, c10::IValue()});
            for (int i = 0; i < (int) globalNames.size(); i++)
                inputs.push_back({isFloatArgument(arguments[inputs.size() + 1]) ? ModelInput::GlobalFloat : ModelInput::Global, i, c10::IValue()});
        }
        else {
            string hint;
            const string& missing = unmatched[0];
            if (missing == "box")
                hint = " The force is not periodic: call setUsesPeriodicBoundaryConditions(True).";
            else if (missing == "neighbors" || missing == "shifts")
                hint = " The force has no neighbor list: call setNeighborList(cutoff_nm).";
            else if (missing == "atomic_numbers")
                hint = " Give them with setAtomicNumbers(...).";
            else
                hint = " Add it with addGlobalParameter or addPerAtomInput, or name the argument after the model contract. "
                       "A TorchForce-style model, forward(positions[, box][, globals...]), must take exactly " +
                       to_string(expected) + " arguments for this force but takes " + to_string(numArguments) + ".";
            throw OpenMMException("NNForce: the model's forward() needs the argument '" + missing +
                                  "', which the force does not provide. The force provides: " + join(available) + "." + hint);
        }
    }
    bool takesPositions = false;
    for (auto& input : inputs)
        takesPositions |= (input.kind == ModelInput::Positions);
    if (!takesPositions)
        throw OpenMMException("NNForce: the model's forward() takes no 'positions' argument; its arguments must include positions.");
    for (size_t d = 0; d < derivativeNames.size(); d++) {
        bool bound = false;
        for (auto& input : inputs)
            bound |= (input.kind == ModelInput::Global && input.index == derivativeIndex[d]);
        if (!bound)
            throw OpenMMException("NNForce: addEnergyParameterDerivative('" + derivativeNames[d] + "') needs the model's forward() "
                                  "to take '" + derivativeNames[d] + "' as a Tensor argument.");
    }
}

void ReferenceCalcNNForceKernel::copyParametersToContext(ContextImpl& context, const NNForce& force) {
    loadParameters(force);
}

void ReferenceCalcNNForceKernel::loadParameters(const NNForce& force) {
    const vector<int>& z = force.getAtomicNumbers();
    if (!z.empty()) {
        if (z.size() != atoms.size())
            throw OpenMMException("NNForce: " + to_string(z.size()) + " atomic numbers given for " + to_string(atoms.size()) + " model atoms.");
        atomicNumbers = torch::tensor(vector<int64_t>(z.begin(), z.end()), torch::kInt64);
    }
    else if (atomicNumbers.defined())
        throw OpenMMException("NNForce: the atomic numbers cannot be removed from a Context; create a new Context.");
    int count = force.getNumPerAtomInputs();
    if (!perAtomValues.empty() && count != (int) perAtomValues.size())
        throw OpenMMException("NNForce: per-atom inputs cannot be added to a Context after it was created; create a new Context.");
    perAtomValues.resize(count);
    for (int i = 0; i < count; i++) {
        const vector<double>& values = force.getPerAtomInputValues(i);
        int width = force.getPerAtomInputWidth(i);
        if (values.size() != atoms.size() * width)
            throw OpenMMException("NNForce: per-atom input '" + force.getPerAtomInputName(i) + "' has " + to_string(values.size() / width) +
                                  " rows but the model sees " + to_string(atoms.size()) + " atoms.");
        torch::Tensor t = torch::tensor(values, torch::kFloat64).to(dtype);
        perAtomValues[i] = width == 1 ? t : t.view({(int64_t) atoms.size(), width});
    }
}

void ReferenceCalcNNForceKernel::updateNeighborList(const vector<Vec3>& positions, const Vec3* box) {
    if (neighborListValid) {
        bool rebuild = box != nullptr && (box[0] != boxAtBuild[0] || box[1] != boxAtBuild[1] || box[2] != boxAtBuild[2]);
        double limit2 = 0.25 * skin * skin;
        for (size_t i = 0; i < positions.size() && !rebuild; i++) {
            Vec3 d = positions[i] - positionsAtBuild[i];
            rebuild = !(d.dot(d) <= limit2);  // also rebuilds on NaN
        }
        if (!rebuild)
            return;
    }
    neighborList.build(positions, box, cutoff + skin);
    positionsAtBuild = positions;
    if (box != nullptr)
        for (int k = 0; k < 3; k++)
            boxAtBuild[k] = box[k];
    int64_t numPairs = neighborList.getNumPairs();
    int64_t size = numPairs;
    if (capacity > 0) {
        while (capacity < numPairs)
            capacity = max(capacity + 1, (int) (1.5 * capacity));  // grow, never drop pairs
        size = capacity;
    }
    neighbors = torch::zeros({2, size}, torch::kInt64);
    auto* n = neighbors.data_ptr<int64_t>();
    copy(neighborList.first.begin(), neighborList.first.end(), n);
    copy(neighborList.second.begin(), neighborList.second.end(), n + size);
    torch::Tensor s = torch::zeros({size, 3}, torch::kFloat64);
    auto* sp = s.data_ptr<double>();
    copy(neighborList.shifts.begin(), neighborList.shifts.end(), sp);
    double padShift = 2 * (cutoff + skin) + 10.0;  // padding pairs (0, 0) sit far beyond any cutoff
    for (int64_t p = numPairs; p < size; p++)
        sp[3 * p] = padShift;
    shifts = s.to(dtype);
    neighborListValid = true;
}

double ReferenceCalcNNForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& data = platformData(context);
    const vector<Vec3>& allPositions = *data.positions;
    int numAtoms = atoms.size();
    for (int i = 0; i < numAtoms; i++)
        modelPositions[i] = allPositions[atoms[i]];
    const Vec3* box = periodic ? data.periodicBoxVectors : nullptr;
    if (cutoff > 0)
        updateNeighborList(modelPositions, box);
    bool needGradients = includeForces && !outputsForces;

    torch::Tensor positions = torch::from_blob(modelPositions.data(), {numAtoms, 3}, torch::kFloat64).to(dtype, false, true);
    if (needGradients)
        positions.requires_grad_(true);
    vector<torch::Tensor> globals(globalNames.size());
    for (size_t i = 0; i < globalNames.size(); i++)
        globals[i] = torch::tensor(context.getParameter(globalNames[i]), torch::TensorOptions().dtype(dtype));
    vector<torch::Tensor> gradientInputs = {positions};
    if (includeForces)
        for (int index : derivativeIndex) {
            globals[index].requires_grad_(true);
            gradientInputs.push_back(globals[index]);
        }

    vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (auto& input : inputs) {
        switch (input.kind) {
        case ModelInput::Positions: arguments.push_back(positions); break;
        case ModelInput::Box: {
            double b[9];
            for (int k = 0; k < 3; k++)
                for (int m = 0; m < 3; m++)
                    b[3 * k + m] = box[k][m];
            arguments.push_back(torch::from_blob(b, {3, 3}, torch::kFloat64).to(dtype, false, true));
            break;
        }
        case ModelInput::Neighbors: arguments.push_back(neighbors); break;
        case ModelInput::Shifts: arguments.push_back(shifts); break;
        case ModelInput::AtomicNumbers: arguments.push_back(atomicNumbers); break;
        case ModelInput::Global: arguments.push_back(globals[input.index]); break;
        case ModelInput::GlobalFloat: arguments.push_back(context.getParameter(globalNames[input.index])); break;
        case ModelInput::PerAtom: arguments.push_back(perAtomValues[input.index]); break;
        case ModelInput::Default: arguments.push_back(input.value); break;
        }
    }

    c10::IValue output;
    try {
        output = module.forward(arguments);
    }
    catch (const std::exception& e) {
        throw OpenMMException("NNForce: the model raised an error in forward(): " + torchMessage(e));
    }
    torch::Tensor energy, forces;
    if (outputsForces) {
        if (!output.isTuple() || output.toTupleRef().elements().size() != 2 ||
                !output.toTupleRef().elements()[0].isTensor() || !output.toTupleRef().elements()[1].isTensor())
            throw OpenMMException("NNForce: setOutputsForces(True) requires forward() to return a tuple (energy, forces) of tensors, "
                                  "but it returned " + output.tagKind() + ".");
        energy = output.toTupleRef().elements()[0].toTensor();
        forces = output.toTupleRef().elements()[1].toTensor();
        if (!forces.is_floating_point() || forces.dim() != 2 || forces.size(0) != numAtoms || forces.size(1) != 3)
            throw OpenMMException("NNForce: forward() returned forces of shape " + c10::str(forces.sizes()) + " and dtype " +
                                  string(c10::toString(forces.scalar_type())) + "; expected a floating-point tensor of shape [" +
                                  to_string(numAtoms) + ", 3] in kJ/mol/nm.");
    }
    else {
        if (!output.isTensor())
            throw OpenMMException("NNForce: forward() must return the energy as a Tensor but returned " + output.tagKind() +
                                  (output.isTuple() ? " (for a model returning (energy, forces) call setOutputsForces(True))." : "."));
        energy = output.toTensor();
    }
    if (!energy.is_floating_point() || energy.numel() != 1)
        throw OpenMMException("NNForce: forward() must return a floating-point scalar energy (kJ/mol), but returned a tensor of shape " +
                              c10::str(energy.sizes()) + " and dtype " + string(c10::toString(energy.scalar_type())) +
                              ". Sum per-atom energies with .sum().");
    double energyValue = energy.item<double>();
    if (!isfinite(energyValue))
        throw OpenMMException("NNForce: the model returned a non-finite energy (" + to_string(energyValue) +
                              "). Check the positions (overlapping atoms?) and the model's inputs.");

    if (includeForces) {
        vector<torch::Tensor> gradients;
        if (needGradients || !derivativeIndex.empty()) {
            if (!energy.requires_grad())
                gradients.assign(gradientInputs.size(), torch::Tensor());
            else {
                vector<torch::Tensor> wrt = gradientInputs;
                if (!needGradients)
                    wrt.erase(wrt.begin());
                try {
                    gradients = torch::autograd::grad({energy.reshape({})}, wrt, {}, false, false, true);
                }
                catch (const std::exception& e) {
                    throw OpenMMException("NNForce: the backward pass through the model failed: " + torchMessage(e));
                }
                if (!needGradients)
                    gradients.insert(gradients.begin(), torch::Tensor());
            }
            if (needGradients)
                forces = gradients[0].defined() ? -gradients[0] : torch::Tensor();
        }
        if (forces.defined()) {
            torch::Tensor f = forces.detach().to(torch::kFloat64).contiguous();
            const double* fp = f.data_ptr<double>();
            for (int i = 0; i < 3 * numAtoms; i++)
                if (!isfinite(fp[i]))
                    throw OpenMMException("NNForce: the model produced a non-finite force on atom " + to_string(atoms[i / 3]) +
                                          ". Check the positions (overlapping atoms?) and the model.");
            vector<Vec3>& allForces = *data.forces;
            for (int i = 0; i < numAtoms; i++)
                allForces[atoms[i]] += Vec3(fp[3 * i], fp[3 * i + 1], fp[3 * i + 2]);
        }
        map<string, double>& derivatives = *data.energyParameterDerivatives;
        for (size_t d = 0; d < derivativeIndex.size(); d++) {
            const torch::Tensor& g = gradients[d + 1];
            derivatives[derivativeNames[d]] += g.defined() ? g.item<double>() : 0.0;
        }
    }
    return includeEnergy ? energyValue : 0.0;
}
