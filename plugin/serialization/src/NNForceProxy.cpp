#include "NNForceProxy.h"
#include "NNForce.h"
#include "NNForceModelArchive.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <typeinfo>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

string NNForcePlugin::base64Encode(const vector<char>& bytes) {
    string out;
    out.reserve(4 * ((bytes.size() + 2) / 3));
    size_t i = 0;
    for (; i + 2 < bytes.size(); i += 3) {
        unsigned v = ((unsigned char) bytes[i] << 16) | ((unsigned char) bytes[i + 1] << 8) | (unsigned char) bytes[i + 2];
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += alphabet[(v >> 6) & 63];
        out += alphabet[v & 63];
    }
    size_t rest = bytes.size() - i;
    if (rest > 0) {
        unsigned v = (unsigned char) bytes[i] << 16;
        if (rest == 2)
            v |= (unsigned char) bytes[i + 1] << 8;
        out += alphabet[v >> 18];
        out += alphabet[(v >> 12) & 63];
        out += rest == 2 ? alphabet[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

vector<char> NNForcePlugin::base64Decode(const string& text) {
    int value[256];
    for (int& v : value)
        v = -1;
    for (int k = 0; k < 64; k++)
        value[(unsigned char) alphabet[k]] = k;
    vector<char> out;
    out.reserve(3 * text.size() / 4);
    unsigned buffer = 0;
    int bits = 0;
    size_t symbols = 0, padding = 0;
    for (char ch : text) {
        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')
            continue;
        if (ch == '=') {
            padding++;
            continue;
        }
        int v = value[(unsigned char) ch];
        if (v < 0 || padding > 0)
            throw OpenMMException(string("NNForce XML: the attribute 'model' is not valid base64 (") +
                                  (v < 0 ? "unexpected character" : "data after the '=' padding") + "): the XML was edited or damaged.");
        symbols++;
        buffer = (buffer << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((char) ((buffer >> bits) & 0xFF));
        }
    }
    if ((symbols + padding) % 4 != 0 || padding > 2 || (padding > 0 && (symbols + padding) % 4 != 0))
        throw OpenMMException("NNForce XML: the attribute 'model' is not valid base64 (its length is not a multiple of 4): "
                              "the XML was cut short, edited or damaged.");
    return out;
}

static string joinInts(const vector<int>& values) {
    string out;
    for (size_t i = 0; i < values.size(); i++)
        out += (i ? " " : "") + to_string(values[i]);
    return out;
}

static string joinDoubles(const vector<double>& values) {
    string out;
    char buffer[32];
    for (size_t i = 0; i < values.size(); i++) {
        snprintf(buffer, sizeof(buffer), "%.17g", values[i]);  // round-trips every double exactly
        out += (i ? " " : "") + string(buffer);
    }
    return out;
}

// Strict reading of the XML attributes: the whole text must be the value asked for, else an error names the
// attribute, what it holds and what was expected (OpenMM's getIntProperty & co. read "abc" as 0 and "12abc" as 12).

static string shortened(const string& text) {
    return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

[[noreturn]] static void badAttribute(const SerializationNode& node, const string& name, const string& text, const string& expected) {
    throw OpenMMException("NNForce XML: attribute '" + name + "' of <" + node.getName() + "> is '" + shortened(text) + "'; expected " +
                          expected + ". The XML was edited or damaged: serialize the force again.");
}

static string attribute(const SerializationNode& node, const string& name) {
    if (!node.hasProperty(name))
        throw OpenMMException("NNForce XML: <" + node.getName() + "> lacks the attribute '" + name +
                              "'. The XML was edited or damaged: serialize the force again.");
    return node.getStringProperty(name);
}

static vector<string> tokens(const string& text) {
    vector<string> out;
    istringstream in(text);
    string token;
    while (in >> token)
        out.push_back(token);
    return out;
}

static bool parseLong(const string& token, long long minimum, long long maximum, long long& value) {
    if (token.empty() || isspace((unsigned char) token[0]))
        return false;
    errno = 0;
    char* end = nullptr;
    value = strtoll(token.c_str(), &end, 10);
    return *end == '\0' && errno == 0 && value >= minimum && value <= maximum;
}

static bool parseFinite(const string& token, double& value) {
    if (token.empty() || isspace((unsigned char) token[0]))
        return false;
    errno = 0;
    char* end = nullptr;
    value = strtod(token.c_str(), &end);
    return *end == '\0' && errno == 0 && isfinite(value);
}

static long long intAttribute(const SerializationNode& node, const string& name, long long minimum, long long maximum) {
    string text = attribute(node, name);
    long long value;
    if (!parseLong(text, minimum, maximum, value))
        badAttribute(node, name, text, "an integer from " + to_string(minimum) + " to " + to_string(maximum));
    return value;
}

static double doubleAttribute(const SerializationNode& node, const string& name) {
    string text = attribute(node, name);
    double value;
    if (!parseFinite(text, value))
        badAttribute(node, name, text, "a finite number");
    return value;
}

static bool boolAttribute(const SerializationNode& node, const string& name) {
    string text = attribute(node, name);
    if (text == "1" || text == "true")
        return true;
    if (text == "0" || text == "false")
        return false;
    badAttribute(node, name, text, "1/true or 0/false");
}

static vector<int> intListAttribute(const SerializationNode& node, const string& name, long long minimum, long long maximum) {
    string text = attribute(node, name);
    vector<int> values;
    for (auto& token : tokens(text)) {
        long long value;
        if (!parseLong(token, minimum, maximum, value))
            badAttribute(node, name, text, "integers from " + to_string(minimum) + " to " + to_string(maximum) +
                         " separated by spaces ('" + shortened(token) + "' is not one)");
        values.push_back((int) value);
    }
    return values;
}

static vector<double> doubleListAttribute(const SerializationNode& node, const string& name) {
    string text = attribute(node, name);
    vector<double> values;
    for (auto& token : tokens(text)) {
        double value;
        if (!parseFinite(token, value))
            badAttribute(node, name, text, "finite numbers separated by spaces ('" + shortened(token) + "' is not one)");
        values.push_back(value);
    }
    return values;
}

NNForceProxy::NNForceProxy() : SerializationProxy("NNForce") {
}

void NNForceProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", 2);
    const NNForce& force = *reinterpret_cast<const NNForce*>(object);
    node.setStringProperty("file", force.getFile());
    node.setStringProperty("model", base64Encode(force.getModelBytes()));
    node.setStringProperty("modelSha256", sha256Hex(force.getModelBytes()));
    node.setIntProperty("forceGroup", force.getForceGroup());
    node.setStringProperty("name", force.getName());
    node.setBoolProperty("usesPeriodic", force.usesPeriodicBoundaryConditions());
    node.setBoolProperty("outputsForces", force.getOutputsForces());
    node.setDoubleProperty("neighborCutoff", force.getNeighborListCutoff());
    node.setDoubleProperty("neighborSkin", force.getNeighborListSkin());
    node.setIntProperty("neighborCapacity", force.getNeighborListCapacity());
    node.setStringProperty("atoms", joinInts(force.getAtoms()));
    node.setStringProperty("atomicNumbers", joinInts(force.getAtomicNumbers()));
    if (!force.getAtomReplicas().empty())
        node.setStringProperty("atomReplicas", joinInts(force.getAtomReplicas()));
    SerializationNode& globals = node.createChildNode("GlobalParameters");
    for (int i = 0; i < force.getNumGlobalParameters(); i++)
        globals.createChildNode("Parameter").setStringProperty("name", force.getGlobalParameterName(i))
               .setDoubleProperty("default", force.getGlobalParameterDefaultValue(i));
    SerializationNode& derivatives = node.createChildNode("EnergyParameterDerivatives");
    for (int i = 0; i < force.getNumEnergyParameterDerivatives(); i++)
        derivatives.createChildNode("Parameter").setStringProperty("name", force.getEnergyParameterDerivativeName(i));
    SerializationNode& properties = node.createChildNode("Properties");
    for (auto& p : force.getProperties())
        properties.createChildNode("Property").setStringProperty("name", p.first).setStringProperty("value", p.second);
    SerializationNode& perAtom = node.createChildNode("PerAtomInputs");
    for (int i = 0; i < force.getNumPerAtomInputs(); i++)
        perAtom.createChildNode("Input").setStringProperty("name", force.getPerAtomInputName(i))
               .setIntProperty("width", force.getPerAtomInputWidth(i))
               .setStringProperty("values", joinDoubles(force.getPerAtomInputValues(i)));
}

void* NNForceProxy::deserialize(const SerializationNode& node) const {
    long long version = intAttribute(node, "version", 1, 1000000);
    if (version > 2)
        throw OpenMMException("NNForce: unsupported serialization version " + to_string(version) + "; upgrade nnforce.");
    vector<char> bytes = base64Decode(attribute(node, "model"));
    if (version >= 2) {
        // Version 2 carries the SHA-256 of the model bytes: a changed byte anywhere in them is refused here.
        string expected = attribute(node, "modelSha256"), found = sha256Hex(bytes);
        if (expected != found)
            throw OpenMMException("NNForce XML: the model bytes do not match the SHA-256 stored beside them (modelSha256 " +
                                  shortened(expected) + ", bytes hash to " + found + "): the XML was changed or damaged after it "
                                  "was written. Serialize the force again from the original model.");
    }
    NNForce* force = new NNForce(bytes);  // verifies the archive: structure, every entry's CRC, size limits
    try {
        force->setForceGroup((int) intAttribute(node, "forceGroup", 0, 31));
        force->setName(node.hasProperty("name") ? node.getStringProperty("name") : "NNForce");
        force->setUsesPeriodicBoundaryConditions(boolAttribute(node, "usesPeriodic"));
        force->setOutputsForces(boolAttribute(node, "outputsForces"));
        force->setNeighborList(doubleAttribute(node, "neighborCutoff"), doubleAttribute(node, "neighborSkin"),
                               (int) intAttribute(node, "neighborCapacity", 0, min<long long>(NNForce::getMaxNeighborCapacity(), INT_MAX)));
        force->setAtoms(intListAttribute(node, "atoms", 0, INT_MAX));
        force->setAtomicNumbers(intListAttribute(node, "atomicNumbers", 1, 118));
        if (node.hasProperty("atomReplicas"))
            force->setAtomReplicas(intListAttribute(node, "atomReplicas", 0, INT_MAX));
        for (auto& p : node.getChildNode("GlobalParameters").getChildren())
            force->addGlobalParameter(attribute(p, "name"), doubleAttribute(p, "default"));
        for (auto& p : node.getChildNode("EnergyParameterDerivatives").getChildren())
            force->addEnergyParameterDerivative(attribute(p, "name"));
        for (auto& p : node.getChildNode("Properties").getChildren())
            force->setProperty(attribute(p, "name"), attribute(p, "value"));
        for (auto& p : node.getChildNode("PerAtomInputs").getChildren())
            force->addPerAtomInput(attribute(p, "name"), doubleListAttribute(p, "values"), (int) intAttribute(p, "width", 1, INT_MAX));
    }
    catch (...) {
        delete force;
        throw;
    }
    return force;
}

// Registered when the library is loaded, so XmlSerializer knows NNForce as soon as nnforce is imported.
extern "C" __attribute__((constructor)) void registerNNForceSerializationProxies() {
    SerializationProxy::registerProxy(typeid(NNForce), new NNForceProxy());
}
