#ifndef NNFORCE_INTERNAL_NNMODELARCHIVE_H_
#define NNFORCE_INTERNAL_NNMODELARCHIVE_H_

#include "NNForce.h"
#include "NNForceModelArchive.h"
#include <string>
#include <vector>

namespace NNForcePlugin {

/** The model formats NNForce runs. */
enum class ModelFormat { TorchScript, AOTInductor };

/**
 * Tell the model format from the names of the archive's entries, as verifyModelArchive (NNForceModelArchive.h, the
 * one zip reader) returned them: a TorchScript archive (torch.jit.save) has <name>/constants.pkl and <name>/code/, an
 * AOTInductor package (.pt2) has <name>/data/aotinductor/<model>/. Throws OpenMMException naming the fix for a
 * torch.save pickle, an uncompiled torch.export program, or anything else.
 *
 * @param entries  the archive's entries (verifyModelArchive)
 * @param where    how to name the archive in error messages
 */
NNFORCE_EXPORT ModelFormat detectModelFormat(const std::vector<ModelArchiveEntry>& entries, const std::string& where);

} // namespace NNForcePlugin

#endif
