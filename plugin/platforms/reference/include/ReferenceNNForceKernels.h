#ifndef REFERENCE_NNFORCE_KERNELS_H_
#define REFERENCE_NNFORCE_KERNELS_H_

#include "NNForceKernels.h"
#include "NNForceModelBinding.h"
#include "internal/NNNeighborList.h"
#include "openmm/Vec3.h"
#include <torch/script.h>
#include <string>
#include <vector>

namespace NNForcePlugin {

/**
 * Evaluates an NNForce with libtorch on the host, for the Reference platform (float64) and the CPU platform
 * (float32 unless the "precision" property says "double").
 */
class ReferenceCalcNNForceKernel : public CalcNNForceKernel {
public:
    ReferenceCalcNNForceKernel(std::string name, const OpenMM::Platform& platform) : CalcNNForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const NNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const NNForce& force) override;
private:
    void bindInputs(const NNForce& force);
    void loadParameters(const NNForce& force);
    void updateNeighborList(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box);
    torch::jit::Module module;
    torch::Dtype dtype;
    std::vector<ModelInput> inputs;
    std::vector<int> atoms;                         // the model's atoms (all particles when the force names none)
    std::vector<std::string> globalNames, derivativeNames;
    std::vector<int> derivativeIndex;               // global parameter index of each requested derivative
    bool periodic, outputsForces;
    torch::Tensor atomicNumbers;
    std::vector<int> replicaOfAtom;                 // empty, or the replica of each model atom (setAtomReplicas)
    torch::Tensor replica;                          // the same as int64 [M], for a model taking "replica"
    std::vector<torch::Tensor> perAtomValues;
    // neighbor list (Verlet list with skin, optional fixed capacity)
    double cutoff = 0, skin = 0;
    int capacity = 0;
    CellNeighborList neighborList;
    bool neighborListValid = false;
    std::vector<OpenMM::Vec3> positionsAtBuild;
    OpenMM::Vec3 boxAtBuild[3];
    torch::Tensor neighbors, shifts;
    std::vector<OpenMM::Vec3> modelPositions;
};

} // namespace NNForcePlugin

#endif
