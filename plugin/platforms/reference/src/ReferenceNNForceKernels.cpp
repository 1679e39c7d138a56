#include "ReferenceNNForceKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"
#include <algorithm>
#include <cmath>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

static ReferencePlatform::PlatformData& platformData(ContextImpl& context) {
    return *reinterpret_cast<ReferencePlatform::PlatformData*>(context.getPlatformData());
}

void ReferenceCalcNNForceKernel::initialize(const System& system, const NNForce& force) {
    setup = KernelSetup(system, force);
    capacity = setup.capacity;
    modelPositions.resize(setup.atoms.size());
    neighborListValid = false;
    replicaOfAtom = force.getAtomReplicas();
    replica = torch::tensor(vector<int64_t>(replicaOfAtom.begin(), replicaOfAtom.end()), torch::kInt64);
    model.load(force, setup, torch::kCPU, getPlatform().getName() == "Reference");
    loadParameters(force);
    model.bind(force, setup, atomicNumbers.defined());
}

void ReferenceCalcNNForceKernel::copyParametersToContext(ContextImpl& /*context*/, const NNForce& force) {
    loadParameters(force);
}

void ReferenceCalcNNForceKernel::loadParameters(const NNForce& force) {
    atomicNumbers = atomicNumberTensor(force, setup.atoms.size(), atomicNumbers.defined());
    if (atomicNumbers.defined())
        model.checkElements(force);
    perAtomValues = perAtomTensors(force, setup.atoms.size(), model.dtype(), perAtomValues.empty() ? -1 : (int) perAtomValues.size());
}

void ReferenceCalcNNForceKernel::updateNeighborList(const vector<Vec3>& positions, const Vec3* box) {
    if (neighborListValid) {
        bool rebuild = box != nullptr && (box[0] != boxAtBuild[0] || box[1] != boxAtBuild[1] || box[2] != boxAtBuild[2]);
        double limit2 = 0.25 * setup.skin * setup.skin;
        for (size_t i = 0; i < positions.size() && !rebuild; i++) {
            Vec3 d = positions[i] - positionsAtBuild[i];
            rebuild = !(d.dot(d) <= limit2);  // also rebuilds on NaN
        }
        if (!rebuild)
            return;
    }
    neighborList.build(positions, box, setup.cutoff + setup.skin, replicaOfAtom);
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
    size = max(size, model.minPairs());  // a .pt2 is compiled for at least minPairs pairs: pad with far-away pairs
    neighbors = torch::zeros({2, size}, torch::kInt64);
    auto* n = neighbors.data_ptr<int64_t>();
    copy(neighborList.first.begin(), neighborList.first.end(), n);
    copy(neighborList.second.begin(), neighborList.second.end(), n + size);
    torch::Tensor s = torch::zeros({size, 3}, torch::kFloat64);
    auto* sp = s.data_ptr<double>();
    copy(neighborList.shifts.begin(), neighborList.shifts.end(), sp);
    double padShift = 2 * (setup.cutoff + setup.skin) + 10.0;  // padding pairs (0, 0) sit far beyond any cutoff
    for (int64_t p = numPairs; p < size; p++)
        sp[3 * p] = padShift;
    shifts = s.to(model.dtype());
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
    for (auto& name : setup.globalNames) {
        sources.globalValues.push_back(context.getParameter(name));
        sources.globals.push_back(torch::tensor(sources.globalValues.back(), torch::TensorOptions().dtype(model.dtype())));
    }
    sources.perAtom = &perAtomValues;
    return sources;
}

double ReferenceCalcNNForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    ReferencePlatform::PlatformData& data = platformData(context);
    const vector<Vec3>& allPositions = *data.positions;
    int numAtoms = setup.atoms.size();
    for (int i = 0; i < numAtoms; i++)
        modelPositions[i] = allPositions[setup.atoms[i]];
    const Vec3* box = setup.periodic ? data.periodicBoxVectors : nullptr;
    if (setup.cutoff > 0) {
        updateNeighborList(modelPositions, box);
        model.checkPairs(neighbors.size(1));
    }
    torch::Tensor positions = torch::from_blob(modelPositions.data(), {numAtoms, 3}, torch::kFloat64).to(model.dtype(), false, true);
    ModelEvaluation result = model.forward(argumentSources(context, positions, box), includeForces, lastOutputs);
    double energyValue = result.energy.item<double>();
    if (!isfinite(energyValue))
        throw OpenMMException(nonFiniteEnergyMessage(energyValue));
    if (includeForces) {
        model.differentiate(result);
        if (result.forces.defined())
            addForces(context, result.forces, result.forceSign);
        map<string, double>& derivatives = *data.energyParameterDerivatives;
        for (size_t d = 0; d < setup.derivativeNames.size(); d++) {
            const torch::Tensor& g = result.derivatives[d];
            derivatives[setup.derivativeNames[d]] += g.defined() ? g.item<double>() : 0.0;
        }
    }
    return includeEnergy ? energyValue : 0.0;
}

torch::Tensor ReferenceCalcNNForceKernel::boxTensor(const Vec3* box) const {
    double b[9];
    for (int k = 0; k < 3; k++)
        for (int m = 0; m < 3; m++)
            b[3 * k + m] = box[k][m];
    return torch::from_blob(b, {3, 3}, torch::kFloat64).to(model.dtype(), false, true);
}

void ReferenceCalcNNForceKernel::addForces(ContextImpl& context, const torch::Tensor& forces, double sign) {
    torch::Tensor f = forces.detach().to(torch::kFloat64).contiguous();
    const double* fp = f.data_ptr<double>();
    int numAtoms = setup.atoms.size();
    for (int i = 0; i < 3 * numAtoms; i++)
        if (!isfinite(fp[i]))
            throw OpenMMException(nonFiniteForceMessage(setup.atoms[i / 3]));
    vector<Vec3>& allForces = *platformData(context).forces;
    for (int i = 0; i < numAtoms; i++)
        allForces[setup.atoms[i]] += Vec3(fp[3 * i], fp[3 * i + 1], fp[3 * i + 2]) * sign;
}
