#include "CudaNNForceKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/common/ContextSelector.h"
#include "openmm/internal/ContextImpl.h"
#include <c10/cuda/CUDAGuard.h>
#include <algorithm>
#include <climits>
#include <cmath>
#include <sstream>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

namespace {

void checkDriver(CUresult result, const char* what) {
    if (result != CUDA_SUCCESS) {
        const char* name = nullptr;
        cuGetErrorName(result, &name);
        throw OpenMMException(string("NNForce (CUDA): ") + what + " failed: " + (name != nullptr ? name : "unknown CUDA error"));
    }
}

void checkRuntime(cudaError_t result, const char* what) {
    if (result != cudaSuccess)
        throw OpenMMException(string("NNForce (CUDA): ") + what + " failed: " + cudaGetErrorString(result));
}

void checkLaunch(const char* what) {
    const char* error = cuda::lastLaunchError();
    if (error[0] != '\0')
        throw OpenMMException(string("NNForce (CUDA): launching ") + what + " failed: " + error);
}

/** Makes the device's primary context (libtorch's) current for a scope, then restores the previous one. */
class PrimaryContextScope {
public:
    explicit PrimaryContextScope(CUcontext context) {
        checkDriver(cuCtxPushCurrent(context), "cuCtxPushCurrent");
    }
    ~PrimaryContextScope() {
        CUcontext popped;
        cuCtxPopCurrent(&popped);
    }
};

template <class T> T* pointer(CUdeviceptr p) {
    return reinterpret_cast<T*>(static_cast<uintptr_t>(p));
}

string formatNm(double x) {
    ostringstream out;
    out << x;
    return out.str();
}

} // namespace

CudaCalcNNForceKernel::CudaCalcNNForceKernel(string name, const Platform& platform, CudaContext& cu) : CalcNNForceKernel(name, platform), cu(cu) {
    checkDriver(cuDevicePrimaryCtxRetain(&primaryContext, cu.getDevice()), "cuDevicePrimaryCtxRetain");
}

CudaCalcNNForceKernel::~CudaCalcNNForceKernel() {
    if (primaryContext == nullptr)
        return;
    {
        PrimaryContextScope scope(primaryContext);
        if (stream)
            cudaStreamSynchronize(stream->stream());
        modelGraphs.clear();
        inputGraph.reset();
        model.release();  // a .pt2 package's loader frees its device memory in this context
        if (inputsDone != nullptr)
            cudaEventDestroy(inputsDone);
        if (modelDone != nullptr)
            cudaEventDestroy(modelDone);
        if (pinned != nullptr)
            cudaFreeHost(pinned);
    }
    if (openmmReady != nullptr) {
        ContextSelector selector(cu);
        cuEventDestroy(openmmReady);
    }
    cuDevicePrimaryCtxRelease(cu.getDevice());
}

torch::TensorOptions CudaCalcNNForceKernel::realOptions() const {
    return torch::TensorOptions().device(device).dtype(dtype);
}

