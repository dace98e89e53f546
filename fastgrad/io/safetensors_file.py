"""fastgrad's files: safetensors (an 8-byte little-endian header length, a JSON header naming
each tensor's dtype, shape and byte range plus a ``__metadata__`` map of strings, then the raw
little-endian bytes), written here byte by byte and read back through the ``safetensors``
package, with the checks that package does not make.

- ``write(path, tensors, metadata)``: every tensor made C-contiguous and little-endian (the
  package would store a transposed view in the wrong order), a SHA-256 of the header (the
  tensors' index and the metadata) and the data bytes in the metadata, and an atomic write: a temporary file in the target's directory, flushed and
  fsynced, then ``os.replace`` (and the directory fsynced), so that a crash or a full disk
  leaves the old file or the new one, never a torn one; the file's mode follows the umask.
- ``read(path)``: (tensors, metadata), after checking, in this order, that the file is not
  empty, is safetensors at all, is fastgrad's, is of a format version this fastgrad reads,
  has a header whose claims fit the file (not truncated, no shape that lies about its bytes),
  and that header and data match their checksum. Each failure is a ValueError that
  says which it is. Nothing is unpickled, ever.
"""
import hashlib
import json
import os
import secrets
import struct
from pathlib import Path

import numpy as np
import safetensors.numpy

FORMAT = "fastgrad"
FORMAT_VERSION = 1
# numpy's dtypes as safetensors names them (the ones fastgrad writes)
DTYPES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("int64"): "I64"}
DTYPE_OF = {name: dtype for dtype, name in DTYPES.items()}
# a header longer than this is not one of fastgrad's (safetensors itself refuses 100 MB)
MAX_HEADER = 100_000_000


