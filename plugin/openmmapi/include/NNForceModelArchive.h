#ifndef NNFORCE_MODELARCHIVE_H_
#define NNFORCE_MODELARCHIVE_H_

// Verification of a model archive (a TorchScript zip or an AOTInductor .pt2 zip) before libtorch sees it:
// libtorch does not check the zip CRCs, so a damaged byte could otherwise change the model silently, and it
// inflates compressed entries whole, so a small archive could claim gigabytes of memory.

#include <cstdint>
#include <string>
#include <vector>

#ifndef NNFORCE_EXPORT
#define NNFORCE_EXPORT __attribute__((visibility("default")))
#endif

namespace NNForcePlugin {

/** One entry of a verified zip archive. */
struct NNFORCE_EXPORT ModelArchiveEntry {
    std::string name;
    uint64_t dataOffset;        ///< where the entry's (possibly compressed) bytes start in the archive
    uint64_t compressedSize;
    uint64_t uncompressedSize;
    uint32_t crc32;
    int method;                 ///< 0 stored, 8 deflated
};

/**
 * Limits on what a model archive may hold. Defaults: compressed entries may inflate to 1024 MiB in total
 * (stored entries cost no extra memory and are not limited), and each metadata entry (the archive's extra/
 * folder, which loaders read whole) may hold 16 MiB. The environment variables NNFORCE_MAX_INFLATED_MB and
 * NNFORCE_MAX_METADATA_MB raise them.
 */
struct NNFORCE_EXPORT ModelArchiveLimits {
    uint64_t maxInflatedBytes;
    uint64_t maxMetadataBytes;
    /**
     * The defaults, raised or lowered by the environment variables.
     *
     * @return the limits in force
     */
    static ModelArchiveLimits fromEnvironment();
};

/**
 * Parse a zip archive and verify it completely: the end records, every central directory entry against its local
 * header, every entry's CRC-32 (inflating deflated entries in fixed-size chunks, never the whole entry), the sizes
 * against the limits, and that no two entries share a name. Throws OpenMMException naming the archive (where)
 * and the entry at fault.
 *
 * @param bytes   the archive
 * @param where   how to name the archive in messages, e.g. "'model.pt'" or "the model bytes"
 * @param limits  size limits
 * @return the entries, in central directory order
 */
NNFORCE_EXPORT std::vector<ModelArchiveEntry> verifyModelArchive(const std::vector<char>& bytes, const std::string& where,
                                                                  const ModelArchiveLimits& limits);

/**
 * verifyModelArchive with the limits from the environment, for callers that only need the check (the Python
 * helpers call this before torch.jit.load).
 *
 * @param bytes   the archive
 * @param where   how to name the archive in messages
 */
NNFORCE_EXPORT void checkModelArchive(const std::vector<char>& bytes, const std::string& where);

/**
 * The SHA-256 digest of bytes as 64 lowercase hexadecimal digits.
 *
 * @param bytes   the data to hash
 * @return the digest in hexadecimal
 */
NNFORCE_EXPORT std::string sha256Hex(const std::vector<char>& bytes);

/**
 * The CRC-32 (zip/zlib polynomial) of bytes.
 *
 * @param bytes   the data to checksum
 * @return the checksum
 */
NNFORCE_EXPORT uint32_t crc32Of(const std::vector<char>& bytes);

} // namespace NNForcePlugin

#endif
