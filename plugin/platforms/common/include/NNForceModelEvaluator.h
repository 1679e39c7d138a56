#ifndef NNFORCE_MODELEVALUATOR_H_
#define NNFORCE_MODELEVALUATOR_H_

// The one model evaluation path of NNForce, shared by every platform kernel (Reference/CPU and CUDA): loading the
// model (a TorchScript archive converted to the kernel's precision, or a .pt2 AOTInductor package compiled for the
// kernel's device), binding forward()'s arguments, running it, unpacking its outputs (dict outputs included) and the
// backward pass for forces and parameter derivatives. A kernel fills ModelArgumentSources with tensors on its device
// and does with the results what is its own: the host kernels add them to OpenMM's vectors, the CUDA kernel hands
// them to its scatter kernels. Header-only, like NNForceModelBinding.h, so each platform compiles it with its own flags.

#include "NNForce.h"
#include "NNForceKernelSetup.h"
#include "NNForceModelBinding.h"
#include "NNForceModelOutputs.h"
#include "NNForceModelPackage.h"
#include "openmm/OpenMMException.h"
#include <torch/csrc/autograd/autograd.h>
#include <torch/script.h>
#include <algorithm>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace NNForcePlugin {

/** What one evaluation produced, on the model's device. */
struct ModelEvaluation {
    torch::Tensor energy;                    // one element
    torch::Tensor forces;                    // [M, 3] times forceSign; undefined without forces (or when E does not depend on x)
    double forceSign = 1.0;                  // -1: forces holds dE/dx from autograd (the caller negates while adding)
    std::vector<torch::Tensor> derivatives;  // dE/d each requested parameter, in the force's order (undefined: zero)
    std::vector<torch::Tensor> wrt;          // what differentiate() takes gradients with respect to
};

/** A model loaded for one kernel: a TorchScript module or a .pt2 package. */
class ModelEvaluator {
public:
    /**
     * Load the force's model on device: a TorchScript module in the precision the "precision" property (or the
     * platform's default, platformDouble) asks for, or a .pt2 package, which must have been compiled for this
     * device, in the precision asked for, and for the number of atoms the force gives it.
     */
    void load(const NNForce& force, const KernelSetup& setup, const torch::Device& device, bool platformDouble) {
        using OpenMM::OpenMMException;
        using std::to_string;
        outputsForces = setup.outputsForces;
        numAtoms = setup.atoms.size();
        derivativeIndex = setup.derivativeIndex;
        derivativeNames = setup.derivativeNames;
        if (force.getModelFormat() == "pt2") {
            package.reset(new ModelPackage(force.getModelBytes(), device.is_cuda() ? "cuda" : "cpu", device.is_cuda() ? device.index() : -1));
            modelDtype = package->dtype;
            std::string compiled = modelDtype == torch::kFloat64 ? "double" : "single";
            if (!setup.precision.empty() && setup.precision != compiled)
                throw OpenMMException("NNForce: the property precision=" + setup.precision + " asks for " + setup.precision + " precision but the .pt2 "
                                      "package was compiled in " + compiled + " precision. Export it with nnforce.export.to_pt2(..., precision=\"" +
                                      setup.precision + "\"), or drop the property.");
            if (numAtoms < package->minAtoms || (package->maxAtoms > 0 && numAtoms > package->maxAtoms))
                throw OpenMMException("NNForce: the .pt2 model was compiled for " + to_string(package->minAtoms) + " to " + to_string(package->maxAtoms) +
                                      " atoms but the force gives it " + to_string(numAtoms) + ". Re-export it with nnforce.export.to_pt2(..., "
                                      "max_atoms=...) covering this system.");
            checkNeighborCutoffCoversModel(recordedCutoff("{\"cutoff_nm\": " + package->get("cutoff_nm") + "}"), setup.cutoff);
            return;
        }
        package.reset();
        const std::vector<char>& bytes = force.getModelBytes();
        torch::jit::ExtraFilesMap extra{{"nnforce_metadata.json", ""}};  // the cutoff an nnforce export records
        try {
            std::istringstream stream(std::string(bytes.begin(), bytes.end()));
            module = torch::jit::load(stream, device, extra);
        }
        catch (const std::exception& e) {
            throw OpenMMException("NNForce: could not load the TorchScript model: " + torchMessage(e));
        }
        checkNeighborCutoffCoversModel(recordedCutoff(extra["nnforce_metadata.json"]), setup.cutoff);
        module.eval();
        // An openmm-torch model (KernelSetup::torchForceStyle) runs on the host as TorchForce runs it: float64
        // inputs, its own parameter and buffer dtypes.
        bool torchForceStyle = setup.torchForceStyle && !device.is_cuda();
        bool useDouble = device.is_cuda() ? setup.useDouble(platformDouble) : setup.useDoubleOnHost(platformDouble);
        modelDtype = useDouble ? torch::kFloat64 : torch::kFloat32;
        convertModelPrecision(module, modelDtype, torchForceStyle);  // floating-point parameters and buffers only
    }

