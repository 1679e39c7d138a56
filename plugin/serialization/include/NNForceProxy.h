#ifndef NNFORCE_PROXY_H_
#define NNFORCE_PROXY_H_

#include "openmm/serialization/SerializationProxy.h"
#include <string>
#include <vector>

namespace NNForcePlugin {

/** XML serialization of NNForce; the TorchScript archive is embedded as base64 so no file is needed to restore it. */
class NNForceProxy : public OpenMM::SerializationProxy {
public:
    NNForceProxy();
    void serialize(const void* object, OpenMM::SerializationNode& node) const override;
    void* deserialize(const OpenMM::SerializationNode& node) const override;
};

std::string base64Encode(const std::vector<char>& bytes);
/** Throws OpenMMException on characters outside the base64 alphabet. */
std::vector<char> base64Decode(const std::string& text);

} // namespace NNForcePlugin

#endif
