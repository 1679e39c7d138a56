#include "CudaNNForceKernels.h"
#include "openmm/KernelFactory.h"
#include "openmm/OpenMMException.h"
#include "openmm/internal/ContextImpl.h"
#include "openmm/cuda/CudaPlatform.h"

using namespace NNForcePlugin;
using namespace OpenMM;

namespace {
class CudaNNForceKernelFactory : public KernelFactory {
public:
    KernelImpl* createKernelImpl(std::string name, const Platform& platform, ContextImpl& context) const override {
        if (name != CalcNNForceKernel::Name())
            throw OpenMMException("nnforce: the CUDA plugin has no kernel named '" + name + "'.");
        // With several devices (DeviceIndex "0,1") the model runs on the first one, where OpenMM sums the forces.
        CudaPlatform::PlatformData& data = *static_cast<CudaPlatform::PlatformData*>(context.getPlatformData());
        return new CudaCalcNNForceKernel(name, platform, *data.contexts[0]);
    }
};
}

extern "C" __attribute__((visibility("default"))) void registerPlatforms() {
}

extern "C" __attribute__((visibility("default"))) void registerKernelFactories() {
    for (int i = 0; i < Platform::getNumPlatforms(); i++) {
        Platform& platform = Platform::getPlatform(i);
        if (platform.getName() == "CUDA")
            platform.registerKernelFactory(CalcNNForceKernel::Name(), new CudaNNForceKernelFactory());
    }
}
