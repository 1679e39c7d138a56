// Zip verification of model archives (see NNForceModelArchive.h) and the SHA-256 the XML form carries.
// The zip layout follows PKWARE's APPNOTE (local headers, central directory, end records, Zip64 extensions);
// deflated entries are inflated with zlib in fixed-size chunks.

#include "NNForceModelArchive.h"
#include "openmm/OpenMMException.h"
#include <zlib.h>
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <set>

using namespace NNForcePlugin;
using namespace OpenMM;
using namespace std;

namespace {

const uint32_t LOCAL_SIGNATURE = 0x04034b50, CENTRAL_SIGNATURE = 0x02014b50, END_SIGNATURE = 0x06054b50;
const uint32_t ZIP64_END_SIGNATURE = 0x06064b50, ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const uint64_t MiB = 1024 * 1024;

/** Little-endian reads with bounds checks: every offset in a zip comes from the (untrusted) file. */
class Reader {
public:
    Reader(const vector<char>& bytes, const string& where) : data((const unsigned char*) bytes.data()), size(bytes.size()), where(where) {}
    bool fits(uint64_t offset, uint64_t length) const {
        return offset <= size && length <= size - offset;
    }
    void need(uint64_t offset, uint64_t length, const string& what) const {
        if (!fits(offset, length))
            fail(what + " lies beyond the end of the file (" + to_string(size) + " bytes): the file is truncated or damaged");
    }
    uint64_t read(uint64_t offset, int bytes) const {
        uint64_t value = 0;
        for (int k = bytes - 1; k >= 0; k--)
            value = (value << 8) | data[offset + k];
        return value;
    }
    uint16_t u16(uint64_t offset) const { return (uint16_t) read(offset, 2); }
    uint32_t u32(uint64_t offset) const { return (uint32_t) read(offset, 4); }
    uint64_t u64(uint64_t offset) const { return read(offset, 8); }
    string text(uint64_t offset, uint64_t length) const { return string((const char*) data + offset, length); }
    [[noreturn]] void fail(const string& message) const {
        throw OpenMMException("NNForce: " + where + " is not a valid model archive: " + message +
                              ". Re-export the model (torch.jit.save or nnforce export) or copy the file again.");
    }
    const unsigned char* data;
    uint64_t size;
    const string& where;
};

struct EndRecord {
    uint64_t entries, centralSize, centralOffset, centralEnd;  // centralEnd: where the end records start
};

EndRecord readEndRecord(const Reader& in) {
    if (in.size < 22)
        in.fail("it is too short to be a zip archive");
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes; its comment must reach the end exactly.
    uint64_t lowest = in.size >= 22 + 65535 ? in.size - 22 - 65535 : 0;
    uint64_t position = in.size - 22;
    while (true) {
        if (in.u32(position) == END_SIGNATURE && position + 22 + in.u16(position + 20) == in.size)
            break;
        if (position == lowest)
            in.fail("it has no zip end record (the file was cut short, or has bytes appended)");
        position--;
    }
    if (in.u16(position + 4) != 0 || in.u16(position + 6) != 0 || in.u16(position + 8) != in.u16(position + 10))
        in.fail("it is a multi-part zip archive");
    EndRecord end{in.u16(position + 10), in.u32(position + 12), in.u32(position + 16), position};
    // Zip64: a locator just before the end record points at the Zip64 end record, which holds 64-bit values.
    if (position >= 20 && in.u32(position - 20) == ZIP64_LOCATOR_SIGNATURE) {
        uint64_t locator = position - 20;
        uint64_t record = in.u64(locator + 8);
        if (in.u32(locator + 4) != 0 || in.u32(locator + 16) != 1)
            in.fail("its Zip64 locator describes a multi-part archive");
        in.need(record, 56, "the Zip64 end record");
        if (in.u32(record) != ZIP64_END_SIGNATURE || record + 12 + in.u64(record + 4) != locator)
            in.fail("its Zip64 end record is damaged");
        if (in.u32(record + 16) != 0 || in.u32(record + 20) != 0 || in.u64(record + 24) != in.u64(record + 32))
            in.fail("its Zip64 end record describes a multi-part archive");
        uint64_t entries = in.u64(record + 32), centralSize = in.u64(record + 40), centralOffset = in.u64(record + 48);
        // Where the 32-bit record holds a real value (not the 0xFFFF... marker) both records must agree.
        if ((end.entries != 0xFFFF && end.entries != entries) || (end.centralSize != 0xFFFFFFFF && end.centralSize != centralSize) ||
                (end.centralOffset != 0xFFFFFFFF && end.centralOffset != centralOffset))
            in.fail("its Zip64 end record and end record disagree");
        end = {entries, centralSize, centralOffset, record};
    }
    if (!in.fits(end.centralOffset, end.centralSize) || end.centralOffset + end.centralSize != end.centralEnd)
        in.fail("its central directory does not end where the end record starts (the file is damaged)");
    return end;
}

/** Replace the 32-bit fields marked 0xFFFFFFFF by the values of a Zip64 extra field (id 1), in the APPNOTE's order. */
void applyZip64(const Reader& in, uint64_t extra, uint64_t extraLength, const string& name, bool local,
                uint64_t& uncompressed, uint64_t& compressed, uint64_t* offset) {
    bool needUncompressed = uncompressed == 0xFFFFFFFF, needCompressed = compressed == 0xFFFFFFFF;
    bool needOffset = offset != nullptr && *offset == 0xFFFFFFFF;
    if (!needUncompressed && !needCompressed && !needOffset)
        return;
    for (uint64_t p = extra; p + 4 <= extra + extraLength;) {
        uint16_t id = in.u16(p), length = in.u16(p + 2);
        if (p + 4 + length > extra + extraLength)
            break;
        if (id == 1) {
            uint64_t q = p + 4, end = p + 4 + length;
            auto take = [&](bool wanted, uint64_t& field) {
                if (!wanted && !local)
                    return;
                if (q + 8 > end)
                    in.fail("entry '" + name + "' has a short Zip64 extra field");
                if (wanted)
                    field = in.u64(q);
                q += 8;
            };
            take(needUncompressed, uncompressed);
            take(needCompressed, compressed);
            if (offset != nullptr)
                take(needOffset, *offset);
            return;
        }
        p += 4 + length;
    }
    in.fail("entry '" + name + "' has sizes marked as Zip64 but no Zip64 extra field");
}

/** The CRC-32 of an entry's data, inflating deflated data in chunks; checks the inflated size on the way. */
uint32_t entryCrc(const Reader& in, const ModelArchiveEntry& entry) {
    const unsigned char* data = in.data + entry.dataOffset;
    if (entry.method == 0) {
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t done = 0; done < entry.compressedSize;) {
            uInt chunk = (uInt) min<uint64_t>(entry.compressedSize - done, 1u << 30);
            crc = crc32(crc, data + done, chunk);
            done += chunk;
        }
        return (uint32_t) crc;
    }
    z_stream stream;
    memset(&stream, 0, sizeof(stream));
    if (inflateInit2(&stream, -MAX_WBITS) != Z_OK)
        in.fail("zlib could not be initialised");
    vector<unsigned char> buffer(1 << 16);
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t consumed = 0, produced = 0;
    int status = Z_OK;
    while (status != Z_STREAM_END) {
        if (stream.avail_in == 0) {
            uint64_t chunk = min<uint64_t>(entry.compressedSize - consumed, 1u << 30);
            if (chunk == 0)
                break;
            stream.next_in = const_cast<unsigned char*>(data + consumed);
            stream.avail_in = (uInt) chunk;
            consumed += chunk;
        }
        stream.next_out = buffer.data();
        stream.avail_out = (uInt) buffer.size();
        status = inflate(&stream, Z_NO_FLUSH);
        uint64_t got = buffer.size() - stream.avail_out;
        produced += got;
        if (status != Z_OK && status != Z_STREAM_END)
            break;
        if (produced > entry.uncompressedSize)
            break;  // more than the directory declared: stop before it costs anything
        crc = crc32(crc, buffer.data(), (uInt) got);
    }
    uint64_t unused = stream.avail_in;
    inflateEnd(&stream);
    if (status != Z_STREAM_END || produced != entry.uncompressedSize || consumed - unused != entry.compressedSize)
        in.fail("entry '" + entry.name + "' does not inflate to the " + to_string(entry.uncompressedSize) +
                " bytes its directory declares (its compressed data is damaged)");
    return (uint32_t) crc;
}

