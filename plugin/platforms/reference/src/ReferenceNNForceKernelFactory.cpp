#include "ReferenceNNForceKernels.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/reference/ReferencePlatform.h"
#include "openmm/KernelFactory.h"

using namespace NNForcePlugin;
using namespace OpenMM;

namespace {
class ReferenceNNForceKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const override {
        if (name == CalcNNForceKernel::Name())
            return new ReferenceCalcNNForceKernel(name, platform);
        throw OpenMMException("nnforce: the Reference/CPU plugin has no kernel named '" + name + "'.");
    }
};
}

extern "C" __attribute__((visibility("default"))) void registerPlatforms() {
}

// Reference and CPU (a ReferencePlatform subclass that keeps the reference positions and forces) share this kernel.
extern "C" __attribute__((visibility("default"))) void registerKernelFactories() {
    for (int i = 0; i < Platform::getNumPlatforms(); i++) {
        Platform& platform = Platform::getPlatform(i);
        if (dynamic_cast<ReferencePlatform*>(&platform) != nullptr)
            platform.registerKernelFactory(CalcNNForceKernel::Name(), new ReferenceNNForceKernelFactory());
    }
}