void CudaCalcNNForceKernel::initialize(const System& system, const NNForce& force) {
    // The set-up and the model evaluation are shared with the Reference kernel; properties were validated by NNForce::setProperty.
    setup = KernelSetup(system, force);
    numModelAtoms = setup.atoms.size();
    fixedCapacity = setup.capacity > 0;
    device = torch::Device(torch::kCUDA, (c10::DeviceIndex) cu.getDeviceIndex());
    PrimaryContextScope scope(primaryContext);
    c10::cuda::CUDAGuard guard(device);
    model.load(force, setup, device, cu.getUseDoublePrecision());
    dtype = model.dtype();
    useDouble = dtype == torch::kFloat64;
    precision = cu.getUseDoublePrecision() ? cuda::OpenMMPrecision::Double
              : cu.getUseMixedPrecision() ? cuda::OpenMMPrecision::Mixed : cuda::OpenMMPrecision::Single;
    stream.reset(new c10::cuda::CUDAStream(c10::cuda::getStreamFromPool(false, device.index())));
    c10::cuda::CUDAStreamGuard streamGuard(*stream);

    // Atomic numbers and per-atom inputs (checked by the shared helpers, as in the Reference kernel).
    atomicNumbers = atomicNumberTensor(force, numModelAtoms, false);
    if (atomicNumbers.defined()) {
        model.checkElements(force);
        atomicNumbers = atomicNumbers.to(device);
    }
    perAtomValues.clear();
    for (auto& t : perAtomTensors(force, numModelAtoms, dtype, -1))
        perAtomValues.push_back(t.to(device));
    const vector<int>& replicaOfAtom = force.getAtomReplicas();
    if (!replicaOfAtom.empty()) {
        replicaDevice = torch::tensor(replicaOfAtom, torch::kInt32).to(device);  // for the neighbor search
        replica = replicaDevice.to(torch::kInt64);                                // the model's "replica" input
    }
    model.bind(force, setup, atomicNumbers.defined());
    for (auto& name : setup.derivativeNames)
        cu.addEnergyParameterDerivative(name);
    allocateBuffers(system.getNumParticles());
    checkRuntime(cudaEventCreateWithFlags(&inputsDone, cudaEventDisableTiming), "cudaEventCreate");
    checkRuntime(cudaEventCreateWithFlags(&modelDone, cudaEventDisableTiming), "cudaEventCreate");
    checkRuntime(cudaHostAlloc((void**) &pinned, 4 * sizeof(int), cudaHostAllocPortable), "cudaHostAlloc");
    pinned[0] = pinned[1] = pinned[2] = pinned[3] = 0;
    {
        ContextSelector selector(cu);
        checkDriver(cuEventCreate(&openmmReady, CU_EVENT_DISABLE_TIMING), "cuEventCreate");
    }
    hasInitialized = true;
}

/** The persistent tensors: captured graphs read and write them in place. */
void CudaCalcNNForceKernel::allocateBuffers(int numParticles) {
    auto intOptions = torch::TensorOptions().device(device).dtype(torch::kInt32);
    atomsDevice = torch::tensor(setup.atoms, torch::kInt32).to(device);
    slotOf = torch::zeros({(int64_t) numParticles}, intOptions);
    positions = torch::zeros({numModelAtoms, 3}, realOptions());  // requires_grad set per evaluation by the evaluator
    box = torch::zeros({3, 3}, realOptions());
    status = torch::zeros({2}, intOptions);
    globalTensors.clear();
    for (size_t i = 0; i < setup.globalNames.size(); i++)
        globalTensors.push_back(torch::zeros({}, realOptions()));
    globalValues.assign(setup.globalNames.size(), 0.0);
    haveGlobalValues = false;
    haveBox = false;
    if (setup.cutoff > 0) {
        positionsAtBuild = torch::zeros({numModelAtoms, 3}, realOptions());
        neighborFlag = torch::ones({1}, intOptions);
        neighborCount = torch::zeros({1}, intOptions);
        allocateNeighborList(fixedCapacity ? setup.capacity : max(256, 32 * numModelAtoms));
    }
}

void CudaCalcNNForceKernel::allocateNeighborList(int newCapacity) {
    // A .pt2 package takes between minPairs and maxPairs pairs (padded with far-away pairs up to the capacity).
    int64_t size = max<int64_t>(newCapacity, model.minPairs());
    capacity = (int) (model.maxPairs() > 0 ? min(size, model.maxPairs()) : size);
    neighbors = torch::zeros({2, (int64_t) capacity}, torch::TensorOptions().device(device).dtype(torch::kInt64));
    shifts = torch::zeros({(int64_t) capacity, 3}, realOptions());
}