uint64_t megabytesFromEnvironment(const char* name, uint64_t defaultMiB) {
    const char* text = getenv(name);
    if (text == nullptr || *text == '\0')
        return defaultMiB * MiB;
    char* end = nullptr;
    unsigned long long value = strtoull(text, &end, 10);
    if (*end != '\0' || value == 0 || value > (1ULL << 40) || text[0] == '-')
        throw OpenMMException(string("NNForce: the environment variable ") + name + " must be a whole number of MiB >= 1, not '" + text + "'.");
    return value * MiB;
}

} // namespace

ModelArchiveLimits ModelArchiveLimits::fromEnvironment() {
    return {megabytesFromEnvironment("NNFORCE_MAX_INFLATED_MB", 1024), megabytesFromEnvironment("NNFORCE_MAX_METADATA_MB", 16)};
}

vector<ModelArchiveEntry> NNForcePlugin::verifyModelArchive(const vector<char>& bytes, const string& where, const ModelArchiveLimits& limits) {
    Reader in(bytes, where);
    EndRecord end = readEndRecord(in);
    vector<ModelArchiveEntry> entries;
    set<string> names;
    uint64_t position = end.centralOffset, inflated = 0;
    for (uint64_t e = 0; e < end.entries; e++) {
        in.need(position, 46, "a central directory entry");
        if (in.u32(position) != CENTRAL_SIGNATURE)
            in.fail("its central directory entry " + to_string(e + 1) + " is damaged");
        uint16_t flags = in.u16(position + 8), method = in.u16(position + 10);
        uint64_t nameLength = in.u16(position + 28), extraLength = in.u16(position + 30), commentLength = in.u16(position + 32);
        in.need(position + 46, nameLength + extraLength + commentLength, "a central directory entry");
        ModelArchiveEntry entry;
        entry.name = in.text(position + 46, nameLength);
        entry.crc32 = in.u32(position + 16);
        entry.compressedSize = in.u32(position + 20);
        entry.uncompressedSize = in.u32(position + 24);
        entry.method = method;
        uint64_t localOffset = in.u32(position + 42);
        if (in.u16(position + 34) != 0 && in.u16(position + 34) != 0xFFFF)
            in.fail("entry '" + entry.name + "' lies on another disk");
        applyZip64(in, position + 46 + nameLength, extraLength, entry.name, false, entry.uncompressedSize, entry.compressedSize, &localOffset);
        position += 46 + nameLength + extraLength + commentLength;
        if (position > end.centralEnd)
            in.fail("its central directory is longer than the end record says");
        if (!names.insert(entry.name).second)
            in.fail("two entries are named '" + entry.name + "'");
        if (flags & 0x41)
            in.fail("entry '" + entry.name + "' is encrypted");
        if (method != 0 && method != 8)
            in.fail("entry '" + entry.name + "' uses compression method " + to_string(method) + " (only stored and deflated entries are read)");
        if (method == 0 && entry.compressedSize != entry.uncompressedSize)
            in.fail("stored entry '" + entry.name + "' has different compressed and uncompressed sizes");

        // The local header must describe the same entry; the data follow it.
        in.need(localOffset, 30, "the local header of '" + entry.name + "'");
        if (in.u32(localOffset) != LOCAL_SIGNATURE)
            in.fail("the local header of '" + entry.name + "' is missing (damaged directory offset)");
        uint64_t localNameLength = in.u16(localOffset + 26), localExtraLength = in.u16(localOffset + 28);
        in.need(localOffset + 30, localNameLength + localExtraLength, "the local header of '" + entry.name + "'");
        if (in.text(localOffset + 30, localNameLength) != entry.name)
            in.fail("the local header of '" + entry.name + "' names another file");
        if (in.u16(localOffset + 6) != flags || in.u16(localOffset + 8) != method)
            in.fail("the local header of '" + entry.name + "' disagrees with the central directory");
        if (!(flags & 0x08)) {
            uint64_t localCompressed = in.u32(localOffset + 18), localUncompressed = in.u32(localOffset + 22);
            applyZip64(in, localOffset + 30 + localNameLength, localExtraLength, entry.name, true, localUncompressed, localCompressed, nullptr);
            if (in.u32(localOffset + 14) != entry.crc32 || localCompressed != entry.compressedSize || localUncompressed != entry.uncompressedSize)
                in.fail("the local header of '" + entry.name + "' disagrees with the central directory");
        }
        entry.dataOffset = localOffset + 30 + localNameLength + localExtraLength;
        if (!in.fits(entry.dataOffset, entry.compressedSize) || entry.dataOffset + entry.compressedSize > end.centralOffset)
            in.fail("the data of '" + entry.name + "' run past the start of the central directory (the file is truncated or damaged)");

        bool metadata = entry.name.rfind("extra/", 0) == 0 || entry.name.find("/extra/") != string::npos;
        if (metadata && entry.uncompressedSize > limits.maxMetadataBytes)
            throw OpenMMException("NNForce: " + where + ": the metadata entry '" + entry.name + "' holds " + to_string(entry.uncompressedSize) +
                                  " bytes, more than the limit of " + to_string(limits.maxMetadataBytes / MiB) +
                                  " MiB. If the model is trusted, raise the limit with the environment variable NNFORCE_MAX_METADATA_MB.");
        if (method != 0) {
            inflated += entry.uncompressedSize;
            if (entry.uncompressedSize > limits.maxInflatedBytes || inflated > limits.maxInflatedBytes)
                throw OpenMMException("NNForce: " + where + ": its compressed entries inflate to more than the limit of " +
                                      to_string(limits.maxInflatedBytes / MiB) + " MiB (entry '" + entry.name + "' alone declares " +
                                      to_string(entry.uncompressedSize) + " bytes). If the model is trusted, raise the limit with "
                                      "the environment variable NNFORCE_MAX_INFLATED_MB.");
        }
        entries.push_back(entry);
    }
    if (position != end.centralEnd)
        in.fail("its central directory holds more than the " + to_string(end.entries) + " entries the end record counts");
    if (entries.empty())
        in.fail("the zip archive is empty");
    for (auto& entry : entries)
        if (entryCrc(in, entry) != entry.crc32)
            in.fail("entry '" + entry.name + "' fails its CRC-32 check (the file is damaged)");
    return entries;
}

