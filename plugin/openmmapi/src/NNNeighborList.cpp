#include "internal/NNNeighborList.h"
#include "openmm/OpenMMException.h"
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

namespace {

// A grid of n[0] x n[1] x n[2] cells, each at least cutoff wide (measured perpendicular to its faces), with the
// particles sorted by cell (counting sort), so every partner within cutoff lies in the 27 surrounding cells.
struct CellGrid {
    int n[3];
    vector<int> cellStart, sorted;
    void fill(const vector<int>& cellOfParticle) {
        int numCells = n[0] * n[1] * n[2];
        cellStart.assign(numCells + 1, 0);
        for (int c : cellOfParticle)
            cellStart[c + 1]++;
        for (int c = 0; c < numCells; c++)
            cellStart[c + 1] += cellStart[c];
        sorted.resize(cellOfParticle.size());
        vector<int> next(cellStart.begin(), cellStart.end() - 1);
        for (int i = 0; i < (int) cellOfParticle.size(); i++)
            sorted[next[cellOfParticle[i]]++] = i;
    }
    int index(int a, int b, int c) const { return (c * n[1] + b) * n[0] + a; }
};

// Cells per axis: as many as fit with width >= cutoff, capped so the grid holds O(N) cells for sparse systems.
int cellsAlong(double width, double cutoff, int maxPerAxis) {
    int cells = (int) floor(width / cutoff);
    return max(1, min(cells, maxPerAxis));
}

string formatDouble(double x) {
    stringstream s;
    s.precision(6);
    s << x;
    return s.str();
}

void checkFinite(const vector<Vec3>& positions) {
    for (int i = 0; i < (int) positions.size(); i++)
        for (int k = 0; k < 3; k++)
            if (!isfinite(positions[i][k]))
                throw OpenMMException("NNForce: the position of particle " + to_string(i) +
                                      " is not finite (the simulation may have blown up; try a smaller time step or minimize first).");
}

// No box: a grid over the particles' bounding box; a cell's partners are in the (up to) 27 cells around it.
void buildOpen(const vector<Vec3>& positions, double cutoff, int maxPerAxis, vector<int64_t>& first, vector<int64_t>& second) {
    int numParticles = positions.size();
    double cutoff2 = cutoff * cutoff;
    Vec3 low = positions[0], high = positions[0];
    for (auto& p : positions)
        for (int k = 0; k < 3; k++) {
            low[k] = min(low[k], p[k]);
            high[k] = max(high[k], p[k]);
        }
    CellGrid grid;
    double width[3];
    for (int k = 0; k < 3; k++) {
        grid.n[k] = cellsAlong(high[k] - low[k], cutoff, maxPerAxis);
        width[k] = (high[k] - low[k]) / grid.n[k];
    }
    vector<int> cellOfParticle(numParticles);
    for (int i = 0; i < numParticles; i++) {
        int cell[3];
        for (int k = 0; k < 3; k++)
            cell[k] = width[k] > 0 ? min(grid.n[k] - 1, (int) ((positions[i][k] - low[k]) / width[k])) : 0;
        cellOfParticle[i] = grid.index(cell[0], cell[1], cell[2]);
    }
    grid.fill(cellOfParticle);
    for (int cz = 0; cz < grid.n[2]; cz++)
    for (int cy = 0; cy < grid.n[1]; cy++)
    for (int cx = 0; cx < grid.n[0]; cx++) {
        int home = grid.index(cx, cy, cz);
        for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int ox = cx + dx, oy = cy + dy, oz = cz + dz;
            if (ox < 0 || oy < 0 || oz < 0 || ox >= grid.n[0] || oy >= grid.n[1] || oz >= grid.n[2])
                continue;
            int other = grid.index(ox, oy, oz);
            for (int a = grid.cellStart[home]; a < grid.cellStart[home + 1]; a++) {
                int i = grid.sorted[a];
                for (int b = grid.cellStart[other]; b < grid.cellStart[other + 1]; b++) {
                    int j = grid.sorted[b];
                    if (j <= i)
                        continue;
                    Vec3 d = positions[j] - positions[i];
                    if (d.dot(d) < cutoff2) {
                        first.push_back(i);
                        second.push_back(j);
                    }
                }
            }
        }
    }
}

