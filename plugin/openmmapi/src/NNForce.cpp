#include "NNForce.h"
#include "NNForceModelArchive.h"
#include "internal/NNForceImpl.h"
#include "internal/NNModelArchive.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/AssertionUtilities.h"
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/stat.h>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

const vector<string>& NNForce::getKnownProperties() {
    static const vector<string> names = {"precision", "useCUDAGraphs", "CUDAGraphWarmupSteps"};
    return names;
}

NNForce::NNForce(const string& file, const map<string, string>& properties) : file(file) {
    struct stat status;
    if (stat(file.c_str(), &status) == 0 && S_ISDIR(status.st_mode))
        throw OpenMMException("NNForce: '" + file + "' is a directory, not a model file: give the path of the model file inside it.");
    ifstream in(file, ios::binary);
    if (!in)
        throw OpenMMException("NNForce: cannot open the model file '" + file +
                              "': check the path (a TorchScript file written by torch.jit.save).");
    modelBytes.assign(istreambuf_iterator<char>(in), istreambuf_iterator<char>());
    checkModelBytes();
    for (auto& p : properties)
        setProperty(p.first, p.second);
}

NNForce::NNForce(const vector<char>& modelBytes, const map<string, string>& properties) : modelBytes(modelBytes) {
    checkModelBytes();
    for (auto& p : properties)
        setProperty(p.first, p.second);
}

void NNForce::checkModelBytes() {
    string where = file.empty() ? string("the model (given as bytes)") : "'" + file + "'";
    if (modelBytes.empty())
        throw OpenMMException("NNForce: " + where + " is empty; expected a TorchScript archive written by torch.jit.save "
                              "or an AOTInductor package (.pt2) written by nnforce.export.to_pt2.");
    static const char zipMagic[] = {'P', 'K', 3, 4};
    if (modelBytes.size() < 4 || !equal(zipMagic, zipMagic + 4, modelBytes.begin()))
        throw OpenMMException("NNForce: " + where + " is not a TorchScript archive or .pt2 package (not a zip file). "
                              "Save the model with torch.jit.save(torch.jit.script(model), path).");
    // Every entry's CRC, the zip structure and the size limits, before libtorch (which checks none of them) reads it.
    vector<ModelArchiveEntry> entries = verifyModelArchive(modelBytes, where, ModelArchiveLimits::fromEnvironment());
    // Told apart by the archive's entry names; a torch.save pickle is rejected with the fix.
    modelFormat = detectModelFormat(entries, where) == ModelFormat::AOTInductor ? 1 : 0;
}

/**
 * Refuse a global parameter or per-atom input named after an input nnforce itself provides (the model contract's
 * arguments): the model would receive nnforce's value under that name and the user's would be ignored.
 */
static void checkNotAContractName(const string& name, const string& call) {
    static const vector<string> contract = {"positions", "box", "neighbors", "shifts", "atomic_numbers", "replica"};
    if (name.empty())
        throw OpenMMException("NNForce::" + call + ": the name is empty; give the name of the forward() argument it is passed as.");
    if (find(contract.begin(), contract.end(), name) == contract.end())
        return;
    string how = name == "box" ? "setUsesPeriodicBoundaryConditions(True) (the box comes from the System/Context)"
               : name == "neighbors" || name == "shifts" ? "setNeighborList(cutoff_nm)"
               : name == "atomic_numbers" ? "setAtomicNumbers(...)"
               : name == "replica" ? "setAtomReplicas(...)" : "the Context's positions";
    throw OpenMMException("NNForce::" + call + ": '" + name + "' is an input NNForce provides itself (the model contract), so a " +
                          (call == "addPerAtomInput" ? "per-atom input" : "global parameter") + " of that name would be ignored. "
                          "Give '" + name + "' with " + how + ", or use another name.");
}

int NNForce::addGlobalParameter(const string& name, double defaultValue) {
    checkNotAContractName(name, "addGlobalParameter");
    for (auto& p : globalParameters)
        if (p.name == name)
            throw OpenMMException("NNForce: global parameter '" + name + "' was already added.");
    globalParameters.push_back({name, defaultValue});
    return (int) globalParameters.size() - 1;
}

