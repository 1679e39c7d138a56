// The Reference and CPU kernels against energies and forces computed here independently of torch.
#include "TestCommon.h"
#include "internal/NNNeighborList.h"
#include "openmm/Context.h"
#include "openmm/State.h"
#include "openmm/System.h"
#include "openmm/VerletIntegrator.h"
#include <random>
#include <set>
#include <tuple>
#include <vector>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

static double ljEnergy(const vector<Vec3>& pos, vector<Vec3>& forces) {
    double energy = 0;
    forces.assign(pos.size(), Vec3());
    for (size_t i = 0; i < pos.size(); i++)
        for (size_t j = i + 1; j < pos.size(); j++) {
            Vec3 d = pos[j] - pos[i];
            double r2 = d.dot(d), s6 = pow(0.09 / r2, 3);
            energy += 4 * (s6 * s6 - s6);
            double dEdr2 = 4 * (-6 * s6 * s6 + 3 * s6) / r2;  // dE/d(r^2)
            forces[i] += d * (2 * dEdr2);
            forces[j] -= d * (2 * dEdr2);
        }
    return energy;
}

static void testLJ(const string& platformName, double tol) {
    mt19937 rng(1);
    uniform_real_distribution<double> u(0.0, 1.2);
    int n = 12;
    System system;
    vector<Vec3> pos;
    for (int i = 0; i < n; i++) {
        system.addParticle(1.0);
        pos.push_back(Vec3(u(rng), u(rng), u(rng)));
    }
    NNForce* force = new NNForce(modelPath("lj"));
    force->setForceGroup(3);
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, Platform::getPlatformByName(platformName));
    context.setPositions(pos);
    State state = context.getState(State::Energy | State::Forces);
    vector<Vec3> expectedForces;
    double expected = ljEnergy(pos, expectedForces);
    CHECK_CLOSE(expected, state.getPotentialEnergy(), tol);
    for (int i = 0; i < n; i++)
        for (int k = 0; k < 3; k++)
            CHECK_CLOSE(expectedForces[i][k], state.getForces()[i][k], tol);
    // force groups: group 3 only
    CHECK(context.getState(State::Energy, false, 1 << 2).getPotentialEnergy() == 0.0);
    CHECK_CLOSE(expected, context.getState(State::Energy, false, 1 << 3).getPotentialEnergy(), tol);
}

static void testGlobalParameter() {
    System system;
    vector<Vec3> pos = {Vec3(0.1, 0.2, 0.3), Vec3(-0.4, 0.5, 0.6)};
    for (auto& p : pos)
        system.addParticle(1.0);
    NNForce* force = new NNForce(modelPath("harmonic"));
    force->addGlobalParameter("k", 2.0);
    force->addEnergyParameterDerivative("k");
    system.addForce(force);
    VerletIntegrator integrator(0.001);
    Context context(system, integrator, Platform::getPlatformByName("Reference"));
    context.setPositions(pos);
    double sum2 = 0;
    for (auto& p : pos)
        sum2 += p.dot(p);
    CHECK_CLOSE(2.0 * sum2, context.getState(State::Energy).getPotentialEnergy(), 1e-12);
    context.setParameter("k", 5.0);
    State state = context.getState(State::Energy | State::Forces | State::ParameterDerivatives);
    CHECK_CLOSE(5.0 * sum2, state.getPotentialEnergy(), 1e-12);
    CHECK_CLOSE(sum2, state.getEnergyParameterDerivatives().at("k"), 1e-12);
    CHECK_CLOSE(-2 * 5.0 * pos[1][2], state.getForces()[1][2], 1e-12);
}

static void testMissingInput() {
    System system;
    system.addParticle(1.0);
    system.addForce(new NNForce(modelPath("box")));  // needs "box" but the force is not periodic
    VerletIntegrator integrator(0.001);
    CHECK_THROWS_WITH(Context(system, integrator, Platform::getPlatformByName("Reference")), "setUsesPeriodicBoundaryConditions");
}

static void testNeighborList() {
    // Random triclinic box: the cell list equals a brute-force search over the 27 nearest images.
    mt19937 rng(7);
    uniform_real_distribution<double> u(-3.0, 6.0);
    Vec3 box[3] = {Vec3(2.0, 0, 0), Vec3(0.6, 2.1, 0), Vec3(-0.5, 0.7, 2.2)};
    vector<Vec3> pos(200);
    for (auto& p : pos)
        p = Vec3(u(rng), u(rng), u(rng));
    double cutoff = 0.9;
    CellNeighborList list;
    list.build(pos, box, cutoff);
    set<tuple<int, int, long, long, long>> found, expected;
    for (int p = 0; p < list.getNumPairs(); p++) {
        Vec3 shift(list.shifts[3 * p], list.shifts[3 * p + 1], list.shifts[3 * p + 2]);
        Vec3 d = pos[list.second[p]] - pos[list.first[p]] + shift;
        CHECK(d.dot(d) < cutoff * cutoff);
        found.insert({(int) list.first[p], (int) list.second[p], lround(shift[0] * 1e6), lround(shift[1] * 1e6), lround(shift[2] * 1e6)});
    }
    CHECK(found.size() == (size_t) list.getNumPairs());
    for (int i = 0; i < (int) pos.size(); i++)
        for (int j = i + 1; j < (int) pos.size(); j++)
            for (int a = -6; a <= 6; a++)
                for (int b = -6; b <= 6; b++)
                    for (int c = -6; c <= 6; c++) {
                        Vec3 shift = box[0] * a + box[1] * b + box[2] * c;
                        Vec3 d = pos[j] - pos[i] + shift;
                        if (d.dot(d) < cutoff * cutoff)
                            expected.insert({i, j, lround(shift[0] * 1e6), lround(shift[1] * 1e6), lround(shift[2] * 1e6)});
                    }
    CHECK(found == expected);
    CHECK_THROWS_WITH(list.build(pos, box, 1.2), "more than half the smallest periodic box height");
}

int main() {
    loadPlugins();
    testLJ("Reference", 1e-10);
    testLJ("CPU", 1e-4);
    testGlobalParameter();
    testMissingInput();
    testNeighborList();
    cout << "Done" << endl;
    return 0;
}
