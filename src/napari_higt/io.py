"""Neutral file I/O: atomic writes, file digests and the message for a full or read-only disk.

Every writer in napari-higt goes through `atomic_path` (or its two shorthands): the data go
to a hidden temporary file in the target's folder, are fsync-ed and renamed over the target
with ``os.replace``. A reader sees the old file or the new one, never half of one; a failed
write (full disk, killed process) leaves no file behind and the previous one intact.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from napari_higt.errors import StorageError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "file_digest",
           "remove_stale_tmp", "storage_error"]

#: errno values that mean "this folder cannot take the file", with what to tell the user.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def storage_error(exc: OSError, path: str | os.PathLike, what: str | None = None,
                  nbytes: int | None = None,
                  error: type[StorageError] = StorageError) -> StorageError:
    """The user-facing form of an `OSError` raised while writing ``path``.

    Parameters
    ----------
    exc : the error the write raised
    path : the file being written
    what : what is being written, for the message (default: the path)
    nbytes : size of the file, when known: the message then says how much space is needed
    error : the `StorageError` subclass to return

    Returns
    -------
    StorageError
        Its message names the folder and says what to do; ``__cause__`` is set by the caller
        (``raise storage_error(exc, ...) from exc``).
    """
    path = Path(path)
    folder = path.parent
    what = what or str(path)
    if exc.errno in _NO_SPACE:
        need = f", about {_megabytes(nbytes)} needed" if nbytes else ""
        try:
            free = f"; {_megabytes(shutil.disk_usage(folder).free)} free"
        except OSError:
            free = ""
        msg = (f"no space left on the device while writing {what} in {folder} "
               f"({exc.strerror}{free}{need}); "
               "nothing was written (the previous file, if any, is intact). "
               "Free some space or choose another folder and run again")
    elif exc.errno in _NOT_WRITABLE:
        msg = (f"cannot write {what}: the folder {folder} is read-only or not writable "
               f"({exc.strerror}); choose another folder")
    else:
        msg = f"writing {what} failed: {exc}"
    return error(msg)


def _tmp_name(path: Path, keep_suffix: bool) -> Path:
    # ``.<name>.<pid>.<random>.tmp``: the pid lets `remove_stale_tmp` tell a dead writer's
    # leftovers from a running one's.
    tail = path.suffix if keep_suffix else ""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{tail}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, what: str | None = None, *,
                keep_suffix: bool = False, nbytes: int | None = None,
                error: type[StorageError] = StorageError) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; fsync and rename it onto ``path`` at the end.

    Parameters
    ----------
    path : the file to write; its folder is created if missing
    what : what is written, for error messages (default: the path)
    keep_suffix : end the temporary name with ``path``'s suffix, for writers that pick a
        format from it (napari screenshots, imageio)
    nbytes : expected size, when known, for the full-disk message
    error : `StorageError` subclass raised on an `OSError`

    Raises
    ------
    StorageError
        On any `OSError` in the block or the rename (a full disk, a read-only folder); the
        temporary file is removed and ``path`` keeps its old content. Other exceptions pass
        through after the same clean-up.
    """
    path = Path(path)
    tmp = _tmp_name(path, keep_suffix)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # created here (umask permissions, not mkstemp's 0600) so the writer may reopen it
        tmp.touch(exist_ok=False)
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise storage_error(exc, path, what, nbytes, error) from exc
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str | None = None) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    with atomic_path(path, what, nbytes=len(data)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str, what: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def remove_stale_tmp(path: str | os.PathLike) -> int:
    """Delete temporary files that killed writers of ``path`` left; return how many.

    Files of a writer that is still running (its pid is alive) are kept.
    """
    path = Path(path)
    n = 0
    for tmp in path.parent.glob(f".{path.name}.*.tmp*"):
        try:
            pid = int(tmp.name[len(path.name) + 2:].split(".")[0])
        except ValueError:
            continue
        if _alive(pid):
            continue
        try:
            tmp.unlink()
            n += 1
        except OSError:
            pass
    return n


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def file_digest(path: str | os.PathLike, length: int | None = None) -> str:
    """SHA-1 hex digest of a file's bytes (read in 4 MB blocks).

    Parameters
    ----------
    path : the file
    length : keep only the first ``length`` hex characters (None: all 40)
    """
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:length]