def write(path, tensors, metadata):
    """Write ``tensors`` ({name: array}) and ``metadata`` ({key: str}) to ``path`` atomically;
    the SHA-256 of the header and the data goes in the metadata as ``sha256``. Raises OSError when the file
    cannot be written, leaving any earlier file under that name as it was."""
    path = Path(path)
    header, chunks, offset = {}, [], 0
    for name, array in tensors.items():
        array = np.array(array, order="C", copy=None)  # (ascontiguousarray would make a
        # scalar 1-D)
        dtype = array.dtype.newbyteorder("=")
        if dtype not in DTYPES:
            raise TypeError(f"tensor {name!r} has dtype {array.dtype}; fastgrad files hold "
                            f"{sorted(str(d) for d in DTYPES)}")
        data = array.astype(dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {"dtype": DTYPES[dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    metadata = {key: str(value) for key, value in metadata.items() if key != "sha256"}
    digest = _header_digest(header, metadata)
    for data in chunks:
        digest.update(data)
    header["__metadata__"] = {**metadata, "sha256": digest.hexdigest()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data start 8-byte aligned, as safetensors writes
    _write_atomically(path, [struct.pack("<Q", len(text)), text, *chunks])


def _write_atomically(path, pieces):
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = _create_beside(path)
    try:
        with os.fdopen(descriptor, "wb") as file:
            for piece in pieces:
                file.write(piece)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise
    try:  # the rename itself, made durable
        directory_descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(directory_descriptor)
    except OSError:
        pass
    finally:
        os.close(directory_descriptor)


def _create_beside(path):
    """A new temporary file in path's directory, opened for writing, with the mode a new file
    gets under the umask (tempfile's own would be 0600)."""
    directory = path.parent if str(path.parent) else Path(".")
    for _ in range(100):
        temporary = directory / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def read(path):
    """(tensors, metadata) of a fastgrad file, every check above passed (ValueError naming the
    failed one otherwise; OSError when it cannot be read)."""
    path = Path(path)
    content = path.read_bytes()
    where = f"{path}"
    if not content:
        raise ValueError(f"{where} is empty: not a fastgrad file")
    if len(content) < 8:
        raise ValueError(f"{where} is not a safetensors file (only {len(content)} bytes)")
    (length,) = struct.unpack("<Q", content[:8])
    if length > MAX_HEADER or not content[8:9] == b"{":
        raise ValueError(f"{where} is not a safetensors file (its first bytes are no "
                         f"safetensors header)")
    if 8 + length > len(content):
        raise ValueError(f"{where} is truncated: its header alone needs {8 + length} bytes, "
                         f"the file has {len(content)}")
    try:
        header = json.loads(content[8:8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ValueError(f"{where} is not a safetensors file (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{where} is not a safetensors file (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"{where} is a safetensors file from another program, not fastgrad's "
                         f"(its metadata has no format {FORMAT!r})")
    if not all(isinstance(value, str) for value in metadata.values()):
        raise ValueError(f"{where} is not a valid safetensors file (its metadata values must be "
                         f"strings)")
    version = metadata.get("format_version", "")
    if not (version.isascii() and version.isdigit()):
        raise ValueError(f"{where}: format_version {version!r} is not a number")
    if int(version) > FORMAT_VERSION:
        raise ValueError(f"{where} has format version {version}, newer than this fastgrad reads "
                         f"({FORMAT_VERSION}); upgrade fastgrad to read it")
    data = content[8 + length:]
    entries = _check_entries(where, header, len(data))
    digest = _header_digest(header, {key: value for key, value in metadata.items()
                                     if key != "sha256"})
    digest.update(data)
    if digest.hexdigest() != metadata.get("sha256"):
        raise ValueError(f"{where} is corrupted: its tensors (their bytes, or their names, "
                         f"shapes and places in the header) do not match the file's SHA-256 "
                         f"checksum")
    # every claim checked: the package decodes (its arrays are views of the bytes: copied)
    try:
        decoded = safetensors.numpy.load(content)
    except Exception as error:  # the package's own error type (SafetensorError) is not public
        raise ValueError(f"{where} is not a valid safetensors file: {error}") from None
    return {name: np.array(array, dtype=entries[name][0]) for name, array in decoded.items()}, \
        metadata


def _header_digest(header, metadata):
    """A SHA-256 started with the whole header but the checksum itself — the tensors' index
    (names, dtypes, shapes, byte ranges) and the metadata, as canonical JSON: the checksum then
    covers what the bytes mean, not only the bytes, so that two same-shaped tensors with
    swapped names, or a changed option, fail it too."""
    index = {name: entry for name, entry in header.items() if name != "__metadata__"}
    text = json.dumps([index, metadata], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode())


def _check_entries(where, header, n_data):
    """{name: (dtype, shape, begin, end)} from the header, its claims checked against the data's
    size before anything is allocated: known dtypes, shapes whose bytes equal their ranges,
    ranges that tile the data in order."""
    entries, covered = {}, 0
    for name, entry in sorted(header.items(), key=lambda item: _begin(item[1])):
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: tensor {name!r} has a malformed header entry "
                             f"{entry!r:.120}")
        try:
            dtype = DTYPE_OF[entry["dtype"]]
            shape, (begin, end) = tuple(entry["shape"]), entry["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: tensor {name!r} has a malformed header entry "
                             f"{entry!r:.120}") from None
        # JSON integers only (not 6.0, "6", true), as safetensors reads them
        if not all(type(n) is int and n >= 0 for n in (*shape, begin, end)):
            raise ValueError(f"{where}: tensor {name!r}'s shape and byte range must be "
                             f"non-negative integers; got {list(shape)}, [{begin!r}, {end!r}]")
        if begin != covered or end < begin:
            raise ValueError(f"{where}'s header lies: tensor {name!r}'s byte range "
                             f"[{begin}, {end}) does not follow the one before it")
        if (end - begin) != dtype.itemsize * int(np.prod(shape, dtype=object)):
            raise ValueError(f"{where}'s header lies: tensor {name!r} of shape {list(shape)} "
                             f"and dtype {entry['dtype']} does not fill its {end - begin} bytes")
        if end > n_data:
            raise ValueError(f"{where} is truncated: tensor {name!r} needs bytes up to {end} of "
                             f"the data, the file holds {n_data}")
        entries[name] = (dtype, shape, begin, end)
        covered = end
    if covered != n_data:
        raise ValueError(f"{where}'s header lies: its tensors cover {covered} bytes of the "
                         f"{n_data} the file holds")
    return entries


def _begin(entry):
    try:
        begin = entry["data_offsets"][0]
    except (KeyError, TypeError, IndexError):
        return -1
    return begin if type(begin) is int else -1
