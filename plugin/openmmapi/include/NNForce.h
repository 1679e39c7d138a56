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
 * The model is held as the bytes of its TorchScript archive: a file is read once at construction, so the
 * force can be copied, serialized (the bytes are embedded) and used after the file is gone.
 */
class NNFORCE_EXPORT NNForce : public OpenMM::Force {
public:
    /** Load the model from a TorchScript file (torch.jit.save) or a .pt2 AOTInductor package (nnforce.export.to_pt2). */
    explicit NNForce(const std::string& file, const std::map<std::string, std::string>& properties = std::map<std::string, std::string>());
    /** Use the model held in memory as the bytes of a TorchScript archive or a .pt2 package. */
    explicit NNForce(const std::vector<char>& modelBytes, const std::map<std::string, std::string>& properties = std::map<std::string, std::string>());

    /** The file the model was read from ("" when constructed from bytes). */
    const std::string& getFile() const { return file; }
    /** The bytes of the model archive (TorchScript or .pt2). */
    const std::vector<char>& getModelBytes() const { return modelBytes; }
    /** The model's format, told from the archive's contents: "torchscript" or "pt2" (an AOTInductor package). */
    std::string getModelFormat() const { return modelFormat == 1 ? "pt2" : "torchscript"; }

    void setUsesPeriodicBoundaryConditions(bool periodic) { this->periodic = periodic; }
    bool usesPeriodicBoundaryConditions() const override { return periodic; }
    /** Whether forward returns (energy, forces) instead of the energy alone. */
    void setOutputsForces(bool outputs) { outputsForces = outputs; }
    bool getOutputsForces() const { return outputsForces; }

    int addGlobalParameter(const std::string& name, double defaultValue);
    int getNumGlobalParameters() const { return (int) globalParameters.size(); }
    const std::string& getGlobalParameterName(int index) const;
    void setGlobalParameterName(int index, const std::string& name);
    double getGlobalParameterDefaultValue(int index) const;
    void setGlobalParameterDefaultValue(int index, double defaultValue);
    /** Request the derivative of the energy with respect to a global parameter (Context::getState(ParameterDerivatives)). */
    void addEnergyParameterDerivative(const std::string& name);
    int getNumEnergyParameterDerivatives() const { return (int) energyParameterDerivatives.size(); }
    const std::string& getEnergyParameterDerivativeName(int index) const;

    /**
     * Set a property. Known properties: "precision" ("single" or "double"; default: double on the Reference
     * platform, single on CPU and CUDA unless the CUDA context runs in double precision), "useCUDAGraphs"
     * ("true"/"false"), "CUDAGraphWarmupSteps" (integer >= 1). An unknown name throws.
     */
    void setProperty(const std::string& name, const std::string& value);
    const std::map<std::string, std::string>& getProperties() const { return properties; }

    /**
     * Give the model a neighbor list: forward receives "neighbors" (int64 [2,P], each unordered pair once) and
     * "shifts" ([P,3] nm, r_ij = positions[j] - positions[i] + shifts[p]) with every pair closer than
     * cutoff; pairs up to cutoff + skin may be included, and the list is rebuilt only when some atom moved
     * more than skin/2 (or the box changed). capacity > 0 pads the list to a fixed number of pairs (grown when
     * exceeded, never dropping pairs); padding entries are pairs (0, 0) whose shift is
     * (2 (cutoff + skin) + 10 nm, 0, 0), so a model applying its own cutoff sees nothing from them.
     * cutoff <= 0 removes the neighbor list. capacity may not exceed getMaxNeighborCapacity().
     */
    void setNeighborList(double cutoff, double skin = 0.0, int capacity = 0);
    bool usesNeighborList() const { return neighborCutoff > 0; }
    double getNeighborListCutoff() const { return neighborCutoff; }
    double getNeighborListSkin() const { return neighborSkin; }
    int getNeighborListCapacity() const { return neighborCapacity; }
    /**
     * The largest capacity setNeighborList accepts: 2^26 pairs (67,108,864), or the value of the environment
     * variable NNFORCE_MAX_NEIGHBOR_CAPACITY. The list itself still grows past it when more pairs are in range.
     */
    static long long getMaxNeighborCapacity();

    /** Let the model see only these particles (in this order); empty means all particles of the System. */
    void setAtoms(const std::vector<int>& atoms);
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
    /** The replica index of each model atom (empty when none were set). */
    const std::vector<int>& getAtomReplicas() const { return atomReplicas; }
    /** The number of distinct replicas: 1 when none were set. */
    int getNumReplicas() const;

    /** Atomic numbers of the model's atoms (passed as "atomic_numbers"); empty means none given. */
    void setAtomicNumbers(const std::vector<int>& atomicNumbers);
    const std::vector<int>& getAtomicNumbers() const { return atomicNumbers; }

    /**
     * Add a per-atom float input passed to forward by name: values holds width numbers per model atom
     * (row-major), giving a tensor [M] for width 1 or [M,width] otherwise. Change values with
     * setPerAtomInput and push them into a Context with updateParametersInContext.
     */
    int addPerAtomInput(const std::string& name, const std::vector<double>& values, int width = 1);
    void setPerAtomInput(const std::string& name, const std::vector<double>& values);
    int getNumPerAtomInputs() const { return (int) perAtomInputs.size(); }
    const std::string& getPerAtomInputName(int index) const;
    const std::vector<double>& getPerAtomInputValues(int index) const;
    int getPerAtomInputWidth(int index) const;
    /** Copy per-atom inputs and atomic numbers into a Context (global parameters go through Context::setParameter). */
    void updateParametersInContext(OpenMM::Context& context);

    /**
     * The names of the outputs the model returned at its last evaluation in a Context: "energy" (and "forces" with
     * setOutputsForces(true)) for a model returning a tensor or a tuple, every key of the dict for a model whose
     * forward returns a Dict[str, Tensor]. Throws before the model was evaluated in the Context.
     *
     * @param context  a Context this force belongs to
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

    /** The property names setProperty accepts. */
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
