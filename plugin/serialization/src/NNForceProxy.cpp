#include "NNForceProxy.h"
#include "NNForce.h"
#include "openmm/OpenMMException.h"
#include "openmm/serialization/SerializationNode.h"
#include <cstdio>
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
    for (char ch : text) {
        if (ch == '=')
            break;
        if (ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t')
            continue;
        int v = value[(unsigned char) ch];
        if (v < 0)
            throw OpenMMException("NNForce: the serialized model is not valid base64 (unexpected character).");
        buffer = (buffer << 6) | v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back((char) ((buffer >> bits) & 0xFF));
        }
    }
    return out;
}

static string joinInts(const vector<int>& values) {
    string out;
    for (size_t i = 0; i < values.size(); i++)
        out += (i ? " " : "") + to_string(values[i]);
    return out;
}

static vector<int> splitInts(const string& text) {
    vector<int> values;
    istringstream in(text);
    int v;
    while (in >> v)
        values.push_back(v);
    return values;
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

static vector<double> splitDoubles(const string& text) {
    vector<double> values;
    const char* p = text.c_str();
    char* end;
    while (true) {
        double v = strtod(p, &end);
        if (end == p)
            break;
        values.push_back(v);
        p = end;
    }
    return values;
}

NNForceProxy::NNForceProxy() : SerializationProxy("NNForce") {
}

void NNForceProxy::serialize(const void* object, SerializationNode& node) const {
    node.setIntProperty("version", 1);
    const NNForce& force = *reinterpret_cast<const NNForce*>(object);
    node.setStringProperty("file", force.getFile());
    node.setStringProperty("model", base64Encode(force.getModelBytes()));
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
    int version = node.getIntProperty("version");
    if (version != 1)
        throw OpenMMException("NNForce: unsupported serialization version " + to_string(version) + "; upgrade nnforce.");
    NNForce* force = new NNForce(base64Decode(node.getStringProperty("model")));
    try {
        force->setForceGroup(node.getIntProperty("forceGroup", 0));
        force->setName(node.getStringProperty("name", "NNForce"));
        force->setUsesPeriodicBoundaryConditions(node.getBoolProperty("usesPeriodic"));
        force->setOutputsForces(node.getBoolProperty("outputsForces"));
        force->setNeighborList(node.getDoubleProperty("neighborCutoff"), node.getDoubleProperty("neighborSkin"),
                               node.getIntProperty("neighborCapacity"));
        force->setAtoms(splitInts(node.getStringProperty("atoms")));
        force->setAtomicNumbers(splitInts(node.getStringProperty("atomicNumbers")));
        force->setAtomReplicas(splitInts(node.getStringProperty("atomReplicas", "")));
        for (auto& p : node.getChildNode("GlobalParameters").getChildren())
            force->addGlobalParameter(p.getStringProperty("name"), p.getDoubleProperty("default"));
        for (auto& p : node.getChildNode("EnergyParameterDerivatives").getChildren())
            force->addEnergyParameterDerivative(p.getStringProperty("name"));
        for (auto& p : node.getChildNode("Properties").getChildren())
            force->setProperty(p.getStringProperty("name"), p.getStringProperty("value"));
        for (auto& p : node.getChildNode("PerAtomInputs").getChildren())
            force->addPerAtomInput(p.getStringProperty("name"), splitDoubles(p.getStringProperty("values")), p.getIntProperty("width"));
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
