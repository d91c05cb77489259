"""Files that are not what they should be: corrupt weights and checkpoints, and writes that fail.

Loading a truncated or overwritten weight file fails deep inside safetensors or
``torch.load`` with a message that names neither the file nor what to do. The
checks here read only a file's header (safetensors) or its zip directory
(``torch.save``'s format), so they are cheap enough to run before every load,
and raise ``CorruptFileError`` naming the file and saying to delete it.
``WriteError`` is a failed write (full disk, no permission) that names the file
and what to free or fix. A shared piece below the stages: no model classes, no torch.
"""

from __future__ import annotations

import errno
import json
import os
import struct
import zipfile
from pathlib import Path
from typing import BinaryIO

#: The safetensors format's own limit on its JSON header.
MAX_SAFETENSORS_HEADER = 100 * 2**20
#: Suffixes of ``torch.save`` files (zip archives since torch 1.6), as accelerate's ``save_state`` writes them.
TORCH_SUFFIXES = (".bin", ".pkl", ".pt", ".pth")


class CorruptFileError(ValueError):
    """A weight or checkpoint file whose bytes cannot be what its format says (truncated, overwritten, garbage)."""

    def __init__(self, path: str | os.PathLike, problem: str, advice: str = "") -> None:
        self.path = Path(path)
        advice = advice or f"delete it (rm {self.path}) and write or download it again"
        super().__init__(f"{self.path} is corrupt: {problem}. An interrupted copy, download or save? Then {advice}.")


class WriteError(OSError):
    """A file could not be written (disk full, quota, permissions); ``errno`` is the operating system's."""


def safetensors_header(f: BinaryIO, size: int, path: str | os.PathLike, advice: str = "") -> bytes:
    """The JSON header of the open safetensors file ``f`` (``size`` bytes), checked to describe exactly its bytes.

    A safetensors file is an 8-byte little-endian header length, the JSON header,
    then the tensors' bytes, which the header's ``data_offsets`` must cover up to
    the end of the file. Raises ``CorruptFileError`` naming ``path`` (and ``advice``) otherwise.
    """

    def corrupt(problem: str) -> CorruptFileError:
        return CorruptFileError(path, problem, advice)

    f.seek(0)
    head = f.read(8)
    if len(head) < 8:
        raise corrupt(f"{size} bytes, too short for a safetensors file")
    (length,) = struct.unpack("<Q", head)
    if not 2 <= length <= min(MAX_SAFETENSORS_HEADER, size - 8):
        raise corrupt(f"its safetensors header claims {length} bytes of a {size}-byte file")
    header = f.read(length)
    try:
        entries = json.loads(header)
    except ValueError:
        raise corrupt("its safetensors header is not valid JSON") from None
    if not isinstance(entries, dict):
        raise corrupt("its safetensors header is not a JSON object")
    try:
        ends = [int(v["data_offsets"][1]) for k, v in entries.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        raise corrupt("its safetensors header lacks the tensors' data offsets") from None
    data = size - 8 - length
    if max(ends, default=0) != data:
        raise corrupt(f"its header describes {max(ends, default=0)} bytes of tensors, the file holds {data}")
    return header


def check_file(path: str | os.PathLike, advice: str = "") -> None:
    """Raise ``CorruptFileError`` when a safetensors or ``torch.save`` file cannot be whole; other files pass.

    ``torch.save`` files are zip archives: a truncated or overwritten one has no
    zip directory at its end. A legacy (pickle) one is not checked.
    """
    path = Path(path)
    if path.name.endswith(".safetensors"):
        with path.open("rb") as f:
            safetensors_header(f, path.stat().st_size, path, advice)
    elif path.name.endswith(TORCH_SUFFIXES):
        with path.open("rb") as f:
            legacy_pickle = f.read(1) == b"\x80"
        if not legacy_pickle and not zipfile.is_zipfile(path):
            raise CorruptFileError(path, "not a torch.save archive (no zip directory at its end)", advice)


def check_folder(folder: str | os.PathLike, advice: str = "") -> None:
    """``check_file`` on every weight and checkpoint file under ``folder`` (hidden folders left out)."""
    for root, dirs, names in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.endswith((".safetensors", *TORCH_SUFFIXES)):
                check_file(Path(root) / name, advice)


def write_error(
    path: str | os.PathLike, error: OSError, what: str = "file", cleaned: str = "the partial file was removed"
) -> WriteError:
    """A ``WriteError`` for a failed write of ``path``, saying what to fix for the usual causes and what was cleaned up."""
    path = Path(path)
    reason = error.strerror or str(error)
    hints = {
        errno.ENOSPC: f"the disk that holds {path.parent} is full: free space there (or move the runs folder, "
        "SYNTHLIB_RUNS_DIR) and run again",
        errno.EDQUOT: f"the disk quota for {path.parent} is used up: free space there and run again",
        errno.EACCES: f"this user may not write in {path.parent}: fix its permissions or write elsewhere",
        errno.EROFS: f"{path.parent} is on a read-only file system: write elsewhere",
    }
    hint = hints.get(error.errno, "check the disk and run again")
    return WriteError(error.errno, f"cannot write {what} {path}: {reason}; {hint}. {cleaned[:1].upper()}{cleaned[1:]}.")
