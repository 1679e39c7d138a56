#ifndef NNFORCE_MODELPACKAGE_H_
#define NNFORCE_MODELPACKAGE_H_

// Running an AOTInductor package (.pt2 written by nnforce.export.to_pt2) from the bytes an NNForce holds.
//
// The package is one compiled function of tensors: inputs in the order its metadata names them ("nnforce.inputs"),
// outputs (energy, forces, dE/d each derivative parameter) in the order "nnforce.outputs" names them. Its metadata
// (flat "nnforce.*" strings compiled into the package) carries the contract: precision, torch version, the
// compiled bounds of the atom and pair dimensions, elements and cutoff. Header-only: Reference/CPU and CUDA compile it.

#include "NNForce.h"
#include "NNForceModelBinding.h"
#include "openmm/OpenMMException.h"
#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/headeronly/version.h>
#include <torch/torch.h>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <unistd.h>
#include <vector>

namespace NNForcePlugin {

inline std::vector<std::string> splitList(const std::string& text) {
    std::vector<std::string> items;
    std::stringstream stream(text);
    std::string item;
    while (std::getline(stream, item, ','))
        if (!item.empty())
            items.push_back(item);
    return items;
}

/** A private copy of the package on disk for the loader, which reads files only; removed when this goes away. */
class TemporaryPackageFile {
public:
    explicit TemporaryPackageFile(const std::vector<char>& bytes) {
        const char* dir = std::getenv("TMPDIR");
        std::string pattern = std::string(dir != nullptr && dir[0] != '\0' ? dir : "/tmp") + "/nnforce-model-XXXXXX.pt2";
        std::vector<char> name(pattern.begin(), pattern.end());
        name.push_back('\0');
        int fd = mkstemps(name.data(), 4);
        if (fd < 0)
            throw OpenMM::OpenMMException("NNForce: could not create a temporary file for the .pt2 package in " + pattern.substr(0, pattern.rfind('/')) +
                                          "; set TMPDIR to a writable directory.");
        path = name.data();
        size_t written = 0;
        while (written < bytes.size()) {
            ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
            if (n <= 0)
                break;
            written += n;
        }
        ::close(fd);
        if (written != bytes.size()) {
            std::remove(path.c_str());
            throw OpenMM::OpenMMException("NNForce: could not write the .pt2 package to " + path + " (disk full?).");
        }
    }
    ~TemporaryPackageFile() {
        std::remove(path.c_str());
    }
    std::string path;
};

/** An AOTInductor package loaded for one device, with its nnforce metadata. */
class ModelPackage {
public:
    /**
     * Check the package's metadata and load it.
     *
     * @param bytes        the .pt2 archive
     * @param deviceKey    "cpu" or "cuda": the device this kernel runs on
     * @param deviceIndex  the CUDA device index (-1 for the CPU)
     */
    ModelPackage(const std::vector<char>& bytes, const std::string& deviceKey, c10::DeviceIndex deviceIndex) {
        using OpenMM::OpenMMException;
        TemporaryPackageFile file(bytes);
        try {
            metadata = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(file.path, "model");
        }
        catch (const std::exception& e) {
            throw OpenMMException("NNForce: could not read the .pt2 package: " + torchMessage(e) +
                                  " Write it with nnforce.export.to_pt2(model, path, example) or `nnforce export --format pt2`.");
        }
        checkMetadata(deviceKey);
        try {
            loader.reset(new torch::inductor::AOTIModelPackageLoader(file.path, "model", false, 1, deviceIndex));
        }
        catch (const std::exception& e) {
            throw OpenMMException("NNForce: could not load the .pt2 package: " + torchMessage(e) +
                                  " Re-export it on this machine with nnforce.export.to_pt2 (or `nnforce export --format pt2`).");
        }
    }