void CudaCalcNNForceKernel::setUpDevice() {
    // OpenMM allocates its arrays in CudaContext::initialize(), after the forces' kernels were initialized.
    posqPointer = pointer<void>(cu.getPosq().getDevicePointer());
    if (precision == cuda::OpenMMPrecision::Mixed)
        posqCorrectionPointer = pointer<void>(cu.getPosqCorrection().getDevicePointer());
    atomIndexPointer = pointer<int>(cu.getAtomIndexArray().getDevicePointer());
    forcePointer = pointer<unsigned long long>(cu.getLongForceBuffer().getDevicePointer());
    energyBufferPointer = pointer<void>(cu.getEnergyBuffer().getDevicePointer());
    if (!setup.derivativeNames.empty()) {
        paramDerivPointer = pointer<void>(cu.getEnergyParamDerivBuffer().getDevicePointer());
        // Slot 0 of OpenMM's per-thread derivative buffer holds one entry per derivative name, in this order.
        const vector<string>& all = cu.getEnergyParamDerivNames();
        vector<int> slots;
        for (auto& name : setup.derivativeNames)
            slots.push_back(find(all.begin(), all.end(), name) - all.begin());
        derivSlotsDevice = torch::tensor(slots, torch::kInt32).to(device);
    }
    deviceReady = true;
}

void CudaCalcNNForceKernel::copyParametersToContext(ContextImpl& /*context*/, const NNForce& force) {
    PrimaryContextScope scope(primaryContext);
    c10::cuda::CUDAGuard guard(device);
    c10::cuda::CUDAStreamGuard streamGuard(*stream);
    torch::NoGradGuard noGrad;
    torch::Tensor values = atomicNumberTensor(force, numModelAtoms, atomicNumbers.defined());
    if (values.defined()) {
        if (!atomicNumbers.defined())
            throw OpenMMException("NNForce: atomic numbers cannot be added to a Context that was created without them; create a new Context.");
        model.checkElements(force);
        atomicNumbers.copy_(values);  // in place: captured graphs keep reading the same memory
    }
    vector<torch::Tensor> updated = perAtomTensors(force, numModelAtoms, dtype, (int) perAtomValues.size());
    for (size_t i = 0; i < updated.size(); i++)
        perAtomValues[i].copy_(updated[i]);  // in place, as above
}

void CudaCalcNNForceKernel::invalidateGraphs() {
    if (!modelGraphs.empty() || inputGraph) {
        // A replay may still be running on the stream: wait before releasing the graphs and their memory.
        checkRuntime(cudaStreamSynchronize(stream->stream()), "cudaStreamSynchronize");
    }
    modelGraphs.clear();
    inputGraph.reset();
    eagerSteps.clear();
    inputEagerSteps = 0;
}

// Called with the primary context current and the torch stream selected.
void CudaCalcNNForceKernel::updateHostInputs(ContextImpl& context) {
    torch::NoGradGuard noGrad;
    if (setup.periodic) {
        Vec3 a, b, c;
        cu.getPeriodicBoxVectors(a, b, c);
        double values[9] = {a[0], a[1], a[2], b[0], b[1], b[2], c[0], c[1], c[2]};
        if (!haveBox || !equal(values, values + 9, boxHost)) {
            double cutoff = setup.cutoff, skin = setup.skin;
            if (cutoff > 0) {
                double volume = a[0] * b[1] * c[2];
                Vec3 bc = b.cross(c), ca = c.cross(a), ab = a.cross(b);
                double minHeight = min(volume / sqrt(bc.dot(bc)), min(volume / sqrt(ca.dot(ca)), volume / sqrt(ab.dot(ab))));
                if (2 * (cutoff + skin) > minHeight)
                    throw OpenMMException("NNForce: the neighbor-list cutoff (cutoff + skin = " + formatNm(cutoff + skin) +
                                          " nm) is more than half the smallest periodic box height (" + formatNm(minHeight) +
                                          " nm). Use a larger box or a smaller cutoff/skin.");
                neighborFlag.fill_(1);  // the box changed: rebuild the neighbor list
            }
            copy(values, values + 9, boxHost);
            haveBox = true;
            box.copy_(torch::from_blob(values, {3, 3}, torch::kFloat64).to(dtype));
        }
    }
    for (size_t i = 0; i < setup.globalNames.size(); i++) {
        double value = context.getParameter(setup.globalNames[i]);
        if (haveGlobalValues && value == globalValues[i])
            continue;
        bool bakedIntoGraph = false;
        for (auto& input : model.inputs())
            bakedIntoGraph |= (input.kind == ModelInput::GlobalFloat && input.index == (int) i);
        if (bakedIntoGraph && haveGlobalValues)
            invalidateGraphs();  // a Python float argument is a constant of the captured graph
        globalValues[i] = value;
        globalTensors[i].fill_(value);
    }
    haveGlobalValues = true;
}

