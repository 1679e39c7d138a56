#ifndef NNFORCE_NNFORCE_H_
#define NNFORCE_NNFORCE_H_

#include "openmm/Context.h"
#include "openmm/Force.h"
#include <map>
#include <string>
#include <vector>

#ifndef NNFORCE_EXPORT
#define NNFORCE_EXPORT __attribute__((visibility("default")))
#endif

namespace NNForcePlugin {

/**
 * An OpenMM Force whose energy (and forces) come from a model evaluated in C++ with libtorch: a TorchScript
 * archive or an AOTInductor package (.pt2, written by nnforce.export.to_pt2), told apart by the archive's contents.
 *
 * The model's forward() arguments are bound by name (see docs/model-contract.md): "positions" (nm), "box"
 * (nm, rows are the reduced periodic box vectors; periodic forces only), "neighbors"/"shifts" (when a
 * neighbor list is set), "atomic_numbers", each global parameter by its name, and each per-atom input by its
 * name. A model written for openmm-torch's TorchForce, forward(positions[, box][, globals...]), is accepted
 * positionally. forward returns the energy in kJ/mol, or (energy, forces) with setOutputsForces(true), or a
 * Dict[str, Tensor] holding "energy" (and "forces" with setOutputsForces(true)) plus any other named outputs, which
 * getOutput reads after each evaluation.
 *
 * The model is held as the bytes of the model file (a TorchScript archive or a .pt2 package, as given): a file is
 * read once at construction, so the force can be copied, serialized (the bytes are embedded) and used after the
 * file is gone.
 */
class NNFORCE_EXPORT NNForce : public OpenMM::Force {
public:
    /**
     * Create an NNForce from a model file, read once here.
     *
     * @param file        a TorchScript file (torch.jit.save) or a .pt2 AOTInductor package (nnforce.export.to_pt2)
     * @param properties  initial properties (see setProperty); an unknown name throws
     */
    explicit NNForce(const std::string& file, const std::map<std::string, std::string>& properties = std::map<std::string, std::string>());
    /**
     * Create an NNForce from a model held in memory.
     *
     * @param modelBytes  the bytes of a TorchScript archive or of a .pt2 package
     * @param properties  initial properties (see setProperty); an unknown name throws
     */
    explicit NNForce(const std::vector<char>& modelBytes, const std::map<std::string, std::string>& properties = std::map<std::string, std::string>());

    /**
     * Get the file the model was read from.
     *
     * @return the path given to the constructor, or "" when the force was constructed from bytes
     */
    const std::string& getFile() const { return file; }
    /**
     * Get the model file's bytes (what is serialized and what each Context's kernel loads).
     *
     * @return the bytes of the TorchScript archive or .pt2 package
     */
    const std::vector<char>& getModelBytes() const { return modelBytes; }
    /**
     * Get the model's format, told from the archive's contents.
     *
     * @return "torchscript" or "pt2" (an AOTInductor package)
     */
    std::string getModelFormat() const { return modelFormat == 1 ? "pt2" : "torchscript"; }

    /**
     * Set whether the force uses periodic boundary conditions (the model then receives "box").
     *
     * @param periodic  true for a periodic force
     */
    void setUsesPeriodicBoundaryConditions(bool periodic) { this->periodic = periodic; }
    /**
     * Get whether the force uses periodic boundary conditions.
     *
     * @return true if the model receives the periodic box
     */
    bool usesPeriodicBoundaryConditions() const override { return periodic; }
    /**
     * Set whether forward returns (energy, forces) instead of the energy alone (forces are then not computed by
     * autograd).
     *
     * @param outputs  true if the model returns the forces too
     */
    void setOutputsForces(bool outputs) { outputsForces = outputs; }
    /**
     * Get whether forward returns (energy, forces).
     *
     * @return true if the model returns the forces too
     */
    bool getOutputsForces() const { return outputsForces; }