    /**
     * Run the compiled function; inputs in the order of inputNames. A CUDA package runs on stream (a cudaStream_t;
     * nullptr: the current stream of its device), in order with the kernel's other work there.
     */
    std::vector<torch::Tensor> run(const std::vector<torch::Tensor>& inputs, void* stream = nullptr) {
        try {
            return loader->run(inputs, stream);
        }
        catch (const std::exception& e) {
            throw OpenMM::OpenMMException("NNForce: the .pt2 model failed: " + torchMessage(e));
        }
    }

    /** A metadata entry ("" when absent). */
    std::string get(const std::string& key) const {
        auto found = metadata.find("nnforce." + key);
        return found == metadata.end() ? std::string() : found->second;
    }

    std::unordered_map<std::string, std::string> metadata;
    std::vector<std::string> inputNames, outputNames, derivativeNames;
    /** Named outputs after the derivatives (a model returning a Dict: "uncertainty", "charges", ...), for getOutput. */
    std::vector<std::string> extraOutputNames;
    torch::Dtype dtype = torch::kFloat64;
    int64_t minAtoms = 1, maxAtoms = 0, minPairs = 0, maxPairs = 0;
    std::vector<int> elements;
private:
    void checkMetadata(const std::string& deviceKey) {
        using OpenMM::OpenMMException;
        const std::string reexport = " Re-export it with nnforce.export.to_pt2(model, path, example) or `nnforce export --format pt2`.";
        if (get("format") != "nnforce-pt2")
            throw OpenMMException("NNForce: the .pt2 package carries no nnforce metadata (it was not written by nnforce.export.to_pt2), "
                                  "so NNForce cannot tell which inputs it takes." + reexport);
        std::string built = get("torch_version");
        std::string running = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                              std::to_string(TORCH_VERSION_PATCH);
        if (built.compare(0, running.size(), running) != 0 || (built.size() > running.size() && built[running.size()] != '+'))
            throw OpenMMException("NNForce: the .pt2 package was compiled with torch " + built + " but NNForce runs torch " + running +
                                  "; compiled packages only run with the torch that built them." + reexport);
        // The device, as AOTInductor records it and as nnforce.export.to_pt2 does ("nnforce.device"): both must match.
        auto device = metadata.find("AOTI_DEVICE_KEY");
        std::string compiled = device == metadata.end() ? std::string("?") : device->second;
        if (compiled == deviceKey && !get("device").empty())
            compiled = get("device");
        if (compiled != deviceKey)
            throw OpenMMException("NNForce: the .pt2 package was compiled for the device '" + compiled + "' but this platform runs it on '" +
                                  deviceKey + "'. Recompile it for this device with nnforce.export.to_pt2(model, path, example, device=\"" +
                                  deviceKey + "\") or `nnforce export --format pt2 --device " + deviceKey + "`, or run it on " +
                                  (compiled == "cuda" ? "the CUDA platform." : "the Reference or CPU platform."));
        inputNames = splitList(get("inputs"));
        outputNames = splitList(get("outputs"));
        derivativeNames = splitList(get("derivatives"));
        extraOutputNames = splitList(get("extra_outputs"));  // absent in packages without extra outputs
        for (auto& name : extraOutputNames)
            if (name == "energy" || name == "forces" || std::count(extraOutputNames.begin(), extraOutputNames.end(), name) > 1)
                throw OpenMMException("NNForce: the .pt2 package's metadata lists the extra outputs '" + get("extra_outputs") +
                                      "'; their names must be unique and neither energy nor forces." + reexport);
        if (inputNames.empty() || outputNames.size() != 2 + derivativeNames.size() || outputNames[0] != "energy" || outputNames[1] != "forces")
            throw OpenMMException("NNForce: the .pt2 package's metadata lists inputs '" + get("inputs") + "' and outputs '" + get("outputs") +
                                  "'; expected inputs and the outputs energy, forces, then one derivative each." + reexport);
        std::string precision = get("precision");
        if (precision != "double" && precision != "single")
            throw OpenMMException("NNForce: the .pt2 package's metadata gives precision '" + precision + "'." + reexport);
        dtype = precision == "double" ? torch::kFloat64 : torch::kFloat32;
        minAtoms = std::stoll(get("min_atoms").empty() ? "1" : get("min_atoms"));
        maxAtoms = std::stoll(get("max_atoms").empty() ? "0" : get("max_atoms"));
        minPairs = std::stoll(get("min_pairs").empty() ? "0" : get("min_pairs"));
        maxPairs = std::stoll(get("max_pairs").empty() ? "0" : get("max_pairs"));
        for (auto& z : splitList(get("elements")))
            elements.push_back(std::stoi(z));
    }
    std::unique_ptr<torch::inductor::AOTIModelPackageLoader> loader;
};

/**
 * Bind the package's inputs (by the names its metadata lists) to what the force provides; throws OpenMMException saying
 * what is missing and how to fix it. Derivatives the force requests must be among the package's outputs.
 */
inline std::vector<ModelInput> bindPackageInputs(const ModelPackage& package, const NNForce& force, bool periodic, bool neighborList,
        bool atomicNumbers, const std::vector<std::string>& globalNames, const std::vector<std::string>& derivativeNames) {
    using OpenMM::OpenMMException;
    std::vector<ModelInput> inputs;
    bool seesBox = false;
    for (auto& name : package.inputNames) {
        ModelInput input{ModelInput::Default, -1, c10::IValue()};
        auto global = std::find(globalNames.begin(), globalNames.end(), name);
        std::string hint;
        if (name == "positions")
            input.kind = ModelInput::Positions;
        else if (name == "box") {
            input.kind = ModelInput::Box;
            hint = "The force is not periodic: call setUsesPeriodicBoundaryConditions(True), or export the model without a box in the example.";
            if (periodic)
                hint.clear();
        }
        else if (name == "neighbors" || name == "shifts") {
            input.kind = name == "neighbors" ? ModelInput::Neighbors : ModelInput::Shifts;
            if (!neighborList)
                hint = "The force has no neighbor list: call setNeighborList(cutoff_nm), or export the model without neighbors in the example.";
        }
        else if (name == "atomic_numbers") {
            input.kind = ModelInput::AtomicNumbers;
            if (!atomicNumbers)
                hint = "Give them with setAtomicNumbers(...).";
        }
        else if (global != globalNames.end()) {
            input.kind = ModelInput::Global;
            input.index = global - globalNames.begin();
        }
        else {
            for (int i = 0; i < force.getNumPerAtomInputs(); i++)
                if (force.getPerAtomInputName(i) == name) {
                    input.kind = ModelInput::PerAtom;
                    input.index = i;
                }
            if (input.kind != ModelInput::PerAtom)
                hint = "Add it with addGlobalParameter or addPerAtomInput.";
        }
        if (!hint.empty())
            throw OpenMMException("NNForce: the .pt2 model was compiled to take the input '" + name + "', which the force does not provide. " + hint);
        seesBox |= input.kind == ModelInput::Box || input.kind == ModelInput::Shifts;
        inputs.push_back(input);
    }
    if (periodic && !seesBox)
        throw OpenMMException("NNForce: the force is periodic but the .pt2 model takes neither 'box' nor a neighbor list with 'shifts', so it "
                              "would ignore periodic images. Export it with a box (or neighbors and shifts) in the example, or give the "
                              "force a neighbor list matching the compiled inputs.");
    for (auto& name : derivativeNames)
        if (std::find(package.derivativeNames.begin(), package.derivativeNames.end(), name) == package.derivativeNames.end())
            throw OpenMMException("NNForce: addEnergyParameterDerivative('" + name + "') needs dE/d" + name + ", which the .pt2 model was not "
                                  "compiled to return (it returns: energy, forces" + (package.derivativeNames.empty() ? std::string() :
                                  ", dE/d " + joinNames(package.derivativeNames)) + "). Re-export it with "
                                  "nnforce.export.to_pt2(model, path, example, derivatives=[\"" + name + "\"]).");
    return inputs;
}

} // namespace NNForcePlugin

#endif