void CudaCalcNNForceKernel::runInputs() {
    cudaStream_t s = stream->stream();
    int numParticles = cu.getNumAtoms();
    cuda::launchInvertAtomIndex(atomIndexPointer, numParticles, slotOf.data_ptr<int>(), s);
    cuda::launchGatherPositions(posqPointer, posqCorrectionPointer, precision, slotOf.data_ptr<int>(), atomsDevice.data_ptr<int>(),
                                numModelAtoms, positions.data_ptr(), useDouble, s);
    if (setup.cutoff > 0) {
        double list = setup.cutoff + setup.skin;
        cuda::launchNeighborCheck(positions.data_ptr(), positionsAtBuild.data_ptr(), numModelAtoms, 0.25 * setup.skin * setup.skin,
                                  neighborFlag.data_ptr<int>(), neighborCount.data_ptr<int>(), useDouble, s);
        cuda::launchNeighborBuild(positions.data_ptr(), numModelAtoms, setup.periodic ? box.data_ptr() : nullptr, list,
                                  neighborFlag.data_ptr<int>(), neighborCount.data_ptr<int>(), capacity, neighbors.data_ptr<int64_t>(),
                                  shifts.data_ptr(), useDouble, s, replicaDevice.defined() ? replicaDevice.data_ptr<int>() : nullptr);
        cuda::launchNeighborFinalize(neighborFlag.data_ptr<int>(), neighborCount.data_ptr<int>(), capacity, neighbors.data_ptr<int64_t>(),
                                     shifts.data_ptr(), 2 * list + 10.0, positions.data_ptr(), positionsAtBuild.data_ptr(), numModelAtoms,
                                     useDouble, s);
        checkRuntime(cudaMemsetAsync(neighborFlag.data_ptr<int>(), 0, sizeof(int), s), "cudaMemsetAsync");
    }
    checkLaunch("the input kernels");
}

ModelArgumentSources CudaCalcNNForceKernel::argumentSources() {
    ModelArgumentSources sources;
    sources.positions = positions;
    sources.box = [this]() { return box; };
    sources.neighbors = neighbors;
    sources.shifts = shifts;
    sources.atomicNumbers = atomicNumbers;
    sources.replica = replica;
    sources.globals = globalTensors;
    sources.globalValues = globalValues;
    sources.perAtom = &perAtomValues;
    return sources;
}

