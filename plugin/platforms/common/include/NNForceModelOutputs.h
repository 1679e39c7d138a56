#ifndef NNFORCE_MODELOUTPUTS_H_
#define NNFORCE_MODELOUTPUTS_H_

// The named outputs of a model's last evaluation, kept by every platform kernel for NNForce::getOutput: a model's
// forward() may return a Dict[str, Tensor] with "energy" (required), "forces" (with setOutputsForces(True)) and any
// other named tensors ("uncertainty", "charges", ...). The kernel keeps references to the tensors forward() returned
// (detached, on the model's device, no copy); getOutput copies one to the host only when asked. Header-only, like
// NNForceModelBinding.h, so each platform compiles it with its own flags.

#include "NNForceModelBinding.h"
#include "openmm/OpenMMException.h"
#include <torch/script.h>
#include <string>
#include <vector>

namespace NNForcePlugin {

/** The outputs of one model evaluation, by name, in the order forward() returned them. */
struct ModelOutputs {
    std::vector<std::string> names;
    std::vector<torch::Tensor> values;
    bool evaluated = false;

    /** Record the outputs of a model returning the energy alone or (energy, forces). */
    void setPlain(const torch::Tensor& energy, const torch::Tensor& forces) {
        if (names.size() != (forces.defined() ? 2u : 1u)) {
            names = forces.defined() ? std::vector<std::string>{"energy", "forces"} : std::vector<std::string>{"energy"};
            values.resize(names.size());
        }
        values[0] = energy.detach();
        if (forces.defined())
            values[1] = forces.detach();
        evaluated = true;
    }

    /**
     * Record the outputs of a .pt2 package: the energy, the forces, then its extra outputs (extraNames, in order) taken
     * from values starting at index firstExtra.
     */
    void setPackage(const std::vector<torch::Tensor>& outputs, const std::vector<std::string>& extraNames, size_t firstExtra) {
        if (names.size() != 2 + extraNames.size()) {
            names = {"energy", "forces"};
            names.insert(names.end(), extraNames.begin(), extraNames.end());
            values.resize(names.size());
        }
        values[0] = outputs[0].detach();
        values[1] = outputs[1].detach();
        for (size_t k = 0; k < extraNames.size(); k++)
            values[2 + k] = outputs[firstExtra + k].detach();
        evaluated = true;
    }

    /** The names, checking that the model was evaluated. */
    const std::vector<std::string>& getNames() const {
        if (!evaluated)
            throw OpenMM::OpenMMException("NNForce: the model has not been evaluated in this Context yet, so it has no outputs to read. "
                                          "Call context.getState(getEnergy=True) or take an integrator step first.");
        return names;
    }

