"""The one way lgrn writes a file: into a temporary file beside the target, flushed and fsynced, then
renamed over it, so a reader (or a crash) never sees half a file and a failed write leaves the previous
file untouched. The result gets the permissions a plain ``open(path, "w")`` would give under the
process's umask (``0o666 & ~umask``: readable by the group when the umask says so), not the private
0600 of ``tempfile.mkstemp``. Temporary files are named ``.<name>.<pid>.<random>.tmp``; those left
behind by a process that no longer runs (a crash, ``kill -9``) are removed at the next write into the
same folder.
"""
from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "write_bytes_atomic", "write_text_atomic", "file_mode", "remove_stale_temps"]

_TEMP = re.compile(r"^\..+\.(\d+)\.[A-Za-z0-9_]+\.tmp$")
_umask_lock = threading.Lock()


def file_mode() -> int:
    """``0o666`` less the current umask (the mode ``open()`` would create a file with)."""
    with _umask_lock:                     # os.umask can only be read by setting it
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True                       # exists, owned by someone else
    return True


def remove_stale_temps(folder: str | Path) -> int:
    """Remove lgrn temporary files in ``folder`` whose writing process has ended; returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP.match(entry.name)
        if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable on POSIX; not possible (nor needed) on Windows.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(handle)`` on a binary temporary file beside ``path`` and rename it over ``path`` only
    when ``write`` succeeded. Parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """UTF-8 text with ``\\n`` line ends, atomically."""
    return write_bytes_atomic(path, text.encode("utf-8"))
