"""Reading ``.pt2`` AOTInductor packages written by :func:`nnforce.export.to_pt2`: is a file one, and its nnforce
metadata record (from the zip directory; nothing is loaded). The bottom of the ``.pt2`` modules: the contract
(:mod:`nnforce.contract`), the compiler (:mod:`nnforce._pt2`) and its checks use it; it imports none of them."""
import io
import json
import os
import zipfile


def _package_record(archive):
    """The nnforce record in an open zip archive: None when it is no AOTInductor package, {} when it is one without
    nnforce metadata."""
    names = archive.namelist()
    if not any("/data/aotinductor/" in n and n.endswith(".so") for n in names):
        return None
    for name in names:
        if "/data/aotinductor/" in name and name.endswith("metadata.json"):
            entries = json.loads(archive.read(name))
            if "nnforce.metadata_json" in entries:
                return json.loads(entries["nnforce.metadata_json"])
    return {}


def package_metadata(data):
    """The nnforce metadata of a ``.pt2`` package given as bytes; None when the bytes are not an AOTInductor package.

    Raises ValueError for a package without nnforce metadata (it cannot be bound by name).
    """
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            record = _package_record(archive)
    except zipfile.BadZipFile:
        return None
    if record == {}:
        raise ValueError("the .pt2 package carries no nnforce metadata (not written by nnforce.export.to_pt2); "
                         "re-export it with nnforce.export.to_pt2(model, path, example) or `nnforce export --format pt2`")
    return record


def is_pt2(path):
    """Whether ``path`` is an AOTInductor package (by its zip entry names)."""
    try:
        with zipfile.ZipFile(os.fspath(path)) as archive:
            return _package_record(archive) is not None
    except (zipfile.BadZipFile, OSError):
        return False


def read_pt2_metadata(path):
    """The nnforce metadata record of a ``.pt2`` package (read from the archive; nothing is loaded)."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file {path} does not exist")
    with open(path, "rb") as handle:
        record = package_metadata(handle.read())
    if record is None:
        raise ValueError(f"{path} carries no nnforce metadata (not a .pt2 package written by nnforce.export.to_pt2); "
                         f"re-export it with nnforce.export.to_pt2(model, path, example) or `nnforce export --format pt2`")
    return record
