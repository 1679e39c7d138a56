#include "internal/NNModelArchive.h"
#include "openmm/OpenMMException.h"
#include <cstdint>
#include <cstring>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

namespace {

uint64_t readLittleEndian(const vector<char>& bytes, size_t offset, int size) {
    uint64_t value = 0;
    for (int k = size - 1; k >= 0; k--)
        value = (value << 8) | (unsigned char) bytes[offset + k];
    return value;
}

bool hasSignature(const vector<char>& bytes, size_t offset, uint32_t signature) {
    return offset + 4 <= bytes.size() && readLittleEndian(bytes, offset, 4) == signature;
}

bool contains(const string& name, const string& part) {
    return name.find(part) != string::npos;
}

bool endsWith(const string& name, const string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
}

} // namespace

vector<string> NNForcePlugin::listZipEntries(const vector<char>& bytes, const string& where) {
    const string bad = "NNForce: " + where + " is not a readable zip archive (";
    // The end-of-central-directory record: 22 bytes plus a comment of up to 65535 bytes at the end.
    if (bytes.size() < 22)
        throw OpenMMException(bad + "too short).");
    size_t end = string::npos;
    size_t lowest = bytes.size() > 22 + 65535 ? bytes.size() - 22 - 65535 : 0;
    for (size_t p = bytes.size() - 22; ; p--) {
        if (hasSignature(bytes, p, 0x06054b50)) {
            end = p;
            break;
        }
        if (p == lowest)
            break;
    }
    if (end == string::npos)
        throw OpenMMException(bad + "no end-of-central-directory record; the file is truncated or not a zip).");
    uint64_t count = readLittleEndian(bytes, end + 10, 2);
    uint64_t directory = readLittleEndian(bytes, end + 16, 4);
    if ((count == 0xFFFF || directory == 0xFFFFFFFF) && end >= 20 && hasSignature(bytes, end - 20, 0x07064b50)) {
        uint64_t record = readLittleEndian(bytes, end - 20 + 8, 8);  // the zip64 end-of-central-directory record
        if (record + 56 > bytes.size() || !hasSignature(bytes, record, 0x06064b50))
            throw OpenMMException(bad + "broken zip64 directory record).");
        count = readLittleEndian(bytes, record + 32, 8);
        directory = readLittleEndian(bytes, record + 48, 8);
    }
    vector<string> names;
    size_t p = directory;
    for (uint64_t e = 0; e < count; e++) {
        if (p + 46 > bytes.size() || !hasSignature(bytes, p, 0x02014b50))
            throw OpenMMException(bad + "central directory entry " + to_string(e) + " is damaged).");
        size_t nameLength = readLittleEndian(bytes, p + 28, 2);
        size_t extraLength = readLittleEndian(bytes, p + 30, 2);
        size_t commentLength = readLittleEndian(bytes, p + 32, 2);
        if (p + 46 + nameLength > bytes.size())
            throw OpenMMException(bad + "central directory entry " + to_string(e) + " runs past the end).");
        names.emplace_back(&bytes[p + 46], nameLength);
        p += 46 + nameLength + extraLength + commentLength;
    }
    return names;
}

ModelFormat NNForcePlugin::detectModelFormat(const vector<char>& bytes, const string& where) {
    vector<string> names = listZipEntries(bytes, where);
    bool torchScript = false, aoti = false, pickle = false, exported = false;
    for (auto& name : names) {
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
