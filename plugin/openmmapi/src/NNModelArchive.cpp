// Which model format an archive holds, told from its entry names (the archive itself is read by ModelArchive.cpp).
#include "internal/NNModelArchive.h"
#include "openmm/OpenMMException.h"

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

namespace {

bool contains(const string& name, const string& part) {
    return name.find(part) != string::npos;
}

bool endsWith(const string& name, const string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace

ModelFormat NNForcePlugin::detectModelFormat(const vector<ModelArchiveEntry>& entries, const string& where) {
    bool torchScript = false, aoti = false, pickle = false, exported = false;
    for (auto& entry : entries) {
        const string& name = entry.name;
        torchScript |= endsWith(name, "/constants.pkl") || contains(name, "/code/");
        aoti |= contains(name, "/data/aotinductor/") && endsWith(name, ".so");
        pickle |= endsWith(name, "/data.pkl");
        exported |= contains(name, "serialized_exported_program") || contains(name, "/models/");
    }
    if (aoti)
        return ModelFormat::AOTInductor;
    if (torchScript)
        return ModelFormat::TorchScript;
    if (exported)
        throw OpenMMException("NNForce: " + where + " is a torch.export program that was not compiled with AOTInductor. "
                              "NNForce runs compiled packages: write one with nnforce.export.to_pt2(model, path, example) "
                              "or `nnforce export --format pt2`.");
    if (pickle)
        throw OpenMMException("NNForce: " + where + " is a torch.save pickle (weights or a pickled module), not a model NNForce can run. "
                              "Save the model with torch.jit.save(torch.jit.script(model), path), or compile it with "
                              "nnforce.export.to_pt2(model, path, example).");
    throw OpenMMException("NNForce: " + where + " is a zip archive but neither a TorchScript archive nor an AOTInductor package (.pt2). "
                          "Save the model with torch.jit.save(torch.jit.script(model), path) or nnforce.export.to_pt2(model, path, example).");
}
