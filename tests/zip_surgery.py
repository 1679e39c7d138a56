"""Byte-level edits of zip archives for the bad-input tests: entries added, sizes misdeclared, bytes flipped.

Written from PKWARE's APPNOTE (local header 30 bytes + name + extra; central directory entry 46 bytes + name +
extra + comment; end record 22 bytes), independently of the plugin's reader.
"""
import struct
import zlib


def central_entries(data):
    """[(name, central_offset, local_offset)] of a zip without Zip64 central fields (small test archives)."""
    end = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HII", data[end + 10:end + 20])
    entries, position = [], offset
    for _ in range(count):
        name_length, extra_length, comment_length = struct.unpack("<HHH", data[position + 28:position + 34])
        name = data[position + 46:position + 46 + name_length].decode()
        local = struct.unpack("<I", data[position + 42:position + 46])[0]
        entries.append((name, position, local))
        position += 46 + name_length + extra_length + comment_length
    return entries


def data_range(data, name):
    """(start, length) of an entry's stored or compressed bytes."""
    for entry, central, local in central_entries(data):
        if entry == name:
            compressed = struct.unpack("<I", data[central + 20:central + 24])[0]
            name_length, extra_length = struct.unpack("<HH", data[local + 26:local + 30])
            return local + 30 + name_length + extra_length, compressed
    raise KeyError(name)


def declare_size(data, name, uncompressed):
    """A copy whose central directory declares another uncompressed size for entry name."""
    out = bytearray(data)
    for entry, central, local in central_entries(data):
        if entry == name:
            out[central + 24:central + 28] = struct.pack("<I", uncompressed)
            if not struct.unpack("<H", data[local + 6:local + 8])[0] & 8:  # sizes in the local header too
                out[local + 22:local + 26] = struct.pack("<I", uncompressed)
            return bytes(out)
    raise KeyError(name)


def deflate_zeros(count, chunk=1 << 20):
    """Raw deflate of count zero bytes (count a multiple of chunk), built from one compressed chunk repeated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = compressor.compress(bytes(chunk)) + compressor.flush(zlib.Z_FULL_FLUSH)
    return block * (count // chunk) + b"\x03\x00"  # a final empty fixed-Huffman block ends the stream


def add_entry(data, name, payload, uncompressed, crc):
    """Append a deflated entry (raw deflate bytes payload) to a zip: rewrites the central directory and end record.

    Only for archives without Zip64 end records beyond the standard ones written by torch (the Zip64 records are
    dropped: the result is a plain zip, which the plugin reads as well).
    """
    end = data.rfind(b"PK\x05\x06")
    count, size, offset = struct.unpack("<HII", data[end + 10:end + 20])
    central = data[offset:offset + size]
    encoded = name.encode()
    local = struct.pack("<IHHHHHIIIHH", 0x04034b50, 20, 0, 8, 0, 0, crc, len(payload), uncompressed, len(encoded), 0)
    header = struct.pack("<IHHHHHHIIIHHHHHII", 0x02014b50, 20, 20, 0, 8, 0, 0, crc, len(payload), uncompressed,
                         len(encoded), 0, 0, 0, 0, 0, offset)
    body = data[:offset] + local + encoded + payload
    new_central = central + header + encoded
    record = struct.pack("<IHHHHIIH", 0x06054b50, 0, 0, count + 1, count + 1, len(new_central), len(body), 0)
    return body + new_central + record