const string& NNForce::getGlobalParameterName(int index) const {
    ASSERT_VALID_INDEX(index, globalParameters);
    return globalParameters[index].name;
}

void NNForce::setGlobalParameterName(int index, const string& name) {
    ASSERT_VALID_INDEX(index, globalParameters);
    checkNotAContractName(name, "setGlobalParameterName");
    globalParameters[index].name = name;
}

double NNForce::getGlobalParameterDefaultValue(int index) const {
    ASSERT_VALID_INDEX(index, globalParameters);
    return globalParameters[index].defaultValue;
}

void NNForce::setGlobalParameterDefaultValue(int index, double defaultValue) {
    ASSERT_VALID_INDEX(index, globalParameters);
    globalParameters[index].defaultValue = defaultValue;
}

void NNForce::addEnergyParameterDerivative(const string& name) {
    if (find(energyParameterDerivatives.begin(), energyParameterDerivatives.end(), name) != energyParameterDerivatives.end())
        throw OpenMMException("NNForce: the derivative with respect to '" + name + "' was already requested.");
    energyParameterDerivatives.push_back(name);
}

const string& NNForce::getEnergyParameterDerivativeName(int index) const {
    ASSERT_VALID_INDEX(index, energyParameterDerivatives);
    return energyParameterDerivatives[index];
}

void NNForce::setProperty(const string& name, const string& value) {
    const vector<string>& known = getKnownProperties();
    if (find(known.begin(), known.end(), name) == known.end()) {
        string list;
        for (auto& k : known)
            list += (list.empty() ? "" : ", ") + k;
        throw OpenMMException("NNForce: unknown property '" + name + "'. Known properties: " + list + ".");
    }
    if (name == "precision" && value != "single" && value != "double")
        throw OpenMMException("NNForce: property 'precision' must be 'single' or 'double', not '" + value + "'.");
    if (name == "useCUDAGraphs" && value != "true" && value != "false")
        throw OpenMMException("NNForce: property 'useCUDAGraphs' must be 'true' or 'false', not '" + value + "'.");
    if (name == "CUDAGraphWarmupSteps") {
        char* end = nullptr;
        long steps = strtol(value.c_str(), &end, 10);
        if (value.empty() || *end != '\0' || steps < 1)
            throw OpenMMException("NNForce: property 'CUDAGraphWarmupSteps' must be an integer >= 1, not '" + value + "'.");
    }
    properties[name] = value;
}

void NNForce::setNeighborList(double cutoff, double skin, int capacity) {
    if (!isfinite(cutoff) || !isfinite(skin) || skin < 0)
        throw OpenMMException("NNForce::setNeighborList: cutoff must be finite and skin >= 0 (both in nm).");
    if (cutoff < 0)
        throw OpenMMException("NNForce::setNeighborList: cutoff " + to_string(cutoff) + " nm is negative; give the model's cutoff "
                              "in nm, or 0 for no neighbor list.");
    if (capacity < 0)
        throw OpenMMException("NNForce::setNeighborList: capacity must be >= 0 (0 means no padding).");
    long long limit = getMaxNeighborCapacity();
    if (capacity > limit)
        throw OpenMMException("NNForce::setNeighborList: capacity " + to_string(capacity) + " pairs is more than the limit of " +
                              to_string(limit) + " (each pair costs 40 bytes or more). Use a capacity near the expected number of pairs "
                              "(the list grows when needed), or raise the limit with the environment variable NNFORCE_MAX_NEIGHBOR_CAPACITY.");
    neighborCutoff = max(cutoff, 0.0);
    neighborSkin = cutoff > 0 ? skin : 0.0;
    neighborCapacity = cutoff > 0 ? capacity : 0;
}

