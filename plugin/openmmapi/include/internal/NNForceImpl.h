#ifndef NNFORCE_NNFORCEIMPL_H_
#define NNFORCE_NNFORCEIMPL_H_

#include "NNForce.h"
#include "openmm/Kernel.h"
#include "openmm/internal/ForceImpl.h"
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace NNForcePlugin {

class NNForceImpl : public OpenMM::ForceImpl {
public:
    explicit NNForceImpl(const NNForce& owner) : owner(owner) {}
    void initialize(OpenMM::ContextImpl& context) override;
    const NNForce& getOwner() const override { return owner; }
    void updateContextState(OpenMM::ContextImpl& context, bool& forcesInvalid) override {}
    double calcForcesAndEnergy(OpenMM::ContextImpl& context, bool includeForces, bool includeEnergy, int groups) override;
    std::map<std::string, double> getDefaultParameters() override;
    std::vector<std::string> getKernelNames() override;
    std::vector<std::pair<int, int>> getBondedParticles() const override { return {}; }
    void updateParametersInContext(OpenMM::ContextImpl& context);
    std::vector<std::string> getOutputNames();
    void getOutput(const std::string& name, std::vector<double>& values, std::vector<int>& shape);
private:
    const NNForce& owner;
    OpenMM::Kernel kernel;
};

} // namespace NNForcePlugin

#endif