    /**
     * Add a global parameter, passed to forward by its name (a Context parameter).
     *
     * @param name          the parameter's name
     * @param defaultValue  its value in a new Context
     * @return the index of the new parameter
     */
    int addGlobalParameter(const std::string& name, double defaultValue);
    /**
     * Get the number of global parameters.
     *
     * @return the number of global parameters added
     */
    int getNumGlobalParameters() const { return (int) globalParameters.size(); }
    /**
     * Get the name of a global parameter.
     *
     * @param index  the parameter's index (0 <= index < getNumGlobalParameters())
     * @return its name
     */
    const std::string& getGlobalParameterName(int index) const;
    /**
     * Set the name of a global parameter.
     *
     * @param index  the parameter's index
     * @param name   its new name
     */
    void setGlobalParameterName(int index, const std::string& name);
    /**
     * Get the default value of a global parameter.
     *
     * @param index  the parameter's index
     * @return its value in a new Context
     */
    double getGlobalParameterDefaultValue(int index) const;
    /**
     * Set the default value of a global parameter.
     *
     * @param index         the parameter's index
     * @param defaultValue  its value in a new Context
     */
    void setGlobalParameterDefaultValue(int index, double defaultValue);
    /**
     * Request the derivative of the energy with respect to a global parameter
     * (Context::getState(State::ParameterDerivatives)).
     *
     * @param name  the name of a global parameter of this force
     */
    void addEnergyParameterDerivative(const std::string& name);
    /**
     * Get the number of parameters whose energy derivative is requested.
     *
     * @return the number of requested derivatives
     */
    int getNumEnergyParameterDerivatives() const { return (int) energyParameterDerivatives.size(); }
    /**
     * Get the name of a parameter whose energy derivative is requested.
     *
     * @param index  the derivative's index (0 <= index < getNumEnergyParameterDerivatives())
     * @return the parameter's name
     */
    const std::string& getEnergyParameterDerivativeName(int index) const;

    /**
     * Set a property. Known properties: "precision" ("single" or "double"; default: double on the Reference
     * platform, single on CPU and CUDA unless the CUDA context runs in double precision), "useCUDAGraphs"
     * ("true"/"false"), "CUDAGraphWarmupSteps" (integer >= 1). An unknown name throws.
     *
     * @param name   the property's name (one of getKnownProperties())
     * @param value  its value
     */
    void setProperty(const std::string& name, const std::string& value);
    /**
     * Get the properties set on this force.
     *
     * @return the map from property name to value
     */
    const std::map<std::string, std::string>& getProperties() const { return properties; }

    /**
     * Give the model a neighbor list: forward receives "neighbors" (int64 [2,P], each unordered pair once) and
     * "shifts" ([P,3] nm, r_ij = positions[j] - positions[i] + shifts[p]) with every pair closer than
     * cutoff; pairs up to cutoff + skin may be included, and the list is rebuilt only when some atom moved
     * more than skin/2 (or the box changed). capacity > 0 pads the list to a fixed number of pairs (grown when
     * exceeded, never dropping pairs); padding entries are pairs (0, 0) whose shift is
     * (2 (cutoff + skin) + 10 nm, 0, 0), so a model applying its own cutoff sees nothing from them.
     *
     * @param cutoff    the cutoff in nm; <= 0 removes the neighbor list
     * @param skin      the Verlet skin in nm
     * @param capacity  the number of pairs to pad to (0: no padding); at most getMaxNeighborCapacity()
     */
    void setNeighborList(double cutoff, double skin = 0.0, int capacity = 0);
    /**
     * Get whether the model receives a neighbor list.
     *
     * @return true if a neighbor list is set
     */
    bool usesNeighborList() const { return neighborCutoff > 0; }
    /**
     * Get the neighbor-list cutoff.
     *
     * @return the cutoff in nm (0 when there is no neighbor list)
     */
    double getNeighborListCutoff() const { return neighborCutoff; }
    /**
     * Get the neighbor-list skin.
     *
     * @return the Verlet skin in nm
     */
    double getNeighborListSkin() const { return neighborSkin; }
    /**
     * Get the neighbor-list capacity.
     *
     * @return the number of pairs the list is padded to (0: no padding)
     */
    int getNeighborListCapacity() const { return neighborCapacity; }
    /**
     * Get the largest capacity setNeighborList accepts: 2^26 pairs (67,108,864), or the value of the environment
     * variable NNFORCE_MAX_NEIGHBOR_CAPACITY. The list itself still grows past it when more pairs are in range.
     *
     * @return the largest accepted capacity
     */
    static long long getMaxNeighborCapacity();

    /**
     * Let the model see only these particles (in this order).
     *
     * @param atoms  System particle indices; empty means all particles of the System
     */
    void setAtoms(const std::vector<int>& atoms);
    /**
     * Get the particles the model sees.
     *
     * @return the System particle indices (empty: all particles)
     */
    const std::vector<int>& getAtoms() const { return atoms; }

    /**
     * Split the model's atoms into independent replicas (non-interacting copies evaluated in one model call).
     * replicas[k] >= 0 is the replica of model atom k (in the order of getAtoms(), or of the System's particles).
     * The neighbor list then never pairs atoms of different replicas, periodic images included (each replica sees
     * the box as if it were alone in it), and the model may take "replica" (int64 [M]) by name to keep its own
     * all-pairs work within a replica. A force with more than one replica refuses a model that takes neither
     * "neighbors" (with a neighbor list set) nor "replica", since nothing would keep the replicas apart.
     * An empty vector (the default) makes all atoms one system.
     *
     * @param replicas  the replica index of each model atom, or empty
     */
    void setAtomReplicas(const std::vector<int>& replicas);
    /**
     * Get the replica index of each model atom.
     *
     * @return the replica indices (empty when none were set)
     */
    const std::vector<int>& getAtomReplicas() const { return atomReplicas; }
    /**
     * Get the number of distinct replicas.
     *
     * @return the number of replicas (1 when none were set)
     */
    int getNumReplicas() const;

