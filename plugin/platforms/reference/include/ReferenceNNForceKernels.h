#ifndef REFERENCE_NNFORCE_KERNELS_H_
#define REFERENCE_NNFORCE_KERNELS_H_

#include "NNForceKernels.h"
#include "NNForceModelBinding.h"
#include "NNForceKernelSetup.h"
#include "NNForceModelPackage.h"
#include "NNForceModelOutputs.h"
#include "internal/NNNeighborList.h"
#include "openmm/Vec3.h"
#include <torch/script.h>
#include <memory>
#include <string>
#include <vector>

namespace NNForcePlugin {

/**
 * Evaluates an NNForce with libtorch on the host, for the Reference platform (float64) and the CPU platform
 * (float32 unless the "precision" property says "double"). A TorchScript model runs through torch::jit with autograd
 * for the forces; a .pt2 AOTInductor package runs its one compiled function, which returns the energy, the forces and
 * the parameter derivatives together (its precision is the one it was compiled for).
 */
class ReferenceCalcNNForceKernel : public CalcNNForceKernel {
public:
    ReferenceCalcNNForceKernel(std::string name, const OpenMM::Platform& platform) : CalcNNForceKernel(name, platform) {}
    void initialize(const OpenMM::System& system, const NNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const NNForce& force) override;
    std::vector<std::string> getOutputNames() override { return lastOutputs.getNames(); }
    void getOutput(const std::string& name, std::vector<double>& values, std::vector<int>& shape) override { lastOutputs.copy(name, values, shape); }
private:
    void bindInputs(const NNForce& force);
    void loadParameters(const NNForce& force);
    void updateNeighborList(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box);
    void loadModel(const NNForce& force, const KernelSetup& setup);
    double executePackage(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, torch::Tensor positions, const OpenMM::Vec3* box);
    void addForces(OpenMM::ContextImpl& context, const torch::Tensor& forces);
    torch::Tensor boxTensor(const OpenMM::Vec3* box) const;
    /** The tensors and values the bound inputs are taken from, for one evaluation. */
    ModelArgumentSources argumentSources(OpenMM::ContextImpl& context, const torch::Tensor& positions, const OpenMM::Vec3* box);
    torch::jit::Module module;
    std::unique_ptr<ModelPackage> package;          // set for a .pt2 model (module unused then)
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
    int64_t minPairs = 0;                           // a .pt2's compiled lower bound on the pair dimension
    CellNeighborList neighborList;
    bool neighborListValid = false;
    std::vector<OpenMM::Vec3> positionsAtBuild;
    OpenMM::Vec3 boxAtBuild[3];
    torch::Tensor neighbors, shifts;
    std::vector<OpenMM::Vec3> modelPositions;
    ModelOutputs lastOutputs;                       // what forward() returned at the last execute (for getOutput)
};

} // namespace NNForcePlugin

#endif
