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
    KernelSetup setup(system, force);
    periodic = setup.periodic;
    outputsForces = setup.outputsForces;
    atoms = setup.atoms;
    globalNames = setup.globalNames;
    derivativeNames = setup.derivativeNames;
    derivativeIndex = setup.derivativeIndex;
    cutoff = setup.cutoff;
    skin = setup.skin;
    capacity = setup.capacity;
    modelPositions.resize(atoms.size());
    neighborListValid = false;
    replicaOfAtom = force.getAtomReplicas();
    replica = torch::tensor(vector<int64_t>(replicaOfAtom.begin(), replicaOfAtom.end()), torch::kInt64);
    loadModel(force, setup);
    loadParameters(force);
    bindInputs(force);
}

void ReferenceCalcNNForceKernel::loadModel(const NNForce& force, const KernelSetup& setup) {
    bool isReference = getPlatform().getName() == "Reference";
    if (force.getModelFormat() == "pt2") {
        package.reset(new ModelPackage(force.getModelBytes(), "cpu", -1));
        dtype = package->dtype;
        string compiled = dtype == torch::kFloat64 ? "double" : "single";
        if (!setup.precision.empty() && setup.precision != compiled)
            throw OpenMMException("NNForce: the property precision=" + setup.precision + " asks for " + setup.precision + " precision but the .pt2 "
                                  "package was compiled in " + compiled + " precision. Export it with nnforce.export.to_pt2(..., precision=\"" +
                                  setup.precision + "\"), or drop the property.");
        int64_t numAtoms = atoms.size();
        if (numAtoms < package->minAtoms || (package->maxAtoms > 0 && numAtoms > package->maxAtoms))
            throw OpenMMException("NNForce: the .pt2 model was compiled for " + to_string(package->minAtoms) + " to " + to_string(package->maxAtoms) +
                                  " atoms but the force gives it " + to_string(numAtoms) + ". Re-export it with nnforce.export.to_pt2(..., "
                                  "max_atoms=...) covering this system.");
        minPairs = package->minPairs;
        return;
    }
    package.reset();
    const vector<char>& bytes = force.getModelBytes();
    try {
        istringstream stream(string(bytes.begin(), bytes.end()));
        module = torch::jit::load(stream, torch::kCPU);
    }
    catch (const std::exception& e) {
        throw OpenMMException("NNForce: could not load the TorchScript model: " + torchMessage(e));
    }
    module.eval();
    dtype = setup.useDoubleOnHost(isReference) ? torch::kFloat64 : torch::kFloat32;
    convertModelPrecision(module, dtype, setup.torchForceStyle);  // floating-point parameters and buffers only
    minPairs = 0;
}

void ReferenceCalcNNForceKernel::bindInputs(const NNForce& force) {
    if (package) {
        inputs = bindPackageInputs(*package, force, periodic, cutoff > 0, atomicNumbers.defined(), globalNames, derivativeNames);
        checkReplicasKeptApart(inputs, force);
    }
    else
        inputs = bindModelInputs(module, force, periodic, cutoff > 0, atomicNumbers.defined(), globalNames, derivativeNames, derivativeIndex);
}

void ReferenceCalcNNForceKernel::copyParametersToContext(ContextImpl& context, const NNForce& force) {
    loadParameters(force);
}

