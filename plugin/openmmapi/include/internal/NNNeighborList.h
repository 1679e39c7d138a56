#ifndef NNFORCE_NEIGHBORLIST_H_
#define NNFORCE_NEIGHBORLIST_H_

#include "NNForce.h"
#include "openmm/Vec3.h"
#include <cstdint>
#include <vector>

namespace NNForcePlugin {

/**
 * An O(N) cell-list search for all pairs closer than a cutoff, for non-periodic systems and for periodic boxes
 * in OpenMM's reduced (lower-triangular, possibly triclinic) form. Pairs are reported once each (i < j), with
 * the shift that makes r_ij = positions[j] - positions[i] + shift the interacting image. Positions need not
 * lie in the primary cell.
 */
class NNFORCE_EXPORT CellNeighborList {
public:
    /**
     * Find all pairs within cutoff (nm). box is null for a non-periodic system, else the three reduced box
     * vectors; throws OpenMMException if 2 * cutoff exceeds the smallest box height or a position is not finite.
     * groups, when not empty, holds a group (replica) index per particle: only pairs within one group are found,
     * each group searched on its own as if it were alone in the box, so a group's pairs are exactly those of a
     * separate list over its particles.
     */
    void build(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, double cutoff,
               const std::vector<int>& groups = std::vector<int>());
    /** Number of pairs found. */
    int getNumPairs() const { return (int) first.size(); }
    std::vector<int64_t> first, second;  // i and j of each pair
    std::vector<double> shifts;          // 3 per pair, nm
private:
    void buildAll(const std::vector<OpenMM::Vec3>& positions, const OpenMM::Vec3* box, double cutoff);
};

} // namespace NNForcePlugin

#endif
