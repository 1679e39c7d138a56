// NNForce's small CUDA kernels: copy positions out of OpenMM's reordered arrays, the Verlet neighbor list with a fixed
// capacity, the check of the model's outputs, and the addition of forces/energy into OpenMM's buffers. Compiled by nvcc
// alone (no torch, no OpenMM headers); launched on the torch stream so that they can be captured into a CUDA graph.

#include "CudaNNForceDevice.h"
#include <cuda_runtime.h>
#include <cmath>

namespace NNForcePlugin {
namespace cuda {

namespace {

// OpenMM's double-precision posq element: four doubles (x, y, z, charge). Our own type, because CUDA 13 deprecates
// PosqDouble in favour of explicitly aligned variants; the array layout (32 bytes per element) is the same.
struct alignas(32) PosqDouble {
    double x, y, z, w;
};

constexpr int BlockSize = 128;
constexpr int TileSize = 128;  // atoms per tile of the brute-force pair search (= BlockSize)

inline int blocksFor(long long work) {
    long long blocks = (work + BlockSize - 1) / BlockSize;
    if (blocks < 1)
        blocks = 1;
    return (int) (blocks < 65535 ? blocks : 65535);  // grid-stride loops cover the rest
}

template <class T> __device__ inline bool finite(T x) { return isfinite(x); }

__global__ void invertAtomIndexKernel(const int* __restrict__ atomIndex, int numParticles, int* __restrict__ slotOf) {
    for (int s = blockIdx.x * blockDim.x + threadIdx.x; s < numParticles; s += blockDim.x * gridDim.x)
        slotOf[atomIndex[s]] = s;
}

template <class T, class P4>
__global__ void gatherKernel(const P4* __restrict__ posq, const float4* __restrict__ correction, const int* __restrict__ slotOf,
                             const int* __restrict__ atoms, int numModelAtoms, T* __restrict__ positions) {
    for (int m = blockIdx.x * blockDim.x + threadIdx.x; m < numModelAtoms; m += blockDim.x * gridDim.x) {
        int s = slotOf[atoms[m]];
        P4 p = posq[s];
        if (correction != nullptr) {
            // Mixed precision: the position is posq + posqCorrection, summed in double.
            float4 c = correction[s];
            positions[3 * m] = (T) ((double) p.x + (double) c.x);
            positions[3 * m + 1] = (T) ((double) p.y + (double) c.y);
            positions[3 * m + 2] = (T) ((double) p.z + (double) c.z);
        }
        else {
            positions[3 * m] = (T) p.x;
            positions[3 * m + 1] = (T) p.y;
            positions[3 * m + 2] = (T) p.z;
        }
    }
}

template <class T>
__global__ void neighborCheckKernel(const T* __restrict__ positions, const T* __restrict__ atBuild, int numAtoms, T limit2,
                                    int* __restrict__ flag, int* __restrict__ count) {
    int first = blockIdx.x * blockDim.x + threadIdx.x;
    if (first == 0)
        *count = 0;
    for (int i = first; i < numAtoms; i += blockDim.x * gridDim.x) {
        T dx = positions[3 * i] - atBuild[3 * i];
        T dy = positions[3 * i + 1] - atBuild[3 * i + 1];
        T dz = positions[3 * i + 2] - atBuild[3 * i + 2];
        T d2 = dx * dx + dy * dy + dz * dz;
        if (!(d2 <= limit2))  // also true for NaN, as in the Reference kernel
            *flag = 1;
    }
}

// Brute-force search over tiles: block (x, y) compares the atoms of tile x with those of tile y >= x. O(N^2) work, but
// it runs only when the Verlet list must be rebuilt (an atom moved more than skin/2), and needs no sorting.
template <class T>
__global__ void neighborBuildKernel(const T* __restrict__ positions, int numAtoms, const T* __restrict__ box, T cutoff2,
                                    const int* __restrict__ flag, int* __restrict__ count, int capacity,
                                    long long* __restrict__ neighbors, T* __restrict__ shifts, const int* __restrict__ replicas) {
    if (*flag == 0 || blockIdx.y < blockIdx.x)
        return;
    __shared__ T tile[3 * TileSize];
    int jStart = blockIdx.y * TileSize;
    for (int k = threadIdx.x; k < 3 * TileSize; k += blockDim.x) {
        int j = jStart + k / 3;
        tile[k] = j < numAtoms ? positions[3 * jStart + k] : (T) 0;
    }
    __syncthreads();
    int i = blockIdx.x * TileSize + threadIdx.x;
    if (i >= numAtoms)
        return;
    T xi = positions[3 * i], yi = positions[3 * i + 1], zi = positions[3 * i + 2];
    T ax = 0, bx = 0, by = 0, cx = 0, cy = 0, cz = 0;
    if (box != nullptr) {
        ax = box[0];
        bx = box[3];
        by = box[4];
        cx = box[6];
        cy = box[7];
        cz = box[8];
    }
    int jEnd = min(TileSize, numAtoms - jStart);
    for (int t = 0; t < jEnd; t++) {
        int j = jStart + t;
        if (j <= i || (replicas != nullptr && replicas[i] != replicas[j]))
            continue;  // never pair atoms of different replicas
        T dx = tile[3 * t] - xi, dy = tile[3 * t + 1] - yi, dz = tile[3 * t + 2] - zi;
        T sx = 0, sy = 0, sz = 0;
        if (box != nullptr) {
            // Minimum image in OpenMM's reduced (lower-triangular) box: remove c, then b, then a, as OpenMM does.
            T n3 = round(dz / cz);
            T n2 = round((dy - n3 * cy) / by);
            T n1 = round((dx - n3 * cx - n2 * bx) / ax);
            sx = -(n1 * ax + n2 * bx + n3 * cx);
            sy = -(n2 * by + n3 * cy);
            sz = -(n3 * cz);
            dx += sx;
            dy += sy;
            dz += sz;
        }
        if (dx * dx + dy * dy + dz * dz < cutoff2) {
            int p = atomicAdd(count, 1);
            if (p < capacity) {
                neighbors[p] = i;
                neighbors[capacity + p] = j;
                shifts[3 * p] = sx;
                shifts[3 * p + 1] = sy;
                shifts[3 * p + 2] = sz;
            }
        }
    }
}

template <class T>
__global__ void neighborFinalizeKernel(const int* __restrict__ flag, const int* __restrict__ count, int capacity,
                                       long long* __restrict__ neighbors, T* __restrict__ shifts, T padShift,
                                       const T* __restrict__ positions, T* __restrict__ atBuild, int numAtoms) {
    if (*flag == 0)
        return;
    int used = min(*count, capacity);
    int stride = blockDim.x * gridDim.x;
    for (int p = used + blockIdx.x * blockDim.x + threadIdx.x; p < capacity; p += stride) {
        neighbors[p] = 0;
        neighbors[capacity + p] = 0;
        shifts[3 * p] = padShift;
        shifts[3 * p + 1] = 0;
        shifts[3 * p + 2] = 0;
    }
    for (int k = blockIdx.x * blockDim.x + threadIdx.x; k < 3 * numAtoms; k += stride)
        atBuild[k] = positions[k];
}

template <class T>
__global__ void checkOutputsKernel(const T* __restrict__ energy, const T* __restrict__ forces, int numModelAtoms, int* __restrict__ status) {
    __shared__ int firstBad;
    if (threadIdx.x == 0)
        firstBad = 0x7fffffff;
    __syncthreads();
    if (forces != nullptr) {
        int local = 0x7fffffff;
        for (int k = threadIdx.x; k < 3 * numModelAtoms; k += blockDim.x)
            if (!finite(forces[k])) {
                local = k / 3;
                break;  // k only grows for this thread
            }
        if (local != 0x7fffffff)
            atomicMin(&firstBad, local);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        if (firstBad != 0x7fffffff && (status[0] == 0 || firstBad + 1 < status[0]))
            status[0] = firstBad + 1;
        if (energy != nullptr && !finite(energy[0]))
            status[1] = 1;
    }
}

// OpenMM's CUDA platform accumulates forces as 64-bit fixed point with 32 fractional bits.
template <class T> __device__ inline unsigned long long toFixedPoint(T x) {
    return (unsigned long long) ((long long) (x * (T) 0x100000000));
}

template <class T, class E>
__global__ void addForcesKernel(const T* __restrict__ forces, T sign, const int* __restrict__ atoms, const int* __restrict__ slotOf,
                                int numModelAtoms, int paddedNumAtoms, unsigned long long* __restrict__ forceBuffer,
                                const T* __restrict__ energy, E* __restrict__ energyBuffer, const T* __restrict__ derivs,
                                const int* __restrict__ derivSlots, int numDerivs, E* __restrict__ paramDerivBuffer,
                                const int* __restrict__ status) {
    if (status[0] != 0 || status[1] != 0)
        return;  // the host reports the problem; adding non-finite numbers would only corrupt OpenMM's state
    int first = blockIdx.x * blockDim.x + threadIdx.x;
    if (first == 0) {
        if (energy != nullptr)
            energyBuffer[0] += (E) energy[0];
        for (int k = 0; k < numDerivs; k++)
            paramDerivBuffer[derivSlots[k]] += (E) derivs[k];
    }
    if (forces == nullptr)
        return;
    for (int m = first; m < numModelAtoms; m += blockDim.x * gridDim.x) {
        int s = slotOf[atoms[m]];
        atomicAdd(&forceBuffer[s], toFixedPoint(sign * forces[3 * m]));
        atomicAdd(&forceBuffer[s + paddedNumAtoms], toFixedPoint(sign * forces[3 * m + 1]));
        atomicAdd(&forceBuffer[s + 2 * paddedNumAtoms], toFixedPoint(sign * forces[3 * m + 2]));
    }
}

} // namespace

void launchInvertAtomIndex(const int* atomIndex, int numParticles, int* slotOf, cudaStream_t stream) {
    invertAtomIndexKernel<<<blocksFor(numParticles), BlockSize, 0, stream>>>(atomIndex, numParticles, slotOf);
}

void launchGatherPositions(const void* posq, const void* posqCorrection, OpenMMPrecision precision, const int* slotOf,
                           const int* atoms, int numModelAtoms, void* positions, bool useDouble, cudaStream_t stream) {
    int blocks = blocksFor(numModelAtoms);
    const float4* correction = precision == OpenMMPrecision::Mixed ? (const float4*) posqCorrection : nullptr;
    if (precision == OpenMMPrecision::Double) {
        if (useDouble)
            gatherKernel<double, PosqDouble><<<blocks, BlockSize, 0, stream>>>((const PosqDouble*) posq, nullptr, slotOf, atoms, numModelAtoms, (double*) positions);
        else
            gatherKernel<float, PosqDouble><<<blocks, BlockSize, 0, stream>>>((const PosqDouble*) posq, nullptr, slotOf, atoms, numModelAtoms, (float*) positions);
    }
    else {
        if (useDouble)
            gatherKernel<double, float4><<<blocks, BlockSize, 0, stream>>>((const float4*) posq, correction, slotOf, atoms, numModelAtoms, (double*) positions);
        else
            gatherKernel<float, float4><<<blocks, BlockSize, 0, stream>>>((const float4*) posq, correction, slotOf, atoms, numModelAtoms, (float*) positions);
    }
}

void launchNeighborCheck(const void* positions, const void* positionsAtBuild, int numAtoms, double limit2, int* flag, int* count,
                         bool useDouble, cudaStream_t stream) {
    int blocks = blocksFor(numAtoms);
    if (useDouble)
        neighborCheckKernel<double><<<blocks, BlockSize, 0, stream>>>((const double*) positions, (const double*) positionsAtBuild, numAtoms, limit2, flag, count);
    else
        neighborCheckKernel<float><<<blocks, BlockSize, 0, stream>>>((const float*) positions, (const float*) positionsAtBuild, numAtoms, (float) limit2, flag, count);
}

void launchNeighborBuild(const void* positions, int numAtoms, const void* box, double cutoff, const int* flag, int* count,
                         int capacity, int64_t* neighbors, void* shifts, bool useDouble, cudaStream_t stream, const int* replicas) {
    int tiles = (numAtoms + TileSize - 1) / TileSize;
    dim3 grid(tiles, tiles);
    long long* n = (long long*) neighbors;
    if (useDouble)
        neighborBuildKernel<double><<<grid, TileSize, 0, stream>>>((const double*) positions, numAtoms, (const double*) box, cutoff * cutoff,
                                                                    flag, count, capacity, n, (double*) shifts, replicas);
    else
        neighborBuildKernel<float><<<grid, TileSize, 0, stream>>>((const float*) positions, numAtoms, (const float*) box, (float) (cutoff * cutoff),
                                                                   flag, count, capacity, n, (float*) shifts, replicas);
}

void launchNeighborFinalize(const int* flag, const int* count, int capacity, int64_t* neighbors, void* shifts, double padShift,
                            const void* positions, void* positionsAtBuild, int numAtoms, bool useDouble, cudaStream_t stream) {
    int blocks = blocksFor(capacity > 3 * numAtoms ? capacity : 3 * numAtoms);
    long long* n = (long long*) neighbors;
    if (useDouble)
        neighborFinalizeKernel<double><<<blocks, BlockSize, 0, stream>>>(flag, count, capacity, n, (double*) shifts, padShift,
                                                                         (const double*) positions, (double*) positionsAtBuild, numAtoms);
    else
        neighborFinalizeKernel<float><<<blocks, BlockSize, 0, stream>>>(flag, count, capacity, n, (float*) shifts, (float) padShift,
                                                                        (const float*) positions, (float*) positionsAtBuild, numAtoms);
}

void launchCheckOutputs(const void* energy, const void* forces, int numModelAtoms, int* status, bool useDouble, cudaStream_t stream) {
    if (useDouble)
        checkOutputsKernel<double><<<1, 256, 0, stream>>>((const double*) energy, (const double*) forces, numModelAtoms, status);
    else
        checkOutputsKernel<float><<<1, 256, 0, stream>>>((const float*) energy, (const float*) forces, numModelAtoms, status);
}

void launchAddForces(const void* forces, double sign, const int* atoms, const int* slotOf, int numModelAtoms, int paddedNumAtoms,
                     unsigned long long* forceBuffer, const void* energy, void* energyBuffer, const void* derivs, const int* derivSlots,
                     int numDerivs, void* paramDerivBuffer, OpenMMPrecision precision, const int* status, bool useDouble,
                     cudaStream_t stream) {
    int blocks = blocksFor(numModelAtoms);
    bool energyDouble = precision != OpenMMPrecision::Single;
    if (useDouble) {
        if (energyDouble)
            addForcesKernel<double, double><<<blocks, BlockSize, 0, stream>>>((const double*) forces, sign, atoms, slotOf, numModelAtoms, paddedNumAtoms,
                forceBuffer, (const double*) energy, (double*) energyBuffer, (const double*) derivs, derivSlots, numDerivs, (double*) paramDerivBuffer, status);
        else
            addForcesKernel<double, float><<<blocks, BlockSize, 0, stream>>>((const double*) forces, sign, atoms, slotOf, numModelAtoms, paddedNumAtoms,
                forceBuffer, (const double*) energy, (float*) energyBuffer, (const double*) derivs, derivSlots, numDerivs, (float*) paramDerivBuffer, status);
    }
    else {
        if (energyDouble)
            addForcesKernel<float, double><<<blocks, BlockSize, 0, stream>>>((const float*) forces, (float) sign, atoms, slotOf, numModelAtoms, paddedNumAtoms,
                forceBuffer, (const float*) energy, (double*) energyBuffer, (const float*) derivs, derivSlots, numDerivs, (double*) paramDerivBuffer, status);
        else
            addForcesKernel<float, float><<<blocks, BlockSize, 0, stream>>>((const float*) forces, (float) sign, atoms, slotOf, numModelAtoms, paddedNumAtoms,
                forceBuffer, (const float*) energy, (float*) energyBuffer, (const float*) derivs, derivSlots, numDerivs, (float*) paramDerivBuffer, status);
    }
}

const char* lastLaunchError() {
    cudaError_t error = cudaGetLastError();
    return error == cudaSuccess ? "" : cudaGetErrorString(error);
}

} // namespace cuda
} // namespace NNForcePlugin
