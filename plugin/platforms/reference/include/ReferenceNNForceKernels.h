#ifndef REFERENCE_NNFORCE_KERNELS_H_
#define REFERENCE_NNFORCE_KERNELS_H_

#include "NNForceKernels.h"
#include "NNForceKernelSetup.h"
#include "NNForceModelEvaluator.h"
#include "internal/NNNeighborList.h"
#include "openmm/Vec3.h"
#include <torch/script.h>
#include <string>
#include <vector>

namespace NNForcePlugin {

/**
 * Evaluates an NNForce with libtorch on the host, for the Reference platform (float64) and the CPU platform
 * (float32 unless the "precision" property says "double"). The model runs through the evaluator every platform shares
 * (NNForceModelEvaluator.h: TorchScript with autograd, or a .pt2 package compiled for the CPU); this kernel gathers
 * the model atoms' positions, keeps the host neighbor list and adds the results to OpenMM's host vectors.
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
    void loadParameters(const NNForce& force);
    void updateNeighborList(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box);
    void addForces(OpenMM::ContextImpl& context, const torch::Tensor& forces, double sign);
    torch::Tensor boxTensor(const OpenMM::Vec3* box) const;
    /** The tensors and values the bound inputs are taken from, for one evaluation. */
    ModelArgumentSources argumentSources(OpenMM::ContextImpl& context, const torch::Tensor& positions, const OpenMM::Vec3* box);
    KernelSetup setup;
    ModelEvaluator model;
    torch::Tensor atomicNumbers;
    std::vector<int> replicaOfAtom;                 // empty, or the replica of each model atom (setAtomReplicas)
    torch::Tensor replica;                          // the same as int64 [M], for a model taking "replica"
    std::vector<torch::Tensor> perAtomValues;
    // neighbor list (Verlet list with skin, optional fixed capacity, grown when exceeded)
    int capacity = 0;
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