// Periodic: the cells per axis of a reduced box, after checking the box's form and that 2 cutoff fits in it.
// The height of the cell along axis k (distance between the faces spanned by the other two vectors) bounds how far
// apart in fractional coordinates two particles within cutoff can be: |ds_k| <= cutoff / height_k.
void periodicGridSize(const Vec3* box, double cutoff, int maxPerAxis, CellGrid& grid) {
    const Vec3 &a = box[0], &b = box[1], &c = box[2];
    if (a[1] != 0 || a[2] != 0 || b[2] != 0 || a[0] <= 0 || b[1] <= 0 || c[2] <= 0)
        throw OpenMMException("NNForce: the periodic box vectors are not in OpenMM's reduced form (a along x, b in the xy plane).");
    double volume = a[0] * b[1] * c[2];
    Vec3 bc = b.cross(c), ca = c.cross(a), ab = a.cross(b);
    double height[3] = {volume / sqrt(bc.dot(bc)), volume / sqrt(ca.dot(ca)), volume / sqrt(ab.dot(ab))};
    double minHeight = min(height[0], min(height[1], height[2]));
    if (2 * cutoff > minHeight)
        throw OpenMMException("NNForce: the neighbor-list cutoff (cutoff + skin = " + formatDouble(cutoff) +
                              " nm) is more than half the smallest periodic box height (" + formatDouble(minHeight) +
                              " nm). Use a larger box or a smaller cutoff/skin.");
    for (int k = 0; k < 3; k++)
        grid.n[k] = cellsAlong(height[k], cutoff, maxPerAxis);
}

// Fractional coordinates s (r = s0 a + s1 b + s2 c) of the lower-triangular box: each particle's position wrapped
// into the box, its lattice image (r = wrapped + image . box) and its cell; then the grid is filled.
void wrapIntoCells(const vector<Vec3>& positions, const Vec3* box, CellGrid& grid, vector<Vec3>& wrapped, vector<int>& image) {
    const Vec3 &a = box[0], &b = box[1], &c = box[2];
    int numParticles = positions.size();
    wrapped.resize(numParticles);
    image.resize(3 * numParticles);
    vector<int> cellOfParticle(numParticles);
    for (int i = 0; i < numParticles; i++) {
        const Vec3& r = positions[i];
        double s[3];
        s[2] = r[2] / c[2];
        s[1] = (r[1] - s[2] * c[1]) / b[1];
        s[0] = (r[0] - s[1] * b[0] - s[2] * c[0]) / a[0];
        int cell[3];
        for (int k = 0; k < 3; k++) {
            double whole = floor(s[k]);
            image[3 * i + k] = (int) whole;
            double frac = s[k] - whole;
            cell[k] = min(grid.n[k] - 1, max(0, (int) (frac * grid.n[k])));
        }
        wrapped[i] = r - a * image[3 * i] - b * image[3 * i + 1] - c * image[3 * i + 2];
        cellOfParticle[i] = grid.index(cell[0], cell[1], cell[2]);
    }
    grid.fill(cellOfParticle);
}

