// The NNForce API: settings, validation of bad input at the call that makes it.
#include "TestCommon.h"
#include <vector>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

int main() {
    NNForce force(modelPath("lj"));
    CHECK(force.getFile() == modelPath("lj"));
    CHECK(force.getModelBytes().size() > 100);
    CHECK(!force.usesPeriodicBoundaryConditions());
    force.setUsesPeriodicBoundaryConditions(true);
    CHECK(force.usesPeriodicBoundaryConditions());
    force.setOutputsForces(true);
    CHECK(force.getOutputsForces());
    CHECK(force.addGlobalParameter("k", 2.5) == 0);
    CHECK(force.addGlobalParameter("lambda", 1.0) == 1);
    CHECK(force.getNumGlobalParameters() == 2);
    CHECK(force.getGlobalParameterName(1) == "lambda");
    CHECK(force.getGlobalParameterDefaultValue(0) == 2.5);
    force.setGlobalParameterDefaultValue(0, 3.0);
    CHECK(force.getGlobalParameterDefaultValue(0) == 3.0);
    CHECK_THROWS_WITH(force.addGlobalParameter("k", 1.0), "already added");
    force.addEnergyParameterDerivative("lambda");
    CHECK(force.getNumEnergyParameterDerivatives() == 1 && force.getEnergyParameterDerivativeName(0) == "lambda");
    force.setProperty("precision", "double");
    CHECK(force.getProperties().at("precision") == "double");
    CHECK_THROWS_WITH(force.setProperty("colour", "blue"), "unknown property 'colour'");
    CHECK_THROWS_WITH(force.setProperty("precision", "quad"), "'single' or 'double'");
    CHECK_THROWS_WITH(force.setProperty("CUDAGraphWarmupSteps", "0"), "integer >= 1");
    force.setNeighborList(0.5, 0.1, 1000);
    CHECK(force.usesNeighborList() && force.getNeighborListCutoff() == 0.5 && force.getNeighborListSkin() == 0.1);
    CHECK(force.getNeighborListCapacity() == 1000);
    CHECK_THROWS_WITH(force.setNeighborList(0.5, -1.0), "skin >= 0");
    force.setNeighborList(0.0);
    CHECK(!force.usesNeighborList());
    force.setAtoms({3, 1, 2});
    CHECK(force.getAtoms() == vector<int>({3, 1, 2}));
    CHECK_THROWS_WITH(force.setAtoms({1, 1}), "appears twice");
    CHECK_THROWS_WITH(force.setAtoms({-1}), "negative");
    force.setAtomicNumbers({1, 6, 8});
    CHECK_THROWS_WITH(force.setAtomicNumbers({0}), "not an atomic number");
    CHECK(force.addPerAtomInput("charges", {0.1, -0.2, 0.1}) == 0);
    CHECK_THROWS_WITH(force.addPerAtomInput("charges", {0, 0, 0}), "already added");
    CHECK_THROWS_WITH(force.addPerAtomInput("dipoles", {0, 0, 0, 0}, 3), "not a multiple");
    force.setPerAtomInput("charges", {0.3, 0.3, -0.6});
    CHECK(force.getPerAtomInputValues(0)[2] == -0.6);
    CHECK_THROWS_WITH(force.setPerAtomInput("spins", {0, 0, 0}), "no per-atom input named 'spins'");

    // Bad files fail at construction with a message that says what to do.
    CHECK_THROWS_WITH(NNForce("/nonexistent/model.pt"), "cannot open the model file");
    CHECK_THROWS_WITH(NNForce(modelPath("not_a_model")), "not a TorchScript archive");
    CHECK_THROWS_WITH(NNForce(modelPath("state_dict")), "torch.save");
    CHECK_THROWS_WITH(NNForce(vector<char>()), "empty");
    // The bytes constructor holds the same model.
    NNForce fromBytes(force.getModelBytes());
    CHECK(fromBytes.getModelBytes() == force.getModelBytes() && fromBytes.getFile().empty());
    cout << "Done" << endl;
    return 0;
}