void NNForcePlugin::checkModelArchive(const vector<char>& bytes, const string& where) {
    verifyModelArchive(bytes, where, ModelArchiveLimits::fromEnvironment());
}

uint32_t NNForcePlugin::crc32Of(const vector<char>& bytes) {
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char* data = (const unsigned char*) bytes.data();
    for (uint64_t done = 0; done < bytes.size();) {
        uInt chunk = (uInt) min<uint64_t>(bytes.size() - done, 1u << 30);
        crc = crc32(crc, data + done, chunk);
        done += chunk;
    }
    return (uint32_t) crc;
}

// ---- SHA-256 (FIPS 180-4) ----

namespace {

const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) {
    return (x >> n) | (x << (32 - n));
}

void compress(uint32_t state[8], const unsigned char block[64]) {
    uint32_t w[64];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t) block[4 * t] << 24 | (uint32_t) block[4 * t + 1] << 16 | (uint32_t) block[4 * t + 2] << 8 | block[4 * t + 3];
    for (int t = 16; t < 64; t++) {
        uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
        uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
        w[t] = w[t - 16] + s0 + w[t - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4], f = state[5], g = state[6], h = state[7];
    for (int t = 0; t < 64; t++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[t] + w[t];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

} // namespace

string NNForcePlugin::sha256Hex(const vector<char>& bytes) {
    uint32_t state[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    const unsigned char* data = (const unsigned char*) bytes.data();
    uint64_t size = bytes.size(), full = size / 64 * 64;
    for (uint64_t p = 0; p < full; p += 64)
        compress(state, data + p);
    // Padding: 0x80, zeros, then the length in bits (big-endian), in one or two final blocks.
    unsigned char tail[128] = {0};
    uint64_t rest = size - full;
    memcpy(tail, data + full, rest);
    tail[rest] = 0x80;
    int blocks = rest < 56 ? 1 : 2;
    uint64_t bits = size * 8;
    for (int k = 0; k < 8; k++)
        tail[64 * blocks - 1 - k] = (unsigned char) (bits >> (8 * k));
    for (int b = 0; b < blocks; b++)
        compress(state, tail + 64 * b);
    static const char hex[] = "0123456789abcdef";
    string out;
    for (uint32_t word : state)
        for (int k = 28; k >= 0; k -= 4)
            out += hex[(word >> k) & 15];
    return out;
}