void CudaCalcNNForceKernel::runModel(bool includeForces) {
    ModelEvaluation result = model.forward(argumentSources(), includeForces, modelOutputs[includeForces], stream->stream());
    if (includeForces)
        model.differentiate(result);
    torch::Tensor derivs;
    if (includeForces && !setup.derivativeNames.empty()) {
        vector<torch::Tensor> values;
        for (auto& g : result.derivatives)
            values.push_back(g.defined() ? g.detach().reshape({}).to(dtype) : torch::zeros({}, realOptions()));
        derivs = torch::stack(values).contiguous();
    }
    // The forces keep the sign they came with (dE/dx from autograd is added with -1: no negation kernel).
    energyOut = result.energy.detach().reshape({1}).to(device, dtype).contiguous();
    forcesOut = result.forces.defined() ? result.forces.detach().to(device, dtype).contiguous() : torch::Tensor();
    derivsOut = derivs;
    cudaStream_t s = stream->stream();
    const void* forcePtr = forcesOut.defined() ? forcesOut.data_ptr() : nullptr;
    cuda::launchCheckOutputs(energyOut.data_ptr(), forcePtr, numModelAtoms, status.data_ptr<int>(), useDouble, s);
    cuda::launchAddForces(forcePtr, result.forceSign, atomsDevice.data_ptr<int>(), slotOf.data_ptr<int>(), numModelAtoms, cu.getPaddedNumAtoms(),
                          forcePointer, energyOut.data_ptr(), energyBufferPointer, derivsOut.defined() ? derivsOut.data_ptr() : nullptr,
                          derivsOut.defined() ? derivSlotsDevice.data_ptr<int>() : nullptr, derivsOut.defined() ? (int) derivsOut.numel() : 0,
                          paramDerivPointer, precision, status.data_ptr<int>(), useDouble, s);
    checkLaunch("the output kernels");
}

namespace {

// Run `body` eagerly, or capture it once into `graph` (after `warmup` eager runs) and replay it.
template <class Body>
void runMaybeCaptured(bool useGraphs, int warmup, int& eagerCount, unique_ptr<at::cuda::CUDAGraph>& graph, const char* what, Body body) {
    if (!useGraphs) {
        body();
        return;
    }
    if (!graph && eagerCount < warmup) {
        eagerCount++;
        body();
        return;
    }
    if (!graph) {
        unique_ptr<at::cuda::CUDAGraph> captured(new at::cuda::CUDAGraph());
        captured->capture_begin();
        try {
            body();
        }
        catch (const std::exception& e) {
            try {
                captured->capture_end();
            }
            catch (...) {
            }
            throw OpenMMException(string("NNForce: capturing ") + what + " into a CUDA graph failed (set the property useCUDAGraphs "
                                  "to \"false\" for models that synchronize with the host or change shapes): " + torchMessage(e));
        }
        try {
            captured->capture_end();
        }
        catch (const std::exception& e) {
            throw OpenMMException(string("NNForce: capturing ") + what + " into a CUDA graph failed (set the property useCUDAGraphs "
                                  "to \"false\" for models that synchronize with the host or change shapes): " + torchMessage(e));
        }
        graph = std::move(captured);
    }
    graph->replay();
}

} // namespace

vector<string> CudaCalcNNForceKernel::getOutputNames() {
    return modelOutputs[lastIncludeForces].getNames();
}

/** The copy to the host runs on the torch stream, after the model's last evaluation there. */
void CudaCalcNNForceKernel::getOutput(const string& name, vector<double>& values, vector<int>& shape) {
    const ModelOutputs& outputs = modelOutputs[lastIncludeForces];
    outputs.getNames();  // throws before any evaluation
    PrimaryContextScope scope(primaryContext);
    c10::cuda::CUDAGuard guard(device);
    c10::cuda::CUDAStreamGuard streamGuard(*stream);
    outputs.copy(name, values, shape);
}

void CudaCalcNNForceKernel::checkStatus(bool wait) {
    if (!statusPending)
        return;
    if (wait)
        checkRuntime(cudaEventSynchronize(modelDone), "cudaEventSynchronize");
    else {
        cudaError_t state = cudaEventQuery(modelDone);
        if (state == cudaErrorNotReady)
            return;
        checkRuntime(state, "cudaEventQuery");
    }
    statusPending = false;
    int badAtom = pinned[1], badEnergy = pinned[2];
    if (badAtom == 0 && badEnergy == 0)
        return;
    // Clear the sticky device status so that the Context can go on once the user fixes the cause.
    checkRuntime(cudaMemsetAsync(status.data_ptr<int>(), 0, 2 * sizeof(int), stream->stream()), "cudaMemsetAsync");
    pinned[1] = pinned[2] = 0;
    if (badEnergy != 0) {
        double value = energyOut.defined() ? energyOut.to(torch::kCPU, torch::kFloat64).item<double>() : NAN;
        throw OpenMMException(nonFiniteEnergyMessage(std::isfinite(value) ? NAN : value));
    }
    throw OpenMMException(nonFiniteForceMessage(setup.atoms[badAtom - 1]));
}

