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
    convertModelPrecision(module, dtype);  // floating-point parameters and buffers only

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
    replicaOfAtom = force.getAtomReplicas();
    replica = torch::tensor(vector<int64_t>(replicaOfAtom.begin(), replicaOfAtom.end()), torch::kInt64);
    loadParameters(force);
    bindInputs(force);
}

void ReferenceCalcNNForceKernel::bindInputs(const NNForce& force) {
    inputs = bindModelInputs(module, force, periodic, cutoff > 0, atomicNumbers.defined(), globalNames, derivativeNames, derivativeIndex);
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
    neighborList.build(positions, box, cutoff + skin, replicaOfAtom);
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
        case ModelInput::Replica: arguments.push_back(replica); break;
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
    unpackModelOutput(output, outputsForces, numAtoms, energy, forces);
    double energyValue = energy.item<double>();
    if (!isfinite(energyValue))
        throw OpenMMException(nonFiniteEnergyMessage(energyValue));

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
                    throw OpenMMException(nonFiniteForceMessage(atoms[i / 3]));
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
