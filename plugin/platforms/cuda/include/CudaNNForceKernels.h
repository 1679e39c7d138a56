#ifndef CUDA_NNFORCE_KERNELS_H_
#define CUDA_NNFORCE_KERNELS_H_

#include "NNForceKernels.h"
#include "NNForceKernelSetup.h"
#include "NNForceModelEvaluator.h"
#include "CudaNNForceDevice.h"
#include "openmm/cuda/CudaContext.h"
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/script.h>
#include <cuda.h>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace NNForcePlugin {

/**
 * Evaluates an NNForce with libtorch on the GPU of an OpenMM CUDA Context. The model (TorchScript, or a .pt2 package
 * compiled for CUDA) runs through the evaluator every platform shares (NNForceModelEvaluator.h); this kernel keeps
 * what is CUDA's: the gather/scatter kernels, the device neighbor list, streams, events and CUDA graphs.
 *
 * OpenMM 8.6's CUDA platform runs in its own CUDA context (cuCtxCreate), libtorch in the device's primary context.
 * All of NNForce's GPU work runs in the primary context on one torch stream: gather the model atoms' positions from
 * OpenMM's (reordered) posq, update the Verlet neighbor list, run the model (and its backward pass), check the
 * outputs and add forces, energy and parameter derivatives into OpenMM's buffers. The two contexts are ordered with
 * CUDA events (OpenMM's stream -> torch stream -> OpenMM's stream), never with a context synchronization, and
 * OpenMM's energy buffer receives the energy on the device, so OpenMM copies it back only when it sums energies.
 *
 * With the property useCUDAGraphs=true the per-step work is captured into two CUDA graphs (inputs + neighbor list;
 * model + backward + outputs) after CUDAGraphWarmupSteps eager steps, and re-captured when a shape changes (the
 * neighbor list grows) or a float-typed global parameter changes value.
 */
class CudaCalcNNForceKernel : public CalcNNForceKernel {
public:
    CudaCalcNNForceKernel(std::string name, const OpenMM::Platform& platform, OpenMM::CudaContext& cu);
    ~CudaCalcNNForceKernel();
    void initialize(const OpenMM::System& system, const NNForce& force) override;
    double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) override;
    void copyParametersToContext(OpenMM::ContextImpl& context, const NNForce& force) override;
    std::vector<std::string> getOutputNames() override;
    void getOutput(const std::string& name, std::vector<double>& values, std::vector<int>& shape) override;
private:
    void setUpDevice();
    void allocateBuffers(int numParticles);
    void allocateNeighborList(int capacity);
    void updateHostInputs(OpenMM::ContextImpl& context);
    void runInputs();
    void runModel(bool includeForces);
    ModelArgumentSources argumentSources();
    void invalidateGraphs();
    void checkStatus(bool wait);
    torch::TensorOptions realOptions() const;

    OpenMM::CudaContext& cu;
    CUcontext primaryContext = nullptr;
    bool hasInitialized = false, deviceReady = false;
    KernelSetup setup;
    ModelEvaluator model;
    torch::Device device{torch::kCPU};
    torch::Dtype dtype = torch::kFloat32;
    bool useDouble = false;
    cuda::OpenMMPrecision precision = cuda::OpenMMPrecision::Single;
    int numModelAtoms = 0;

    // Persistent device tensors (torch, primary context). Their addresses never change while graphs exist.
    torch::Tensor atomsDevice, slotOf, positions, box, atomicNumbers, status;
    torch::Tensor replicaDevice, replica;          // setAtomReplicas: int32 for the neighbor search, int64 for the model
    std::vector<torch::Tensor> perAtomValues, globalTensors;
    std::vector<double> globalValues;             // the values in globalTensors
    bool haveGlobalValues = false;
    double boxHost[9] = {0};
    bool haveBox = false;
    // Outputs of the last model evaluation (kept alive: graphs write into them)
    torch::Tensor energyOut, forcesOut, derivsOut;
    torch::Tensor derivSlotsDevice;
    // What forward() returned, per includeForces (each captured graph writes into its own tensors), for getOutput.
    std::map<bool, ModelOutputs> modelOutputs;
    bool lastIncludeForces = false;

    // Neighbor list (cutoff and skin in setup)
    int capacity = 0;              // allocated number of pairs
    bool fixedCapacity = false;    // capacity given by the user (else chosen and grown here)
    torch::Tensor neighbors, shifts, positionsAtBuild, neighborFlag, neighborCount;

    // OpenMM's device arrays (OpenMM's context), found at the first execute after OpenMM allocated them.
    void *posqPointer = nullptr, *posqCorrectionPointer = nullptr, *energyBufferPointer = nullptr, *paramDerivPointer = nullptr;
    int *atomIndexPointer = nullptr;
    unsigned long long* forcePointer = nullptr;

    // Streams, events, pinned host memory.
    std::unique_ptr<c10::cuda::CUDAStream> stream;
    CUevent openmmReady = nullptr;            // recorded on OpenMM's stream (OpenMM's context)
    cudaEvent_t inputsDone = nullptr, modelDone = nullptr;  // recorded on the torch stream (primary context)
    int* pinned = nullptr;                    // [0] pair count, [1..2] status
    bool statusPending = false;

    // CUDA graphs, keyed by includeForces.
    std::map<bool, std::unique_ptr<at::cuda::CUDAGraph>> modelGraphs;
    std::unique_ptr<at::cuda::CUDAGraph> inputGraph;
    std::map<bool, int> eagerSteps;
    int inputEagerSteps = 0;
};

} // namespace NNForcePlugin

#endif
