// XML serialization round trip of every NNForce setting, model bytes included.
#include "TestCommon.h"
#include "openmm/serialization/XmlSerializer.h"
#include <sstream>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

int main() {
    NNForce force(modelPath("harmonic"));
    force.setForceGroup(5);
    force.setName("ml");
    force.setUsesPeriodicBoundaryConditions(true);
    force.setOutputsForces(true);
    force.addGlobalParameter("k", 1.0 / 3.0);
    force.addEnergyParameterDerivative("k");
    force.setProperty("precision", "double");
    force.setNeighborList(0.45, 0.05, 64);
    force.setAtoms({4, 0, 2});
    force.setAtomicNumbers({8, 1, 1});
    force.setAtomReplicas({0, 3, 3});
    force.addPerAtomInput("charges", {-0.834, 0.417, 0.1 + 0.2});
    force.addPerAtomInput("spin", {1, 2, 3, 4, 5, 6}, 2);
    stringstream buffer;
    XmlSerializer::serialize<NNForce>(&force, "Force", buffer);
    NNForce* copy = XmlSerializer::deserialize<NNForce>(buffer);
    CHECK(copy->getModelBytes() == force.getModelBytes());
    CHECK(copy->getForceGroup() == 5 && copy->getName() == "ml");
    CHECK(copy->usesPeriodicBoundaryConditions() && copy->getOutputsForces());
    CHECK(copy->getNumGlobalParameters() == 1 && copy->getGlobalParameterName(0) == "k");
    CHECK(copy->getGlobalParameterDefaultValue(0) == 1.0 / 3.0);
    CHECK(copy->getNumEnergyParameterDerivatives() == 1 && copy->getEnergyParameterDerivativeName(0) == "k");
    CHECK(copy->getProperties() == force.getProperties());
    CHECK(copy->getNeighborListCutoff() == 0.45 && copy->getNeighborListSkin() == 0.05 && copy->getNeighborListCapacity() == 64);
    CHECK(copy->getAtoms() == force.getAtoms() && copy->getAtomicNumbers() == force.getAtomicNumbers());
    CHECK(copy->getAtomReplicas() == force.getAtomReplicas() && copy->getNumReplicas() == 2);
    CHECK(copy->getNumPerAtomInputs() == 2 && copy->getPerAtomInputName(1) == "spin" && copy->getPerAtomInputWidth(1) == 2);
    CHECK(copy->getPerAtomInputValues(0) == force.getPerAtomInputValues(0));  // exact, 0.1 + 0.2 included
    CHECK(copy->getPerAtomInputValues(1) == force.getPerAtomInputValues(1));
    delete copy;

    // Every attribute is read strictly: a bad value is an error naming the attribute, never another setting.
    string xml = buffer.str();
    auto edited = [&](const string& from, const string& to) {
        size_t at = xml.find(from);
        CHECK(at != string::npos);
        string text = xml;
        text.replace(at, from.size(), to);
        return text;
    };
    auto load = [](const string& text) {
        stringstream in(text);
        delete XmlSerializer::deserialize<NNForce>(in);
    };
    CHECK_THROWS_WITH(load(edited("atoms=\"4 0 2\"", "atoms=\"a b c\"")), "attribute 'atoms'");
    CHECK_THROWS_WITH(load(edited("atomicNumbers=\"8 1 1\"", "atomicNumbers=\"8 1 x\"")), "attribute 'atomicNumbers'");
    CHECK_THROWS_WITH(load(edited("atomicNumbers=\"8 1 1\"", "atomicNumbers=\"8 1 200\"")), "attribute 'atomicNumbers'");
    CHECK_THROWS_WITH(load(edited("neighborCapacity=\"64\"", "neighborCapacity=\"4000000000000\"")), "attribute 'neighborCapacity'");
    CHECK_THROWS_WITH(load(edited("neighborCapacity=\"64\"", "neighborCapacity=\"4e12\"")), "attribute 'neighborCapacity'");
    CHECK_THROWS_WITH(load(edited("neighborCutoff=\"", "neighborCutoff=\"x")), "attribute 'neighborCutoff'");
    CHECK_THROWS_WITH(load(edited("usesPeriodic=\"1\"", "usesPeriodic=\"yes\"")), "attribute 'usesPeriodic'");
    CHECK_THROWS_WITH(load(edited("forceGroup=\"5\"", "forceGroup=\"5.5\"")), "attribute 'forceGroup'");
    CHECK_THROWS_WITH(load(edited("width=\"2\"", "width=\"two\"")), "attribute 'width'");
    CHECK_THROWS_WITH(load(edited("values=\"1 2 3", "values=\"1 2 nan")), "attribute 'values'");
    // The model bytes carry their SHA-256: one changed base64 character is refused, naming the hash.
    size_t model = xml.find("model=\"") + 7 + 400;
    string flipped = xml;
    flipped[model] = flipped[model] == 'A' ? 'B' : 'A';
    CHECK_THROWS_WITH(load(flipped), "SHA-256");
    CHECK_THROWS_WITH(load(edited("model=\"", "model=\"=")), "base64");
    // Version 1 (no hash) still loads; the archive's CRCs are checked all the same.
    string version1 = edited("version=\"2\"", "version=\"1\"");
    {
        stringstream in(version1);
        NNForce* old = XmlSerializer::deserialize<NNForce>(in);
        CHECK(old->getModelBytes() == force.getModelBytes());
        delete old;
    }
    CHECK_THROWS_WITH(load(edited("atomReplicas=\"0 3 3\"", "atomReplicas=\"0 -3 3\"")), "attribute 'atomReplicas'");
    NNForce single(modelPath("harmonic"));  // no replicas: one system, nothing written, nothing read back
    stringstream plain;
    XmlSerializer::serialize<NNForce>(&single, "Force", plain);
    CHECK(plain.str().find("atomReplicas") == string::npos);
    NNForce* singleCopy = XmlSerializer::deserialize<NNForce>(plain);
    CHECK(singleCopy->getAtomReplicas().empty() && singleCopy->getNumReplicas() == 1);
    delete singleCopy;
    cout << "Done" << endl;
    return 0;
}
