#ifndef NNFORCE_MODELARCHIVE_H_
#define NNFORCE_MODELARCHIVE_H_

#include "NNForce.h"
#include <string>
#include <vector>

namespace NNForcePlugin {

/** The model formats NNForce runs. */
enum class ModelFormat { TorchScript, AOTInductor };

/**
 * The names of the entries of a zip archive held in memory, read from its central directory (zip64 included).
 * Throws OpenMMException when the bytes are not a readable zip archive.
 *
 * @param bytes  the archive
 * @param where  how to name the archive in error messages (a file name or "the model bytes")
 */
NNFORCE_EXPORT std::vector<std::string> listZipEntries(const std::vector<char>& bytes, const std::string& where);

/**
 * Tell the model format from the archive's entry names: a TorchScript archive (torch.jit.save) has
 * <name>/constants.pkl and <name>/code/, an AOTInductor package (.pt2) has <name>/data/aotinductor/<model>/.
 * Throws OpenMMException naming the fix for a torch.save pickle, an uncompiled torch.export program, or anything else.
 *
 * @param bytes  the archive
 * @param where  how to name the archive in error messages
 */
NNFORCE_EXPORT ModelFormat detectModelFormat(const std::vector<char>& bytes, const std::string& where);

} // namespace NNForcePlugin

#endif