    /** Bind the model's inputs to what the force provides (after load; atomicNumbers: whether the force gives them). */
    void bind(const NNForce& force, const KernelSetup& setup, bool atomicNumbers) {
        bool neighborList = setup.cutoff > 0;
        if (package) {
            boundInputs = bindPackageInputs(*package, force, setup.periodic, neighborList, atomicNumbers, setup.globalNames, setup.derivativeNames);
            checkReplicasKeptApart(boundInputs, force);
        }
        else
            boundInputs = bindModelInputs(module, force, setup.periodic, neighborList, atomicNumbers, setup.globalNames,
                                          setup.derivativeNames, setup.derivativeIndex);
    }

    /** A .pt2 package lists the elements it was trained on: refuse other atomic numbers. */
    void checkElements(const NNForce& force) const {
        if (!package || package->elements.empty())
            return;
        for (int z : force.getAtomicNumbers())
            if (std::find(package->elements.begin(), package->elements.end(), z) == package->elements.end()) {
                std::vector<std::string> known;
                for (int e : package->elements)
                    known.push_back(std::to_string(e));
                throw OpenMM::OpenMMException("NNForce: atomic number " + std::to_string(z) + " is not among the .pt2 model's elements (" +
                                              joinNames(known) + "); the model was not trained on it.");
            }
    }

    /** A .pt2 package is compiled for at most maxPairs pairs: refuse a neighbor list of numPairs beyond that. */
    void checkPairs(int64_t numPairs) const {
        if (package && package->maxPairs > 0 && numPairs > package->maxPairs)
            throw OpenMM::OpenMMException("NNForce: the neighbor list has " + std::to_string(numPairs) + " pairs but the .pt2 model was compiled for "
                                          "at most " + std::to_string(package->maxPairs) + ". Re-export it with nnforce.export.to_pt2(..., max_pairs=...) "
                                          "covering this system.");
    }

    /** Release the model now (a CUDA kernel does it with the device's context current). */
    void release() {
        package.reset();
        module = torch::jit::Module();
    }

    /** The bounds a .pt2 package puts on the pair dimension (0: none); a neighbor list pads to at least minPairs. */
    int64_t minPairs() const { return package ? package->minPairs : 0; }
    int64_t maxPairs() const { return package ? package->maxPairs : 0; }
    bool isPackage() const { return (bool) package; }
    torch::Dtype dtype() const { return modelDtype; }
    const std::vector<ModelInput>& inputs() const { return boundInputs; }

