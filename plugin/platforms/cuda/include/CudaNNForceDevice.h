#ifndef CUDA_NNFORCE_DEVICE_H_
#define CUDA_NNFORCE_DEVICE_H_

// Host launchers of NNForce's small CUDA kernels (src/CudaNNForceKernels.cu). This header needs no torch and no
// OpenMM: the .cu file is compiled by nvcc alone. Every launcher enqueues work on `stream` and returns at once
// (no host synchronization); all of them can be captured into a CUDA graph. `useDouble` selects the floating-point
// type (float or double) of the model's tensors; OpenMM's own arrays are described by `openmmPrecision`.

#include <cuda_runtime_api.h>
#include <cstdint>

namespace NNForcePlugin {
namespace cuda {

/** How OpenMM's CUDA context stores positions and energies. */
enum class OpenMMPrecision { Single, Mixed, Double };

/** slotOf[atomIndex[s]] = s for s < numParticles: where each particle currently sits in OpenMM's (reordered) arrays. */
void launchInvertAtomIndex(const int* atomIndex, int numParticles, int* slotOf, cudaStream_t stream);

/**
 * positions[m] = position of particle atoms[m] (nm), read from OpenMM's posq (float4 or double4) plus, in mixed
 * precision, posqCorrection (float4). positions is [numModelAtoms, 3] of float or double.
 */
void launchGatherPositions(const void* posq, const void* posqCorrection, OpenMMPrecision precision, const int* slotOf,
                           const int* atoms, int numModelAtoms, void* positions, bool useDouble, cudaStream_t stream);

/**
 * Verlet-list bookkeeping, step 1: flag becomes nonzero when an atom moved more than sqrt(limit2) since the last
 * build (or its position is not finite); count is reset to 0.
 */
void launchNeighborCheck(const void* positions, const void* positionsAtBuild, int numAtoms, double limit2, int* flag, int* count,
                         bool useDouble, cudaStream_t stream);

/**
 * Step 2 (does nothing unless flag is nonzero): write every pair i < j closer than cutoff (nm) into neighbors
 * ([2, capacity] int64, row 0 = i, row 1 = j) and shifts ([capacity, 3]) with r_ij = x_j - x_i + shift the minimum
 * image. box is the device [3,3] reduced box (rows a, b, c) or null when not periodic. count receives the total
 * number of pairs found, which may exceed capacity: pairs beyond capacity are not written and the caller must grow.
 * replicas, when not null, holds the replica index of each atom (device int32): pairs across replicas are skipped.
 */
void launchNeighborBuild(const void* positions, int numAtoms, const void* box, double cutoff, const int* flag, int* count,
                         int capacity, int64_t* neighbors, void* shifts, bool useDouble, cudaStream_t stream,
                         const int* replicas = nullptr);

/**
 * Step 3 (does nothing unless flag is nonzero): fill entries [min(count, capacity), capacity) with padding pairs
 * (0, 0) with shift (padShift, 0, 0), and remember the positions of this build.
 */
void launchNeighborFinalize(const int* flag, const int* count, int capacity, int64_t* neighbors, void* shifts, double padShift,
                            const void* positions, void* positionsAtBuild, int numAtoms, bool useDouble, cudaStream_t stream);

/**
 * Check the model's outputs with one thread block: status[0] becomes 1 + the smallest model atom index with a
 * non-finite force (if smaller than what it holds, 0 meaning none); status[1] becomes 1 if the energy is not
 * finite. The status is sticky until the host clears it. forces may be null.
 */
void launchCheckOutputs(const void* energy, const void* forces, int numModelAtoms, int* status, bool useDouble, cudaStream_t stream);

/**
 * Unless status reports a problem: add sign * forces[m] (kJ/mol/nm) to OpenMM's 64-bit fixed-point force buffer at
 * slot slotOf[atoms[m]], the energy (kJ/mol) to energyBuffer[0], and each derivs[k] to paramDerivBuffer[derivSlots[k]].
 * energyBuffer and paramDerivBuffer hold double in mixed and double precision, float in single precision.
 * forces, energy and derivs may each be null.
 */
void launchAddForces(const void* forces, double sign, const int* atoms, const int* slotOf, int numModelAtoms, int paddedNumAtoms,
                     unsigned long long* forceBuffer, const void* energy, void* energyBuffer, const void* derivs, const int* derivSlots,
                     int numDerivs, void* paramDerivBuffer, OpenMMPrecision precision, const int* status, bool useDouble,
                     cudaStream_t stream);

/** The last launch error as a message ("" when none). */
const char* lastLaunchError();

} // namespace cuda
} // namespace NNForcePlugin

#endif
