#ifndef NNFORCE_MODELBINDING_H_
#define NNFORCE_MODELBINDING_H_

// Logic shared by every platform kernel of NNForce (Reference/CPU and CUDA): binding the model's forward()
// arguments to what the force provides, and checking what forward() returned. Header-only so that each
// platform library compiles its own copy against its own libtorch flags; the error messages live here once.

#include "NNForce.h"
#include "openmm/OpenMMException.h"
#include <torch/script.h>
#include <algorithm>
#include <string>
#include <vector>

namespace NNForcePlugin {

/** Where the value of one forward() argument comes from. */
struct ModelInput {
    enum Kind { Positions, Box, Neighbors, Shifts, AtomicNumbers, Global, GlobalFloat, PerAtom, Default };
    Kind kind;
    int index;           // global parameter or per-atom input index
    c10::IValue value;   // the default value, for Default
};

/** libtorch's own messages carry a C++ backtrace we do not want in an OpenMMException. */
inline std::string torchMessage(const std::exception& e) {
    if (auto* error = dynamic_cast<const c10::Error*>(&e))
        return error->what_without_backtrace();
    return e.what();
}

inline std::string joinNames(const std::vector<std::string>& names) {
    std::string result;
    for (auto& n : names)
        result += (result.empty() ? "" : ", ") + n;
    return result;
}

/**
 * Whether a buffer keeps float64 whatever the model's precision: a float64 buffer named "self_energies" (per-element
 * energies, large next to the interactions; the model contract adds them to the energy in float64).
 */
inline bool isFloat64Buffer(const std::string& name, const torch::Tensor& value) {
    static const std::string keep = "self_energies";
    bool named = name == keep || (name.size() > keep.size() && name.compare(name.size() - keep.size() - 1, keep.size() + 1, "." + keep) == 0);
    return named && value.scalar_type() == torch::kFloat64;
}

/**
 * Convert the model's floating-point parameters and buffers (except float64 self energies) to dtype, leaving integer buffers (lookup tables) alone,
 * which Module::to(dtype) would turn into floats, and switch off gradients of the parameters: only gradients with
 * respect to inputs are ever needed.
 */
inline void convertModelPrecision(torch::jit::Module& module, torch::Dtype dtype) {
    for (auto parameter : module.parameters()) {
        if (parameter.is_floating_point() && parameter.scalar_type() != dtype)
            parameter.set_data(parameter.detach().to(dtype));
        parameter.set_requires_grad(false);
    }
    for (auto buffer : module.named_buffers()) {
        if (isFloat64Buffer(buffer.name, buffer.value))
            continue;
        if (buffer.value.is_floating_point() && buffer.value.scalar_type() != dtype)
            buffer.value.set_data(buffer.value.to(dtype));
    }
}

/**
 * Bind each argument of the model's forward() (after self) to an input of the force, by name, falling back to
 * openmm-torch's positional convention forward(positions[, box][, globals...]). Throws OpenMMException saying what
 * is missing and how to provide it.
 *
 * @param neighborList     whether the force has a neighbor list (provides "neighbors" and "shifts")
 * @param atomicNumbers    whether the force provides "atomic_numbers"
 * @param derivativeIndex  the global parameter index of each name in derivativeNames
 */
inline std::vector<ModelInput> bindModelInputs(torch::jit::Module& module, const NNForce& force, bool periodic, bool neighborList,
        bool atomicNumbers, const std::vector<std::string>& globalNames, const std::vector<std::string>& derivativeNames,
        const std::vector<int>& derivativeIndex) {
    using OpenMM::OpenMMException;
    using std::string;
    torch::jit::Method forward = module.get_method("forward");
    const auto& arguments = forward.function().getSchema().arguments();
    // What the force provides, by name.
    std::vector<string> available = {"positions"};
    if (periodic)
        available.push_back("box");
    if (neighborList) {
        available.push_back("neighbors");
        available.push_back("shifts");
    }
    if (atomicNumbers)
        available.push_back("atomic_numbers");
    for (auto& name : globalNames)
        available.push_back(name);
    for (int i = 0; i < force.getNumPerAtomInputs(); i++)
        available.push_back(force.getPerAtomInputName(i));

    auto isFloatArgument = [](const c10::Argument& argument) {
        return argument.type()->kind() == c10::TypeKind::FloatType;
    };
    std::vector<ModelInput> inputs;
    std::vector<string> unmatched;
    for (size_t a = 1; a < arguments.size(); a++) {  // arguments[0] is self
        const c10::Argument& argument = arguments[a];
        const string& name = argument.name();
        ModelInput input{ModelInput::Default, -1, c10::IValue()};
        auto global = std::find(globalNames.begin(), globalNames.end(), name);
        if (name == "positions")
            input.kind = ModelInput::Positions;
        else if (name == "box" && periodic)
            input.kind = ModelInput::Box;
        else if (name == "neighbors" && neighborList)
            input.kind = ModelInput::Neighbors;
        else if (name == "shifts" && neighborList)
            input.kind = ModelInput::Shifts;
        else if (name == "atomic_numbers" && atomicNumbers)
            input.kind = ModelInput::AtomicNumbers;
        else if (global != globalNames.end()) {
            input.kind = isFloatArgument(argument) ? ModelInput::GlobalFloat : ModelInput::Global;
            input.index = global - globalNames.begin();
        }
        else {
            int perAtom = -1;
            for (int i = 0; i < force.getNumPerAtomInputs(); i++)
                if (force.getPerAtomInputName(i) == name)
                    perAtom = i;
            if (perAtom >= 0) {
                input.kind = ModelInput::PerAtom;
                input.index = perAtom;
            }
            else if (argument.default_value().has_value())
                input.value = *argument.default_value();
            else
                unmatched.push_back(name);
        }
        inputs.push_back(input);
    }
    int numArguments = arguments.size() - 1;
    if (!unmatched.empty()) {
        // openmm-torch's TorchForce convention: forward(positions[, box][, globals...]) by position.
        int expected = 1 + (periodic ? 1 : 0) + (int) globalNames.size();
        if (numArguments == expected) {
            inputs.clear();
            inputs.push_back({ModelInput::Positions, -1, c10::IValue()});
            if (periodic)
                inputs.push_back({ModelInput::Box, -1, c10::IValue()});
            for (int i = 0; i < (int) globalNames.size(); i++)
                inputs.push_back({isFloatArgument(arguments[inputs.size() + 1]) ? ModelInput::GlobalFloat : ModelInput::Global, i, c10::IValue()});
        }
        else {
            string hint;
            const string& missing = unmatched[0];
            if (missing == "box")
                hint = " The force is not periodic: call setUsesPeriodicBoundaryConditions(True).";
            else if (missing == "neighbors" || missing == "shifts")
                hint = " The force has no neighbor list: call setNeighborList(cutoff_nm).";
            else if (missing == "atomic_numbers")
                hint = " Give them with setAtomicNumbers(...).";
            else
                hint = " Add it with addGlobalParameter or addPerAtomInput, or name the argument after the model contract. "
                       "A TorchForce-style model, forward(positions[, box][, globals...]), must take exactly " +
                       std::to_string(expected) + " arguments for this force but takes " + std::to_string(numArguments) + ".";
            throw OpenMMException("NNForce: the model's forward() needs the argument '" + missing +
                                  "', which the force does not provide. The force provides: " + joinNames(available) + "." + hint);
        }
    }
    bool takesPositions = false;
    for (auto& input : inputs)
        takesPositions |= (input.kind == ModelInput::Positions);
    if (!takesPositions)
        throw OpenMMException("NNForce: the model's forward() takes no 'positions' argument; its arguments must include positions.");
    for (size_t d = 0; d < derivativeNames.size(); d++) {
        bool bound = false;
        for (auto& input : inputs)
            bound |= (input.kind == ModelInput::Global && input.index == derivativeIndex[d]);
        if (!bound)
            throw OpenMMException("NNForce: addEnergyParameterDerivative('" + derivativeNames[d] + "') needs the model's forward() "
                                  "to take '" + derivativeNames[d] + "' as a Tensor argument.");
    }
    return inputs;
}

/**
 * Check what forward() returned and split it into the energy (a floating-point tensor with one element) and, when
 * outputsForces, the forces (floating point, [numAtoms, 3]). Only tensor metadata is inspected: no device sync.
 */
inline void unpackModelOutput(const c10::IValue& output, bool outputsForces, int64_t numAtoms, torch::Tensor& energy, torch::Tensor& forces) {
    using OpenMM::OpenMMException;
    using std::string;
    if (outputsForces) {
        if (!output.isTuple() || output.toTupleRef().elements().size() != 2 ||
                !output.toTupleRef().elements()[0].isTensor() || !output.toTupleRef().elements()[1].isTensor())
            throw OpenMMException("NNForce: setOutputsForces(True) requires forward() to return a tuple (energy, forces) of tensors, "
                                  "but it returned " + output.tagKind() + ".");
        energy = output.toTupleRef().elements()[0].toTensor();
        forces = output.toTupleRef().elements()[1].toTensor();
        if (!forces.is_floating_point() || forces.dim() != 2 || forces.size(0) != numAtoms || forces.size(1) != 3)
            throw OpenMMException("NNForce: forward() returned forces of shape " + c10::str(forces.sizes()) + " and dtype " +
                                  string(c10::toString(forces.scalar_type())) + "; expected a floating-point tensor of shape [" +
                                  std::to_string(numAtoms) + ", 3] in kJ/mol/nm.");
    }
    else {
        if (!output.isTensor())
            throw OpenMMException("NNForce: forward() must return the energy as a Tensor but returned " + output.tagKind() +
                                  (output.isTuple() ? " (for a model returning (energy, forces) call setOutputsForces(True))." : "."));
        energy = output.toTensor();
    }
    if (!energy.is_floating_point() || energy.numel() != 1)
        throw OpenMMException("NNForce: forward() must return a floating-point scalar energy (kJ/mol), but returned a tensor of shape " +
                              c10::str(energy.sizes()) + " and dtype " + string(c10::toString(energy.scalar_type())) +
                              ". Sum per-atom energies with .sum().");
}

/** The messages for non-finite model outputs, shared so that every platform reports them the same way. */
inline std::string nonFiniteEnergyMessage(double energy) {
    return "NNForce: the model returned a non-finite energy (" + std::to_string(energy) +
           "). Check the positions (overlapping atoms?) and the model's inputs.";
}

inline std::string nonFiniteForceMessage(int atom) {
    return "NNForce: the model produced a non-finite force on atom " + std::to_string(atom) +
           ". Check the positions (overlapping atoms?) and the model.";
}

} // namespace NNForcePlugin

#endif
