#ifndef NNFORCE_MODELBINDING_H_
#define NNFORCE_MODELBINDING_H_

// Logic shared by every platform kernel of NNForce (Reference/CPU and CUDA): binding the model's forward()
// arguments to what the force provides, and checking what forward() returned. Header-only so that each
// platform library compiles its own copy against its own libtorch flags; the error messages live here once.

#include "NNForce.h"
#include "openmm/OpenMMException.h"
#include <torch/script.h>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <functional>
#include <string>
#include <vector>

namespace NNForcePlugin {

/** Where the value of one forward() argument comes from. */
struct ModelInput {
    enum Kind { Positions, Box, Neighbors, Shifts, AtomicNumbers, Global, GlobalFloat, PerAtom, Replica, Default };
    Kind kind;
    int index;           // global parameter or per-atom input index
    c10::IValue value;   // the default value, for Default
};

/**
 * What a kernel has at hand for one evaluation. Each platform fills it with tensors on its own device and dtype;
 * argumentFor() turns it into the argument for one bound input, so the TorchScript and .pt2 paths, and the
 * platforms, assemble a model's arguments the same way.
 */
struct ModelArgumentSources {
    torch::Tensor positions, neighbors, shifts, atomicNumbers, replica;
    std::function<torch::Tensor()> box;                  // the box as a tensor, built only when an input asks for it
    std::vector<torch::Tensor> globals;                  // each global parameter as a 0-d tensor of the model's dtype
    std::vector<double> globalValues;                    // the same as numbers (for "float" arguments)
    const std::vector<torch::Tensor>* perAtom = nullptr; // per-atom inputs
};

/**
 * The argument for one bound input. A .pt2 package takes tensors only: there a global parameter is always a tensor
 * (asTensor) and defaults are not passed (its inputs are exactly those it was compiled with).
 */
inline c10::IValue argumentFor(const ModelInput& input, const ModelArgumentSources& sources, bool asTensor = false) {
    switch (input.kind) {
    case ModelInput::Positions: return sources.positions;
    case ModelInput::Box: return sources.box();
    case ModelInput::Neighbors: return sources.neighbors;
    case ModelInput::Shifts: return sources.shifts;
    case ModelInput::AtomicNumbers: return sources.atomicNumbers;
    case ModelInput::Global: return sources.globals[input.index];
    case ModelInput::GlobalFloat:
        return asTensor ? c10::IValue(sources.globals[input.index]) : c10::IValue(sources.globalValues[input.index]);
    case ModelInput::PerAtom: return (*sources.perAtom)[input.index];
    case ModelInput::Replica: return sources.replica;
    case ModelInput::Default: return input.value;
    }
    return c10::IValue();
}

/**
 * libtorch's own messages carry a C++ backtrace we do not want in an OpenMMException. An error raised inside a
 * TorchScript model comes as "The following operation failed in the TorchScript interpreter." then the script's
 * traceback and, last, the model's own message: that line goes first, so that the first line says what happened.
 */
inline std::string torchMessage(const std::exception& e) {
    std::string text = e.what();
    if (auto* error = dynamic_cast<const c10::Error*>(&e))
        text = error->what_without_backtrace();
    if (text.rfind("The following operation failed in the TorchScript interpreter", 0) == 0) {
        size_t end = text.find_last_not_of(" \n\r\t");
        size_t start = end == std::string::npos ? std::string::npos : text.rfind('\n', end);
        if (end != std::string::npos && start != std::string::npos)
            return text.substr(start + 1, end - start) + "\n" + text;
    }
    return text;
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
 * respect to inputs are ever needed. keepDtypes: convert nothing, only switch off the gradients (openmm-torch models,
 * KernelSetup::torchForceStyle).
 */
inline void convertModelPrecision(torch::jit::Module& module, torch::Dtype dtype, bool keepDtypes = false) {
    for (auto parameter : module.parameters()) {
        if (!keepDtypes && parameter.is_floating_point() && parameter.scalar_type() != dtype)
            parameter.set_data(parameter.detach().to(dtype));
        parameter.set_requires_grad(false);
    }
    for (auto buffer : module.named_buffers()) {
        if (keepDtypes || isFloat64Buffer(buffer.name, buffer.value))
            continue;
        if (buffer.value.is_floating_point() && buffer.value.scalar_type() != dtype)
            buffer.value.set_data(buffer.value.to(dtype));
    }
}

/**
 * A force holding several replicas needs a model that can keep them apart: one taking the neighbor list (built per
 * replica) or the "replica" index of each atom. Throws OpenMMException otherwise.
 */
inline void checkReplicasKeptApart(const std::vector<ModelInput>& inputs, const NNForce& force) {
    if (force.getNumReplicas() < 2)
        return;
    for (auto& input : inputs)
        if (input.kind == ModelInput::Neighbors || input.kind == ModelInput::Replica)
            return;
    throw OpenMM::OpenMMException("NNForce: the force holds " + std::to_string(force.getNumReplicas()) + " replicas (setAtomReplicas) "
        "but the model's forward() takes neither 'neighbors' (with setNeighborList) nor 'replica', so it would make atoms of "
        "different replicas interact. Set a neighbor list, or give forward() a 'replica' argument (int64 [M]) and use it.");
}

/**
 * Names are bound strictly: when any global parameter or per-atom input name is an argument of forward(), every
 * one must be (one misspelt name must not silently shift the others into TorchForce's positional order). Throws
 * OpenMMException listing forward()'s arguments and the names given; returns whether any name matched.
 */
inline bool checkNamesBindStrictly(const std::vector<std::string>& argumentNames, const std::vector<std::string>& globalNames,
        const std::vector<std::string>& perAtomNames) {
    using std::string;
    std::vector<string> matched, unmatched;
    for (auto* names : {&globalNames, &perAtomNames})
        for (auto& name : *names)
            (std::find(argumentNames.begin(), argumentNames.end(), name) != argumentNames.end() ? matched : unmatched).push_back(name);
    if (!matched.empty() && !unmatched.empty())
        throw OpenMM::OpenMMException("NNForce: the model's forward() takes no argument named '" + joinNames(unmatched) +
                                      "', while the force's other names (" + joinNames(matched) + ") are arguments of forward(). "
                                      "Global parameters and per-atom inputs are bound by name, and all of them must match when any does. "
                                      "forward() takes: " + joinNames(argumentNames) + ". The force gives global parameters: " +
                                      (globalNames.empty() ? string("none") : joinNames(globalNames)) + "; per-atom inputs: " +
                                      (perAtomNames.empty() ? string("none") : joinNames(perAtomNames)) + ". Rename them to match.");
    return !matched.empty();
}

/** Say once per process (on stderr, OpenMM's log) that a model is bound by TorchForce's positional convention. */
inline void logPositionalBinding(const std::vector<std::string>& argumentNames) {
    static std::atomic<bool> said(false);
    if (!said.exchange(true))
        std::cerr << "NNForce: the model's forward(" << joinNames(argumentNames) << ") arguments are not named after the model "
                  << "contract, so they are bound by position as openmm-torch's TorchForce does: forward(positions[, box][, globals...]). "
                  << "(Said once per process.)" << std::endl;
}

/**
 * What nnforce reads an argument name as meaning: "positions", "box", "neighbors", "shifts", "atomic numbers",
 * "replica", "per-atom charges", ... ; "" for a name it does not recognise. Used to refuse a positional binding that
 * would hand an argument something its name says it is not (forward(positions, charges) receiving the box).
 */
inline std::string recognisedMeaning(const std::string& name) {
    static const std::vector<std::pair<std::vector<std::string>, std::string>> meanings = {
        {{"positions", "coordinates", "coords", "pos", "xyz"}, "positions"},
        {{"box", "box_vectors", "boxvectors", "boxVectors", "cell", "periodic_box"}, "box"},
        {{"neighbors", "neighbours", "neighbor_list", "edge_index", "pairs"}, "neighbors"},
        {{"shifts", "cell_shifts"}, "shifts"},
        {{"atomic_numbers", "numbers", "species", "elements", "atom_types", "types", "z", "Z"}, "atomic numbers"},
        {{"replica"}, "replica"},
        {{"charges", "charge", "partial_charges", "atomic_charges", "q"}, "per-atom charges"},
        {{"masses", "mass"}, "masses"},
        {{"velocities", "forces", "spins", "spin"}, "per-atom values"},
    };
    for (auto& meaning : meanings)
        if (std::find(meaning.first.begin(), meaning.first.end(), name) != meaning.first.end())
            return meaning.second;
    return "";
}

/** Whether two names differ only in case, or (both of 4+ characters) by one inserted, deleted or changed character. */
inline bool isNearMiss(const std::string& a, const std::string& b) {
    if (a == b)
        return false;
    auto lower = [](std::string s) {
        for (auto& c : s)
            c = (char) std::tolower((unsigned char) c);
        return s;
    };
    if (lower(a) == lower(b))
        return true;
    if (a.size() < 4 || b.size() < 4 || (a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > 1)
        return false;
    const std::string& l = a.size() >= b.size() ? a : b;
    const std::string& r = a.size() >= b.size() ? b : a;
    size_t i = 0;
    while (i < r.size() && l[i] == r[i])
        i++;
    if (l.size() == r.size())
        return l.compare(i + 1, std::string::npos, r, i + 1, std::string::npos) == 0;
    return l.compare(i + 1, std::string::npos, r, i, std::string::npos) == 0;
}

/**
 * Refuse a positional binding (TorchForce's forward(positions[, box][, globals...])) that goes against the names:
 * an argument whose name nnforce recognises as meaning something other than its slot (forward(positions, charges)
 * on a periodic force would receive the box as 'charges'), or an argument name that is a near miss of a name the
 * force gives (global 'A' and argument 'a': bound by position, a typo would silently swap values).
 *
 * @param argumentNames  forward()'s arguments after self
 * @param slots          what each position receives: "positions", "box", then the global parameter names
 * @param givenNames     the force's global parameter and per-atom input names
 */
inline void checkPositionalNames(const std::vector<std::string>& argumentNames, const std::vector<std::string>& slots,
        const std::vector<std::string>& givenNames) {
    using std::string;
    for (size_t a = 0; a < argumentNames.size() && a < slots.size(); a++) {
        const string& name = argumentNames[a];
        for (auto& given : givenNames)
            if (isNearMiss(name, given))
                throw OpenMM::OpenMMException("NNForce: the model's forward(" + joinNames(argumentNames) + ") takes '" + name +
                                              "' and the force gives '" + given + "': names are matched exactly (case included), so '" + name +
                                              "' would be bound by position instead. Rename the global parameter or per-atom input to '" +
                                              name + "' (or the argument to '" + given + "').");
        bool global = a >= 2 || (a == 1 && slots[1] != "box");
        string slotMeaning = global ? "global parameter '" + slots[a] + "'" : slots[a];
        string meaning = recognisedMeaning(name);
        if (!meaning.empty() && meaning != slotMeaning && name != slots[a])
            throw OpenMM::OpenMMException("NNForce: the model's forward(" + joinNames(argumentNames) + ") takes '" + name + "', which nnforce reads "
                                          "as the " + meaning + ", but TorchForce's positional convention forward(positions[, box][, globals...]) "
                                          "would pass it the " + slotMeaning + ". Name forward()'s arguments after the model contract "
                                          "(positions, box, neighbors, shifts, atomic_numbers) and provide '" + name + "' by name "
                                          "(addPerAtomInput / addGlobalParameter with that name), or rename the argument.");
    }
}

/** The neighbor-list cutoff (nm) a model records in its nnforce metadata ("cutoff_nm"); 0 when it records none. */
inline double recordedCutoff(const std::string& metadataJson) {
    size_t key = metadataJson.find("\"cutoff_nm\"");
    if (key == std::string::npos)
        return 0.0;
    size_t colon = metadataJson.find(':', key);
    if (colon == std::string::npos)
        return 0.0;
    const char* start = metadataJson.c_str() + colon + 1;
    char* end = nullptr;
    double value = std::strtod(start, &end);
    return end == start || !std::isfinite(value) || value < 0 ? 0.0 : value;
}

/**
 * A neighbor list shorter than the cutoff the model records would drop the pairs between the two without a word:
 * refuse it at Context creation. (No list, cutoff 0, gives the model every pair: nothing to check.)
 */
inline void checkNeighborCutoffCoversModel(double modelCutoff, double listCutoff) {
    if (modelCutoff > 0 && listCutoff > 0 && listCutoff < modelCutoff * (1 - 1e-9))
        throw OpenMM::OpenMMException("NNForce: setNeighborList cutoff " + c10::str(listCutoff) + " nm is shorter than the model's own cutoff " +
                                      c10::str(modelCutoff) + " nm (recorded in its nnforce metadata): the pairs between the two would be "
                                      "missed and the energy would be wrong. Call setNeighborList(" + c10::str(modelCutoff) + ") or longer.");
}

/**
 * The inputs of TorchForce's positional convention, forward(positions[, box][, globals...]), refusing a model whose
 * argument named after a contract input would receive something else in that order.
 */
inline std::vector<ModelInput> positionalInputs(const std::vector<c10::Argument>& arguments, const std::vector<std::string>& argumentNames,
        bool periodic, const std::vector<std::string>& globalNames, const std::string& missing, const std::vector<std::string>& available) {
    using std::string;
    std::vector<string> slots = {"positions"};
    if (periodic)
        slots.push_back("box");
    for (int a = 0; a < (int) argumentNames.size(); a++) {
        const string& name = argumentNames[a];
        bool contract = name == "positions" || name == "box" || name == "neighbors" || name == "shifts" || name == "atomic_numbers";
        if (contract && (a >= (int) slots.size() || slots[a] != name))
            throw OpenMM::OpenMMException("NNForce: the model's forward(" + joinNames(argumentNames) + ") cannot be bound by name (it needs '" +
                                          missing + "', which the force does not provide) nor by TorchForce's positional convention "
                                          "forward(positions[, box][, globals...]), because its argument '" + name +
                                          "' would receive something else. The force provides: " + joinNames(available) + ".");
    }
    slots.insert(slots.end(), globalNames.begin(), globalNames.end());
    checkPositionalNames(argumentNames, slots, globalNames);
    int numGlobals = (int) globalNames.size();
    auto isFloat = [&](size_t a) { return arguments[a].type()->kind() == c10::TypeKind::FloatType; };
    std::vector<ModelInput> inputs = {{ModelInput::Positions, -1, c10::IValue()}};
    if (periodic)
        inputs.push_back({ModelInput::Box, -1, c10::IValue()});
    for (int i = 0; i < numGlobals; i++)
        inputs.push_back({isFloat(inputs.size() + 1) ? ModelInput::GlobalFloat : ModelInput::Global, i, c10::IValue()});  // +1: self
    return inputs;
}

/** What to say when forward() needs an argument the force does not provide, with the call that provides it. */
inline std::string missingArgumentMessage(const std::string& missing, const std::vector<std::string>& available, int expected, int numArguments) {
    std::string hint;
    if (missing == "box")
        hint = " The force is not periodic: call setUsesPeriodicBoundaryConditions(True).";
    else if (missing == "neighbors" || missing == "shifts")
        hint = " The force has no neighbor list: call setNeighborList(cutoff_nm).";
    else if (missing == "atomic_numbers")
        hint = " Give them with setAtomicNumbers(...).";
    else
        hint = " Add it with addGlobalParameter or addPerAtomInput, or name the argument after the model contract. "
               "TorchForce's positional convention, forward(positions[, box][, globals...]), applies only when no global parameter or "
               "per-atom input name is an argument of forward(); it would need exactly " + std::to_string(expected) +
               " arguments for this force, and forward() takes " + std::to_string(numArguments) + ".";
    return "NNForce: the model's forward() needs the argument '" + missing + "', which the force does not provide. The force provides: " +
           joinNames(available) + "." + hint;
}

/**
 * Bind each argument of the model's forward() (after self) to an input of the force, by name, falling back to
 * openmm-torch's positional convention forward(positions[, box][, globals...]) only when no global parameter or
 * per-atom input name is an argument. Throws OpenMMException saying what is missing and how to provide it.
 *
 * @param neighborList     whether the force has a neighbor list (provides "neighbors" and "shifts")
 * @param atomicNumbers    whether the force provides "atomic_numbers"
 * @param derivativeIndex  the global parameter index of each name in derivativeNames
 */
// (About 95 lines: one decision table, by name, then positional, then the errors; split further it would scatter the rules.)
inline std::vector<ModelInput> bindModelInputs(torch::jit::Module& module, const NNForce& force, bool periodic, bool neighborList,
        bool atomicNumbers, const std::vector<std::string>& globalNames, const std::vector<std::string>& derivativeNames,
        const std::vector<int>& derivativeIndex) {
    using OpenMM::OpenMMException;
    using std::string;
    torch::jit::Method forward = module.get_method("forward");
    const auto& arguments = forward.function().getSchema().arguments();
    std::vector<string> argumentNames, perAtomNames;
    for (size_t a = 1; a < arguments.size(); a++)  // arguments[0] is self
        argumentNames.push_back(arguments[a].name());
    for (int i = 0; i < force.getNumPerAtomInputs(); i++)
        perAtomNames.push_back(force.getPerAtomInputName(i));
    bool namesMatched = checkNamesBindStrictly(argumentNames, globalNames, perAtomNames);
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
    bool replicas = !force.getAtomReplicas().empty();
    if (replicas)
        available.push_back("replica");
    for (auto& name : globalNames)
        available.push_back(name);
    for (auto& name : perAtomNames)
        available.push_back(name);

    auto isFloatArgument = [](const c10::Argument& argument) {
        return argument.type()->kind() == c10::TypeKind::FloatType;
    };
    std::vector<ModelInput> inputs;
    std::vector<string> unmatched;
    for (size_t a = 1; a < arguments.size(); a++) {
        const c10::Argument& argument = arguments[a];
        const string& name = argument.name();
        ModelInput input{ModelInput::Default, -1, c10::IValue()};
        auto global = std::find(globalNames.begin(), globalNames.end(), name);
        auto perAtom = std::find(perAtomNames.begin(), perAtomNames.end(), name);
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
        else if (name == "replica" && replicas)
            input.kind = ModelInput::Replica;
        else if (global != globalNames.end()) {
            input.kind = isFloatArgument(argument) ? ModelInput::GlobalFloat : ModelInput::Global;
            input.index = global - globalNames.begin();
        }
        else if (perAtom != perAtomNames.end()) {
            input.kind = ModelInput::PerAtom;
            input.index = perAtom - perAtomNames.begin();
        }
        else if (argument.default_value().has_value())
            input.value = *argument.default_value();
        else
            unmatched.push_back(name);
        inputs.push_back(input);
    }
    int numArguments = arguments.size() - 1;
    // openmm-torch's TorchForce convention, forward(positions[, box][, globals...]) by position, only when no name
    // matched: when the force has names and none is an argument, or when an argument is not named after the contract.
    int expected = 1 + (periodic ? 1 : 0) + (int) globalNames.size();
    bool unusedNames = !namesMatched && !(globalNames.empty() && perAtomNames.empty());
    if ((!unmatched.empty() || unusedNames) && !namesMatched && perAtomNames.empty() && numArguments == expected) {
        inputs = positionalInputs(arguments, argumentNames, periodic, globalNames,
                                  unmatched.empty() ? string("?") : unmatched[0], available);
        logPositionalBinding(argumentNames);
    }
    else if (!perAtomNames.empty() && !namesMatched)
        throw OpenMMException("NNForce: the model's forward() takes no argument named '" + joinNames(perAtomNames) + "'. Per-atom inputs "
                              "are passed by name only: name forward()'s argument after the input (forward() takes: " +
                              joinNames(argumentNames) + ").");
    else if (!unmatched.empty())
        throw OpenMMException(missingArgumentMessage(unmatched[0], available, expected, numArguments));
    else if (unusedNames)
        throw OpenMMException("NNForce: the model's forward(" + joinNames(argumentNames) + ") takes none of the force's global parameters (" +
                              joinNames(globalNames) + "). Remove them, or name forward()'s arguments after them.");
    bool takesPositions = false;
    for (auto& input : inputs)
        takesPositions |= (input.kind == ModelInput::Positions);
    if (!takesPositions)
        throw OpenMMException("NNForce: the model's forward() takes no 'positions' argument; its arguments must include positions.");
    checkReplicasKeptApart(inputs, force);
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