    /**
     * Set the atomic numbers of the model's atoms (passed to forward as "atomic_numbers").
     *
     * @param atomicNumbers  one per model atom; empty means none given
     */
    void setAtomicNumbers(const std::vector<int>& atomicNumbers);
    /**
     * Get the atomic numbers of the model's atoms.
     *
     * @return one per model atom (empty: none given)
     */
    const std::vector<int>& getAtomicNumbers() const { return atomicNumbers; }

    /**
     * Add a per-atom float input passed to forward by name: values holds width numbers per model atom
     * (row-major), giving a tensor [M] for width 1 or [M,width] otherwise. Change values with
     * setPerAtomInput and push them into a Context with updateParametersInContext.
     *
     * @param name    the forward argument's name
     * @param values  width numbers per model atom, row-major
     * @param width   the numbers per atom
     * @return the index of the new input
     */
    int addPerAtomInput(const std::string& name, const std::vector<double>& values, int width = 1);
    /**
     * Replace the values of a per-atom input (same width and number of atoms).
     *
     * @param name    the input's name
     * @param values  width numbers per model atom, row-major
     */
    void setPerAtomInput(const std::string& name, const std::vector<double>& values);
    /**
     * Get the number of per-atom inputs.
     *
     * @return the number of per-atom inputs added
     */
    int getNumPerAtomInputs() const { return (int) perAtomInputs.size(); }
    /**
     * Get the name of a per-atom input.
     *
     * @param index  the input's index (0 <= index < getNumPerAtomInputs())
     * @return its name
     */
    const std::string& getPerAtomInputName(int index) const;
    /**
     * Get the values of a per-atom input.
     *
     * @param index  the input's index
     * @return width numbers per model atom, row-major
     */
    const std::vector<double>& getPerAtomInputValues(int index) const;
    /**
     * Get the width of a per-atom input.
     *
     * @param index  the input's index
     * @return the numbers per atom
     */
    int getPerAtomInputWidth(int index) const;
    /**
     * Copy per-atom inputs and atomic numbers into a Context (global parameters go through Context::setParameter).
     *
     * @param context  a Context this force belongs to
     */
    void updateParametersInContext(OpenMM::Context& context);

    /**
     * Get the names of the outputs the model returned at its last evaluation in a Context: "energy" (and "forces"
     * with setOutputsForces(true)) for a model returning a tensor or a tuple, every key of the dict for a model whose
     * forward returns a Dict[str, Tensor]. Throws before the model was evaluated in the Context.
     *
     * @param context  a Context this force belongs to
     * @return the output names
     */
    std::vector<std::string> getOutputNames(OpenMM::Context& context);
    /**
     * Copy an output of the model's last evaluation in a Context (no second model call), converted to float64.
     * Outputs are in the model's units (the energy in kJ/mol, forces in kJ/mol/nm). Throws when the model returned
     * no output called name (the message lists those it returned) or was not evaluated yet.
     *
     * @param context  a Context this force belongs to
     * @param name     the output's name (a key of the dict forward returned)
     * @param values   receives the values, row-major
     * @param shape    receives the output's dimensions (empty for a scalar)
     */
    void getOutput(OpenMM::Context& context, const std::string& name, std::vector<double>& values, std::vector<int>& shape);

    /**
     * Get the property names setProperty accepts.
     *
     * @return the known property names
     */
    static const std::vector<std::string>& getKnownProperties();
protected:
    OpenMM::ForceImpl* createImpl() const override;
private:
    struct GlobalParameter {
        std::string name;
        double defaultValue;
    };
    struct PerAtomInput {
        std::string name;
        std::vector<double> values;
        int width;
    };
    void checkModelBytes();
    std::string file;
    std::vector<char> modelBytes;
    int modelFormat = 0;  // ModelFormat (internal/NNModelArchive.h): 0 TorchScript, 1 AOTInductor
    bool periodic = false, outputsForces = false;
    std::vector<GlobalParameter> globalParameters;
    std::vector<std::string> energyParameterDerivatives;
    std::map<std::string, std::string> properties;
    double neighborCutoff = 0.0, neighborSkin = 0.0;
    int neighborCapacity = 0;
    std::vector<int> atoms, atomicNumbers, atomReplicas;
    std::vector<PerAtomInput> perAtomInputs;
};

} // namespace NNForcePlugin

#endif
