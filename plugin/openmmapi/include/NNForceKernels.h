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
    static std::string Name() { return "CalcNNForce"; }
    CalcNNForceKernel(std::string name, const OpenMM::Platform& platform) : OpenMM::KernelImpl(name, platform) {}
    /** Load the model and bind its inputs; throws OpenMMException when the model and the force do not fit. */
    virtual void initialize(const OpenMM::System& system, const NNForce& force) = 0;
    /** Add the model's forces to the context (if includeForces) and return its energy (if includeEnergy). */
    virtual double execute(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy) = 0;
    /** Copy per-atom inputs and atomic numbers from the force. */
    virtual void copyParametersToContext(OpenMM::ContextImpl& context, const NNForce& force) = 0;
    /** The names of the outputs the model's last evaluation returned; throws before any evaluation. */
    virtual std::vector<std::string> getOutputNames() = 0;
    /** Copy the named output of the last evaluation to the host (float64, row-major) with its shape; throws when unknown. */
    virtual void getOutput(const std::string& name, std::vector<double>& values, std::vector<int>& shape) = 0;
};

} // namespace NNForcePlugin

#endif