void buildPeriodic(const vector<Vec3>& positions, const Vec3* box, double cutoff, int maxPerAxis,
                   vector<int64_t>& first, vector<int64_t>& second, vector<double>& shifts) {
    const Vec3 &a = box[0], &b = box[1], &c = box[2];
    double cutoff2 = cutoff * cutoff;
    CellGrid grid;
    periodicGridSize(box, cutoff, maxPerAxis, grid);
    vector<Vec3> wrapped;
    vector<int> image;
    wrapIntoCells(positions, box, grid, wrapped, image);
    for (int cz = 0; cz < grid.n[2]; cz++)
    for (int cy = 0; cy < grid.n[1]; cy++)
    for (int cx = 0; cx < grid.n[0]; cx++) {
        int home = grid.index(cx, cy, cz);
        if (grid.cellStart[home] == grid.cellStart[home + 1])
            continue;
        // Each (cell, lattice shift) pair below is distinct, even when one axis has only one or two cells.
        for (int dz = -1; dz <= 1; dz++)
        for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) {
            int o[3] = {cx + dx, cy + dy, cz + dz}, lattice[3];
            for (int k = 0; k < 3; k++) {
                lattice[k] = (int) floor((double) o[k] / grid.n[k]);
                o[k] -= lattice[k] * grid.n[k];
            }
            int other = grid.index(o[0], o[1], o[2]);
            Vec3 latticeShift = a * lattice[0] + b * lattice[1] + c * lattice[2];
            for (int p = grid.cellStart[home]; p < grid.cellStart[home + 1]; p++) {
                int i = grid.sorted[p];
                Vec3 ri = wrapped[i] - latticeShift;
                for (int q = grid.cellStart[other]; q < grid.cellStart[other + 1]; q++) {
                    int j = grid.sorted[q];
                    if (j <= i)
                        continue;
                    Vec3 d = wrapped[j] - ri;
                    if (d.dot(d) < cutoff2) {
                        first.push_back(i);
                        second.push_back(j);
                        // r_j - r_i + shift = wrapped_j + lattice - wrapped_i
                        double n0 = lattice[0] - image[3 * j] + image[3 * i];
                        double n1 = lattice[1] - image[3 * j + 1] + image[3 * i + 1];
                        double n2 = lattice[2] - image[3 * j + 2] + image[3 * i + 2];
                        Vec3 shift = a * n0 + b * n1 + c * n2;
                        shifts.push_back(shift[0]);
                        shifts.push_back(shift[1]);
                        shifts.push_back(shift[2]);
                    }
                }
            }
        }
    }
}

} // namespace

void CellNeighborList::build(const vector<Vec3>& positions, const Vec3* box, double cutoff, const vector<int>& groups) {
    if (groups.empty()) {
        buildAll(positions, box, cutoff);
        return;
    }
    if (groups.size() != positions.size())
        throw OpenMMException("NNForce: " + to_string(groups.size()) + " replica indices for " + to_string(positions.size()) + " atoms.");
    checkFinite(positions);
    // Each group on its own: indices are collected in increasing order, so the remapped pairs keep i < j.
    map<int, vector<int>> members;
    for (int i = 0; i < (int) groups.size(); i++)
        members[groups[i]].push_back(i);
    vector<int64_t> allFirst, allSecond;
    vector<double> allShifts;
    vector<Vec3> subset;
    for (auto& group : members) {
        const vector<int>& index = group.second;
        subset.resize(index.size());
        for (size_t k = 0; k < index.size(); k++)
            subset[k] = positions[index[k]];
        buildAll(subset, box, cutoff);
        for (size_t p = 0; p < first.size(); p++) {
            allFirst.push_back(index[first[p]]);
            allSecond.push_back(index[second[p]]);
        }
        allShifts.insert(allShifts.end(), shifts.begin(), shifts.end());
    }
    first.swap(allFirst);
    second.swap(allSecond);
    shifts.swap(allShifts);
}

void CellNeighborList::buildAll(const vector<Vec3>& positions, const Vec3* box, double cutoff) {
    first.clear();
    second.clear();
    shifts.clear();
    checkFinite(positions);
    int numParticles = positions.size();
    if (numParticles < 2)
        return;
    int maxPerAxis = 2 * (int) ceil(cbrt((double) numParticles)) + 1;
    if (box == nullptr) {
        buildOpen(positions, cutoff, maxPerAxis, first, second);
        shifts.assign(3 * first.size(), 0.0);
    }
    else
        buildPeriodic(positions, box, cutoff, maxPerAxis, first, second, shifts);
}