    /**
     * Run the model. For a TorchScript model the energy (and the model's own forces) come back here and
     * differentiate() adds the gradients; a .pt2 package returns energy, forces and derivatives at once (an energy-only
     * request runs the same function and drops the forces). Keeps what the model returned in outputs (getOutput).
     *
     * @param stream  the CUDA stream a .pt2 package runs on (nullptr: the current one)
     */
    ModelEvaluation forward(const ModelArgumentSources& sources, bool includeForces, ModelOutputs& outputs, void* stream = nullptr) {
        if (package)
            return runPackage(sources, includeForces, outputs, stream);
        // An energy-only request skips the backward pass by not requiring gradients on the inputs (not with a no-grad
        // guard: a model returning its own forces may differentiate inside forward()). A kernel's persistent input
        // tensors are switched each time (host-side state only: a captured CUDA graph is not affected).
        ModelEvaluation result;
        bool positionGradients = includeForces && !outputsForces;
        if (sources.positions.requires_grad() != positionGradients)
            sources.positions.requires_grad_(positionGradients);
        if (positionGradients)
            result.wrt.push_back(sources.positions);
        for (int index : derivativeIndex) {
            if (sources.globals[index].requires_grad() != includeForces)
                sources.globals[index].requires_grad_(includeForces);
            if (includeForces)
                result.wrt.push_back(sources.globals[index]);
        }
        std::vector<c10::IValue> arguments;
        arguments.reserve(boundInputs.size());
        for (auto& input : boundInputs)
            arguments.push_back(argumentFor(input, sources));
        c10::IValue output;
        try {
            output = module.forward(arguments);
        }
        catch (const std::exception& e) {
            throw OpenMM::OpenMMException("NNForce: the model raised an error in forward(): " + torchMessage(e));
        }
        if (output.isGenericDict())
            unpackDictOutput(output, outputsForces, numAtoms, result.energy, result.forces, outputs);
        else {
            unpackModelOutput(output, outputsForces, numAtoms, result.energy, result.forces);
            outputs.setPlain(result.energy, result.forces);
        }
        checkOutputPrecision(result.energy, result.forces);
        if (!includeForces)
            result.forces = torch::Tensor();
        return result;
    }

    /** The backward pass of a TorchScript model: forces (as dE/dx, forceSign -1) and parameter derivatives. */
    void differentiate(ModelEvaluation& result) {
        if (result.wrt.empty())
            return;
        std::vector<torch::Tensor> gradients(result.wrt.size());
        if (result.energy.requires_grad()) {
            try {
                gradients = torch::autograd::grad({result.energy.reshape({})}, result.wrt, {}, false, false, true);
            }
            catch (const std::exception& e) {
                throw OpenMM::OpenMMException("NNForce: the backward pass through the model failed: " + torchMessage(e));
            }
        }
        size_t first = 0;
        if (!outputsForces) {
            // forces from autograd: an energy with no path to the positions would give zero forces silently
            checkForcesHaveAGradient(result.energy.requires_grad(), gradients[0].defined());
            result.forces = gradients[0];
            result.forceSign = -1.0;
            first = 1;
        }
        result.derivatives.assign(gradients.begin() + first, gradients.end());
        result.wrt.clear();
    }

private:
    ModelEvaluation runPackage(const ModelArgumentSources& sources, bool includeForces, ModelOutputs& outputs, void* stream) {
        std::vector<torch::Tensor> arguments;
        arguments.reserve(boundInputs.size());
        for (auto& input : boundInputs)
            if (input.kind != ModelInput::Default)
                arguments.push_back(argumentFor(input, sources, true).toTensor());
        std::vector<torch::Tensor> values;
        {
            torch::NoGradGuard noGrad;  // the package computes its own gradients
            values = package->run(arguments, stream);
        }
        size_t expected = package->outputNames.size() + package->extraOutputNames.size();
        if (values.size() != expected)
            throw OpenMM::OpenMMException("NNForce: the .pt2 model returned " + std::to_string(values.size()) + " outputs but its metadata lists " +
                                          std::to_string(expected) + ".");
        outputs.setPackage(values, package->extraOutputNames, package->outputNames.size());
        ModelEvaluation result;
        result.energy = values[0];
        if (includeForces) {
            result.forces = values[1];
            for (auto& name : derivativeNames) {
                size_t k = std::find(package->derivativeNames.begin(), package->derivativeNames.end(), name) - package->derivativeNames.begin();
                result.derivatives.push_back(values[2 + k]);
            }
        }
        return result;
    }

    torch::jit::Module module;
    std::unique_ptr<ModelPackage> package;  // set for a .pt2 model (module unused then)
    torch::Dtype modelDtype = torch::kFloat64;
    std::vector<ModelInput> boundInputs;
    bool outputsForces = false;
    int64_t numAtoms = 0;
    std::vector<int> derivativeIndex;
    std::vector<std::string> derivativeNames;
};

} // namespace NNForcePlugin

#endif
