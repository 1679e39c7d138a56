#ifndef NNFORCE_KERNELS_H_
#define NNFORCE_KERNELS_H_

#include "NNForce.h"
#include "openmm/KernelImpl.h"
#include "openmm/Platform.h"
#include "openmm/System.h"
#include <string>
#include <vector>

namespace NNForcePlugin {

/** Computes the energy and forces of an NNForce. */
class CalcNNForceKernel : public OpenMM::KernelImpl {
public:
    /**
     * Get the kernel's name, under which platforms register their implementations.
     *
     * @return "CalcNNForce"
     */
    static std::string Name() { return "CalcNNForce"; }
    /**
     * Create the kernel.
     *
     * @param name      the kernel's name
     * @param platform  the platform it runs on
     */
    CalcNNForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {}
    /**
     * Load the model and bind its inputs; throws OpenMMException when the model and the force do not fit.
     *
     * @param system  the System the force belongs to
     * @param force   the NNForce this kernel computes
     */
    virtual void initialize(const OpenMM::System& system, const NNForce& force) = 0;
    /**
     * Evaluate the model.
     *
     * @param context        the context to compute in (positions, box, parameters; forces are added to it)
     * @param includeForces  add the model's forces to the context
     * @param includeEnergy  compute the energy
     * @return the energy in kJ/mol (0 when includeEnergy is false)
     */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /**
     * Copy per-atom inputs and atomic numbers from the force.
     *
     * @param context  the context to update
     * @param force    the NNForce to copy from
     */
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const NNForce& force) = 0;
    /**
     * Get the names of the outputs the model's last evaluation returned; throws before any evaluation.
     *
     * @return the output names
     */
    virtual std::vector<std::string> getOutputNames() = 0;
    /**
     * Copy the named output of the last evaluation to the host (float64, row-major) with its shape; throws when
     * unknown.
     *
     * @param name    the output's name
     * @param values  receives the values, row-major
     * @param shape   receives the output's dimensions (empty for a scalar)
     */
    virtual void getOutput(const std::string& name, std::vector<double>& values, std::vector<int>& shape) = 0;
};

} // namespace NNForcePlugin

#endif