double CudaCalcNNForceKernel::execute(ContextImpl& context, bool includeForces, bool includeEnergy) {
    {
        // OpenMM's stream has produced this step's positions once it reaches here.
        ContextSelector selector(cu);
        checkDriver(cuEventRecord(openmmReady, cu.getCurrentStream()), "cuEventRecord");
    }
    bool overflow = false;
    {
        PrimaryContextScope scope(primaryContext);
        c10::cuda::CUDAGuard guard(device);
        c10::cuda::CUDAStreamGuard streamGuard(*stream);
        cudaStream_t s = stream->stream();
        if (!deviceReady)
            setUpDevice();
        checkStatus(false);  // a problem found by an earlier step's kernels (non-blocking)
        checkDriver(cuStreamWaitEvent(reinterpret_cast<CUstream>(s), openmmReady, 0), "cuStreamWaitEvent");
        updateHostInputs(context);
        runMaybeCaptured(setup.useCUDAGraphs, setup.cudaGraphWarmupSteps, inputEagerSteps, inputGraph, "the input kernels", [&]() { runInputs(); });
        if (setup.cutoff > 0) {
            checkRuntime(cudaMemcpyAsync(pinned, neighborCount.data_ptr<int>(), sizeof(int), cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
            checkRuntime(cudaEventRecord(inputsDone, s), "cudaEventRecord");
        }
        runMaybeCaptured(setup.useCUDAGraphs, setup.cudaGraphWarmupSteps, eagerSteps[includeForces], modelGraphs[includeForces], "the model",
                         [&]() { runModel(includeForces); });
        lastIncludeForces = includeForces;
        checkRuntime(cudaMemcpyAsync(pinned + 1, status.data_ptr<int>(), 2 * sizeof(int), cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
        checkRuntime(cudaEventRecord(modelDone, s), "cudaEventRecord");
        statusPending = true;
        if (setup.cutoff > 0) {
            // The neighbor list was built before the model ran: wait for that point only (the model keeps the GPU busy),
            // as OpenMM does for its own neighbor list. Too many pairs: grow, and have OpenMM compute this step again.
            checkRuntime(cudaEventSynchronize(inputsDone), "cudaEventSynchronize");
            int count = pinned[0];
            if (count > capacity) {
                int grown = capacity;
                if (fixedCapacity)
                    while (grown < count)
                        grown = max(grown + 1, (int) (1.5 * grown));
                else
                    grown = max(count + count / 4 + 64, (int) (1.5 * capacity));
                model.checkPairs(count);  // a .pt2 package takes at most the pairs it was compiled for
                invalidateGraphs();
                allocateNeighborList(grown);
                neighborFlag.fill_(1);
                overflow = true;
            }
        }
        if (includeEnergy)
            checkStatus(true);  // OpenMM synchronizes to sum the energy anyway: report problems at this very step
    }
    {
        // OpenMM's stream continues (integration, other forces) after the forces were added.
        ContextSelector selector(cu);
        checkDriver(cuStreamWaitEvent(cu.getCurrentStream(), reinterpret_cast<CUevent>(modelDone), 0), "cuStreamWaitEvent");
    }
    if (overflow)
        cu.setForcesValid(false);
    return 0.0;  // the energy went into OpenMM's energy buffer on the device
}