    /**
     * Copy the output called name to the host as float64 (row-major) and its dimensions into shape; throws
     * OpenMMException naming the outputs the model returns when it returns none called name.
     */
    void copy(const std::string& name, std::vector<double>& result, std::vector<int>& shape) const {
        const std::vector<std::string>& known = getNames();
        size_t index = std::find(known.begin(), known.end(), name) - known.begin();
        if (index == known.size())
            throw OpenMM::OpenMMException("NNForce: the model returned no output named '" + name + "'; its outputs are: " + joinNames(known) +
                                          ". A model returns extra outputs from forward() as a Dict[str, Tensor].");
        torch::Tensor host = values[index].to(torch::kCPU, torch::kFloat64).contiguous();
        shape.assign(host.sizes().begin(), host.sizes().end());
        result.assign(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
    }
};

/**
 * Split a Dict[str, Tensor] returned by forward() into the energy, the forces (when outputsForces) and the outputs
 * to keep, checking each: "energy" a floating-point tensor with one element, "forces" floating point [numAtoms, 3]
 * and present exactly when outputsForces, every other entry a real (not complex) tensor of any shape. Only tensor
 * metadata is inspected: no device sync.
 */
inline void unpackDictOutput(const c10::IValue& output, bool outputsForces, int64_t numAtoms, torch::Tensor& energy, torch::Tensor& forces,
                             ModelOutputs& outputs) {
    using OpenMM::OpenMMException;
    using std::string;
    c10::Dict<c10::IValue, c10::IValue> dict = output.toGenericDict();
    std::vector<string> names;
    std::vector<torch::Tensor> values;
    names.reserve(dict.size());
    values.reserve(dict.size());
    for (const auto& item : dict) {
        if (!item.key().isString())
            throw OpenMMException("NNForce: forward() returned a dict whose keys are not strings; return a Dict[str, Tensor].");
        string name = item.key().toStringRef();
        if (!item.value().isTensor())
            throw OpenMMException("NNForce: forward() returned '" + name + "' as " + item.value().tagKind() + "; every value of the "
                                  "returned dict must be a Tensor (Dict[str, Tensor]).");
        torch::Tensor value = item.value().toTensor();
        if (value.is_complex())
            throw OpenMMException("NNForce: forward() returned '" + name + "' as a complex tensor (" + string(c10::toString(value.scalar_type())) +
                                  "); outputs must be real (floating-point, integer or bool).");
        names.push_back(name);
        values.push_back(value.detach());
    }
    auto find = [&](const string& name) {
        return (int) (std::find(names.begin(), names.end(), name) - names.begin());
    };
    int e = find("energy"), f = find("forces");
    if (e == (int) names.size())
        throw OpenMMException("NNForce: forward() returned a dict without \"energy\" (its keys: " + joinNames(names) +
                              "); a dict output must hold the energy (kJ/mol) under \"energy\".");
    energy = dict.at("energy").toTensor();
    if (!energy.is_floating_point() || energy.numel() != 1)
        throw OpenMMException("NNForce: forward() returned \"energy\" of shape " + c10::str(energy.sizes()) + " and dtype " +
                              string(c10::toString(energy.scalar_type())) + "; it must be a floating-point scalar (kJ/mol). Sum per-atom "
                              "energies with .sum() and return them under another name.");
    if (outputsForces && f == (int) names.size())
        throw OpenMMException("NNForce: setOutputsForces(True) requires the dict returned by forward() to hold \"forces\" (its keys: " +
                              joinNames(names) + ").");
    if (!outputsForces && f != (int) names.size())
        throw OpenMMException("NNForce: forward() returned \"forces\" in its dict but the force computes forces from the energy's gradient; "
                              "call setOutputsForces(True) to use the model's forces.");
    if (outputsForces) {
        forces = dict.at("forces").toTensor();
        if (!forces.is_floating_point() || forces.dim() != 2 || forces.size(0) != numAtoms || forces.size(1) != 3)
            throw OpenMMException("NNForce: forward() returned \"forces\" of shape " + c10::str(forces.sizes()) + " and dtype " +
                                  string(c10::toString(forces.scalar_type())) + "; expected a floating-point tensor of shape [" +
                                  std::to_string(numAtoms) + ", 3] in kJ/mol/nm.");
    }
    outputs.names.swap(names);
    outputs.values.swap(values);
    outputs.evaluated = true;
}

/**
 * Refuse an energy or forces below single precision (float16, bfloat16): 85.05 kJ/mol comes back as 85.0625, and
 * forces lose as much. Call after unpacking forward()'s output (forces may be undefined).
 */
inline void checkOutputPrecision(const torch::Tensor& energy, const torch::Tensor& forces) {
    auto low = [](const torch::Tensor& t) {
        return t.defined() && (t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16);
    };
    for (const torch::Tensor* t : {&energy, &forces})
        if (low(*t))
            throw OpenMM::OpenMMException(std::string("NNForce: forward() returned the ") + (t == &energy ? "energy" : "forces") + " as " +
                                          std::string(c10::toString(t->scalar_type())) + ", which keeps about 3 significant digits "
                                          "(85.05 kJ/mol would read 85.0625). Return float32 or float64: convert with .float() or .double() "
                                          "before returning.");
}

/**
 * The forces come from the gradient of the energy with respect to the positions: refuse an energy with no autograd
 * path to them (computed under torch.no_grad(), detached, or not from the positions), which would give zero forces.
 *
 * @param energyRequiresGrad  whether the energy tensor requires grad
 * @param gradientDefined     whether autograd returned a gradient for the positions
 */
inline void checkForcesHaveAGradient(bool energyRequiresGrad, bool gradientDefined) {
    if (energyRequiresGrad && gradientDefined)
        return;
    throw OpenMM::OpenMMException(std::string("NNForce: the model's energy has no autograd path to the positions (") +
                                  (energyRequiresGrad ? "it does not depend on them" : "it was computed under torch.no_grad(), detached, or not from them") +
                                  "), so the forces would be zero. Compute the energy from the positions argument with gradients enabled, "
                                  "or return the forces yourself and call setOutputsForces(True).");
}

} // namespace NNForcePlugin

#endif
