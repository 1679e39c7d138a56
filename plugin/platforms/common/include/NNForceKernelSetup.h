#ifndef NNFORCE_KERNELSETUP_H_
#define NNFORCE_KERNELSETUP_H_

// The set-up every platform kernel of NNForce does in initialize() and copyParametersToContext(): which particles
// the model sees, the global parameters and requested derivatives, the neighbor list settings, the properties
// (already validated by NNForce::setProperty, so they are only read here), and the checked atomic-number and
// per-atom-input tensors. Header-only, like NNForceModelBinding.h, so each platform compiles it with its own flags.

#include "NNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/System.h"
#include <torch/torch.h>
#include <algorithm>
#include <string>
#include <vector>

namespace NNForcePlugin {

/** What a kernel needs to know about an NNForce and its System, read once in initialize(). */
struct KernelSetup {
    std::vector<int> atoms;                       // the model's atoms (all particles when the force names none)
    std::vector<std::string> globalNames, derivativeNames;
    std::vector<int> derivativeIndex;             // global parameter index of each requested derivative
    bool periodic = false, outputsForces = false;
    double cutoff = 0, skin = 0;                  // neighbor list (cutoff 0: none)
    int capacity = 0;
    std::string precision;                        // the "precision" property, "" when not set
    bool torchForceStyle = false;                 // an openmm-torch model: see isTorchForceStyle()
    bool useCUDAGraphs = false;
    int cudaGraphWarmupSteps = 3;

    KernelSetup() = default;

    /**
     * Read the force.
     *
     * @param system  the System the force belongs to
     * @param force   the force (its properties were validated by NNForce::setProperty)
     */
    KernelSetup(const OpenMM::System& system, const NNForce& force) {
        periodic = force.usesPeriodicBoundaryConditions();
        outputsForces = force.getOutputsForces();
        atoms = force.getAtoms();
        if (atoms.empty())
            for (int i = 0; i < system.getNumParticles(); i++)
                atoms.push_back(i);
        for (int i = 0; i < force.getNumGlobalParameters(); i++)
            globalNames.push_back(force.getGlobalParameterName(i));
        for (int i = 0; i < force.getNumEnergyParameterDerivatives(); i++) {
            derivativeNames.push_back(force.getEnergyParameterDerivativeName(i));
            auto found = std::find(globalNames.begin(), globalNames.end(), derivativeNames.back());
            if (found == globalNames.end())  // NNForceImpl::initialize checked this already
                throw OpenMM::OpenMMException("NNForce: addEnergyParameterDerivative('" + derivativeNames.back() +
                                              "') names no global parameter of this force; add it with addGlobalParameter first.");
            derivativeIndex.push_back(found - globalNames.begin());
        }
        cutoff = force.getNeighborListCutoff();
        skin = force.getNeighborListSkin();
        capacity = force.getNeighborListCapacity();
        const auto& properties = force.getProperties();
        auto property = [&](const std::string& key) {
            auto found = properties.find(key);
            return found == properties.end() ? std::string() : found->second;
        };
        precision = property("precision");
        useCUDAGraphs = property("useCUDAGraphs") == "true";
        if (!property("CUDAGraphWarmupSteps").empty())
            cudaGraphWarmupSteps = std::stoi(property("CUDAGraphWarmupSteps"));
        torchForceStyle = isTorchForceStyle(force, precision);
    }

    /**
     * Whether the force runs an openmm-torch model the way openmm-torch's TorchForce does: a TorchScript *file*
     * without nnforce's metadata (extra/nnforce_metadata.json, written by nnforce export) and no "precision"
     * property. Such a model gets float64 inputs on Reference and CPU and keeps its own parameter and buffer
     * dtypes (TorchForce converts nothing). Models given as in-memory modules or bytes, nnforce exports and .pt2
     * packages keep nnforce's rules (the platform's precision, parameters converted to it).
     */
    static bool isTorchForceStyle(const NNForce& force, const std::string& precision) {
        if (!precision.empty() || force.getModelFormat() != "torchscript" || force.getFile().empty())
            return false;
        static const std::string entry = "extra/nnforce_metadata.json";  // zip entry names are stored uncompressed
        const std::vector<char>& bytes = force.getModelBytes();
        return std::search(bytes.begin(), bytes.end(), entry.begin(), entry.end()) == bytes.end();
    }

    /** useDouble for the host kernels (Reference, CPU): always float64 for an openmm-torch model, as TorchForce. */
    bool useDoubleOnHost(bool isReference) const {
        return torchForceStyle || useDouble(isReference);
    }

    /** Whether the model runs in float64: the "precision" property when set, else the platform's default. */
    bool useDouble(bool platformDefault) const {
        return precision.empty() ? platformDefault : precision == "double";
    }

    /** Whether the force requests the derivative with respect to global parameter index. */
    bool wantsDerivative(int index) const {
        return std::find(derivativeIndex.begin(), derivativeIndex.end(), index) != derivativeIndex.end();
    }
};

/**
 * The force's atomic numbers as an int64 tensor on the host, checked against the number of model atoms; undefined
 * when the force gives none. A Context cannot lose its atomic numbers (hadBefore: it had some).
 */
inline torch::Tensor atomicNumberTensor(const NNForce& force, size_t numAtoms, bool hadBefore) {
    const std::vector<int>& z = force.getAtomicNumbers();
    if (z.empty()) {
        if (hadBefore)
            throw OpenMM::OpenMMException("NNForce: the atomic numbers cannot be removed from a Context; create a new Context.");
        return torch::Tensor();
    }
    if (z.size() != numAtoms)
        throw OpenMM::OpenMMException("NNForce: " + std::to_string(z.size()) + " atomic numbers given for " +
                                      std::to_string(numAtoms) + " model atoms.");
    return torch::tensor(std::vector<int64_t>(z.begin(), z.end()), torch::kInt64);
}

/**
 * The force's per-atom inputs as host tensors of dtype ([M] for width 1, [M, width] otherwise), each checked to have
 * one row per model atom. previousCount >= 0: the number a Context already has, which cannot change.
 */
inline std::vector<torch::Tensor> perAtomTensors(const NNForce& force, size_t numAtoms, torch::Dtype dtype, int previousCount) {
    int count = force.getNumPerAtomInputs();
    if (previousCount >= 0 && count != previousCount)
        throw OpenMM::OpenMMException("NNForce: per-atom inputs cannot be added to a Context after it was created; create a new Context.");
    std::vector<torch::Tensor> tensors;
    for (int i = 0; i < count; i++) {
        const std::vector<double>& values = force.getPerAtomInputValues(i);
        int width = force.getPerAtomInputWidth(i);
        if (values.size() != numAtoms * width)
            throw OpenMM::OpenMMException("NNForce: per-atom input '" + force.getPerAtomInputName(i) + "' has " +
                                          std::to_string(values.size() / width) + " rows but the model sees " +
                                          std::to_string(numAtoms) + " atoms.");
        torch::Tensor t = torch::tensor(values, torch::kFloat64).to(dtype);
        tensors.push_back(width == 1 ? t : t.view({(int64_t) numAtoms, width}));
    }
    return tensors;
}

} // namespace NNForcePlugin

#endif