void ReferenceCalcNNForceKernel::loadParameters(const NNForce& force) {
    atomicNumbers = atomicNumberTensor(force, atoms.size(), atomicNumbers.defined());
    if (package && atomicNumbers.defined() && !package->elements.empty())
        for (int z : force.getAtomicNumbers())
            if (find(package->elements.begin(), package->elements.end(), z) == package->elements.end()) {
                vector<string> known;
                for (int e : package->elements)
                    known.push_back(to_string(e));
                throw OpenMMException("NNForce: atomic number " + to_string(z) + " is not among the .pt2 model's elements (" + joinNames(known) +
                                      "); the model was not trained on it.");
            }
    perAtomValues = perAtomTensors(force, atoms.size(), dtype, perAtomValues.empty() ? -1 : (int) perAtomValues.size());
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
    size = max(size, minPairs);  // a .pt2 is compiled for at least minPairs pairs: pad with far-away pairs
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

ModelArgumentSources ReferenceCalcNNForceKernel::argumentSources(ContextImpl& context, const torch::Tensor& positions, const Vec3* box) {
    ModelArgumentSources sources;
    sources.positions = positions;
    sources.neighbors = neighbors;
    sources.shifts = shifts;
    sources.atomicNumbers = atomicNumbers;
    sources.replica = replica;
    sources.box = [this, box]() { return boxTensor(box); };
    for (auto& name : globalNames) {
        sources.globalValues.push_back(context.getParameter(name));
        sources.globals.push_back(torch::tensor(sources.globalValues.back(), torch::TensorOptions().dtype(dtype)));
    }
    sources.perAtom = &perAtomValues;
    return sources;
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
    if (package)
        return executePackage(context, includeForces, includeEnergy,
                              torch::from_blob(modelPositions.data(), {numAtoms, 3}, torch::kFloat64).to(dtype, false, true), box);
    bool needGradients = includeForces && !outputsForces;

    torch::Tensor positions = torch::from_blob(modelPositions.data(), {numAtoms, 3}, torch::kFloat64).to(dtype, false, true);
    if (needGradients)
        positions.requires_grad_(true);
    ModelArgumentSources sources = argumentSources(context, positions, box);
    vector<torch::Tensor> gradientInputs = {positions};
    if (includeForces)
        for (int index : derivativeIndex) {
            sources.globals[index].requires_grad_(true);
            gradientInputs.push_back(sources.globals[index]);
        }

    vector<c10::IValue> arguments;
    arguments.reserve(inputs.size());
    for (auto& input : inputs)
        arguments.push_back(argumentFor(input, sources));

    c10::IValue output;
    try {
        output = module.forward(arguments);
    }
    catch (const std::exception& e) {
        throw OpenMMException("NNForce: the model raised an error in forward(): " + torchMessage(e));
    }
    torch::Tensor energy, forces;
    if (output.isGenericDict())
        unpackDictOutput(output, outputsForces, numAtoms, energy, forces, lastOutputs);
    else {
        unpackModelOutput(output, outputsForces, numAtoms, energy, forces);
        lastOutputs.setPlain(energy, forces);
    }
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
        if (forces.defined())
            addForces(context, forces);
        map<string, double>& derivatives = *data.energyParameterDerivatives;
        for (size_t d = 0; d < derivativeIndex.size(); d++) {
            const torch::Tensor& g = gradients[d + 1];
            derivatives[derivativeNames[d]] += g.defined() ? g.item<double>() : 0.0;
        }
    }
    return includeEnergy ? energyValue : 0.0;
}

torch::Tensor ReferenceCalcNNForceKernel::boxTensor(const Vec3* box) const {
    double b[9];
    for (int k = 0; k < 3; k++)
        for (int m = 0; m < 3; m++)
            b[3 * k + m] = box[k][m];
    return torch::from_blob(b, {3, 3}, torch::kFloat64).to(dtype, false, true);
}

void ReferenceCalcNNForceKernel::addForces(ContextImpl& context, const torch::Tensor& forces) {
    torch::Tensor f = forces.detach().to(torch::kFloat64).contiguous();
    const double* fp = f.data_ptr<double>();
    int numAtoms = atoms.size();
    for (int i = 0; i < 3 * numAtoms; i++)
        if (!isfinite(fp[i]))
            throw OpenMMException(nonFiniteForceMessage(atoms[i / 3]));
    vector<Vec3>& allForces = *platformData(context).forces;
    for (int i = 0; i < numAtoms; i++)
        allForces[atoms[i]] += Vec3(fp[3 * i], fp[3 * i + 1], fp[3 * i + 2]);
}

/**
 * A .pt2 package is one compiled function returning (energy, forces, dE/dp...): an energy-only request runs the same
 * function and drops the forces (see docs/architecture.md).
 */
double ReferenceCalcNNForceKernel::executePackage(ContextImpl& context, bool includeForces, bool includeEnergy, torch::Tensor positions, const Vec3* box) {
    if (cutoff > 0 && package->maxPairs > 0 && neighbors.size(1) > package->maxPairs)
        throw OpenMMException("NNForce: the neighbor list has " + to_string(neighbors.size(1)) + " pairs but the .pt2 model was compiled for at most " +
                              to_string(package->maxPairs) + ". Re-export it with nnforce.export.to_pt2(..., max_pairs=...) covering this system.");
    ModelArgumentSources sources = argumentSources(context, positions, box);
    vector<torch::Tensor> arguments;
    arguments.reserve(inputs.size());
    for (auto& input : inputs)
        if (input.kind != ModelInput::Default)
            arguments.push_back(argumentFor(input, sources, true).toTensor());
    vector<torch::Tensor> outputs = package->run(arguments);
    size_t expected = package->outputNames.size() + package->extraOutputNames.size();
    if (outputs.size() != expected)
        throw OpenMMException("NNForce: the .pt2 model returned " + to_string(outputs.size()) + " outputs but its metadata lists " +
                              to_string(expected) + ".");
    lastOutputs.setPackage(outputs, package->extraOutputNames, package->outputNames.size());
    double energyValue = outputs[0].item<double>();
    if (!isfinite(energyValue))
        throw OpenMMException(nonFiniteEnergyMessage(energyValue));
    if (includeForces) {
        addForces(context, outputs[1]);
        map<string, double>& derivatives = *platformData(context).energyParameterDerivatives;
        for (auto& name : derivativeNames) {
            size_t k = find(package->derivativeNames.begin(), package->derivativeNames.end(), name) - package->derivativeNames.begin();
            derivatives[name] += outputs[2 + k].item<double>();
        }
    }
    return includeEnergy ? energyValue : 0.0;
}