long long NNForce::getMaxNeighborCapacity() {
    const char* text = getenv("NNFORCE_MAX_NEIGHBOR_CAPACITY");
    if (text == nullptr || *text == '\0')
        return 1LL << 26;
    char* end = nullptr;
    long long value = strtoll(text, &end, 10);
    if (*end != '\0' || value < 1)
        throw OpenMMException(string("NNForce: the environment variable NNFORCE_MAX_NEIGHBOR_CAPACITY must be a whole number >= 1, not '") + text + "'.");
    return value;
}

void NNForce::setAtoms(const vector<int>& atoms) {
    set<int> seen;
    for (int a : atoms) {
        if (a < 0)
            throw OpenMMException("NNForce::setAtoms: atom index " + to_string(a) + " is negative.");
        if (!seen.insert(a).second)
            throw OpenMMException("NNForce::setAtoms: atom index " + to_string(a) + " appears twice.");
    }
    this->atoms = atoms;
}

void NNForce::setAtomReplicas(const vector<int>& replicas) {
    for (int r : replicas)
        if (r < 0)
            throw OpenMMException("NNForce::setAtomReplicas: replica index " + to_string(r) + " is negative; give each model atom "
                                  "the index (0, 1, ...) of the replica it belongs to.");
    atomReplicas = replicas;
}

int NNForce::getNumReplicas() const {
    return atomReplicas.empty() ? 1 : (int) set<int>(atomReplicas.begin(), atomReplicas.end()).size();
}

void NNForce::setAtomicNumbers(const vector<int>& atomicNumbers) {
    for (int z : atomicNumbers)
        if (z < 1 || z > 118)
            throw OpenMMException("NNForce::setAtomicNumbers: " + to_string(z) + " is not an atomic number (1..118).");
    this->atomicNumbers = atomicNumbers;
}

int NNForce::addPerAtomInput(const string& name, const vector<double>& values, int width) {
    if (width < 1)
        throw OpenMMException("NNForce::addPerAtomInput: width must be >= 1.");
    checkNotAContractName(name, "addPerAtomInput");
    for (auto& p : perAtomInputs)
        if (p.name == name)
            throw OpenMMException("NNForce::addPerAtomInput: input '" + name + "' was already added; use setPerAtomInput to change it.");
    if (values.size() % width != 0)
        throw OpenMMException("NNForce::addPerAtomInput: '" + name + "' has " + to_string(values.size()) +
                              " values, not a multiple of its width " + to_string(width) + ".");
    perAtomInputs.push_back({name, values, width});
    return (int) perAtomInputs.size() - 1;
}

void NNForce::setPerAtomInput(const string& name, const vector<double>& values) {
    for (auto& p : perAtomInputs)
        if (p.name == name) {
            if (values.size() % p.width != 0)
                throw OpenMMException("NNForce::setPerAtomInput: '" + name + "' has " + to_string(values.size()) +
                                      " values, not a multiple of its width " + to_string(p.width) + ".");
            p.values = values;
            return;
        }
    throw OpenMMException("NNForce::setPerAtomInput: no per-atom input named '" + name + "'; add it with addPerAtomInput.");
}

const string& NNForce::getPerAtomInputName(int index) const {
    ASSERT_VALID_INDEX(index, perAtomInputs);
    return perAtomInputs[index].name;
}

const vector<double>& NNForce::getPerAtomInputValues(int index) const {
    ASSERT_VALID_INDEX(index, perAtomInputs);
    return perAtomInputs[index].values;
}

int NNForce::getPerAtomInputWidth(int index) const {
    ASSERT_VALID_INDEX(index, perAtomInputs);
    return perAtomInputs[index].width;
}

void NNForce::updateParametersInContext(Context& context) {
    dynamic_cast<NNForceImpl&>(getImplInContext(context)).updateParametersInContext(getContextImpl(context));
}

vector<string> NNForce::getOutputNames(Context& context) {
    return dynamic_cast<NNForceImpl&>(getImplInContext(context)).getOutputNames();
}

void NNForce::getOutput(Context& context, const string& name, vector<double>& values, vector<int>& shape) {
    dynamic_cast<NNForceImpl&>(getImplInContext(context)).getOutput(name, values, shape);
}

ForceImpl* NNForce::createImpl() const {
    return new NNForceImpl(*this);
}
