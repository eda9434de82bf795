"""Neutral file I/O: atomic writes, file digests, locks and the message for a full or
read-only disk.

Every writer in napari-higt goes through `atomic_path` (or its shorthands): the data go
to a hidden temporary file in the target's folder, are fsync-ed and renamed over the target
with ``os.replace``. A reader sees the old file or the new one, never half of one; a failed
write (full disk, killed process) leaves no file behind and the previous one intact.

Writers of libraries that handle a failing disk badly (h5py can crash the process on
``ENOSPC``; ``torch.save`` reports it as an unrelated ``RuntimeError``) build the file in
memory and hand the bytes over: `atomic_write_via`, `save_torch`. Then the only disk write
is a plain Python one, whose error becomes the one-line `StorageError`.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from napari_higt.errors import CheckpointError, StorageError, UserFacingError, short_list

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "atomic_write_via",
           "file_digest", "file_lock", "load_torch", "remove_stale_tmp", "save_torch",
           "storage_error", "writable_folder", "WRAPPER_PREFIXES", "strip_wrapper_prefixes",
           "state_dict_mismatch"]

#: errno values that mean "this folder cannot take the file", with what to tell the user.
_NO_SPACE = {errno.ENOSPC, errno.EDQUOT}
_NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def _megabytes(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 100_000 else f"{n / 1e3:.0f} kB"


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes, what: str | None = None,
                       error: type[StorageError] = StorageError) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    A full disk is refused before anything is written when the folder's free space is
    known to be short of ``len(data)``.
    """
    path = Path(path)
    with atomic_path(path, what, nbytes=len(data), error=error) as tmp:
        try:
            free = shutil.disk_usage(tmp.parent).free
        except OSError:
            free = None
        if free is not None and free < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        with open(tmp, "wb") as fh:
            fh.write(data)
    return path


def atomic_write_via(path: str | os.PathLike, write: Callable[[IO[bytes]], Any],
                     what: str | None = None,
                     error: type[StorageError] = StorageError) -> Path:
    """Build a file in memory with ``write(buffer)``, then write it atomically to ``path``.

    For writers that take a file object (``h5py.File(buffer, "w")``, ``torch.save``,
    ``savefig``): whatever the disk does, the writer itself never sees it, so a full disk
    ends in a `StorageError` naming the folder and the size, never a crash or a half file.
    """
    buf = io.BytesIO()
    write(buf)
    return atomic_write_bytes(path, buf.getvalue(), what, error)


def atomic_write_text(path: str | os.PathLike, text: str, what: str | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), what)


def writable_folder(path: str | os.PathLike, what: str = "the output folder") -> Path:
    """Create folder ``path`` if needed and check that files can be written there.

    Called before long work, so a read-only or full destination is reported at once
    instead of after it. Returns the path.

    Raises
    ------
    StorageError
        The folder cannot be created or written (read-only, permissions, no space).
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise StorageError(f"{what} {path} is a file, not a folder; choose a folder")
    probe = path / f".napari-higt-probe.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.touch(exist_ok=False)
        probe.unlink()
    except OSError as exc:
        with contextlib.suppress(OSError):
            probe.unlink()
        raise storage_error(exc, probe, f"{what} {path}") from exc
    return path


@contextlib.contextmanager
def file_lock(path: str | os.PathLike, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive lock on ``path`` (a lock file, created and removed here).

    Yields True while the lock is held; with ``wait=False`` yields False at once when
    another process holds it. The lock dies with its process (``flock``), so a killed
    run never blocks the next one.
    """
    import fcntl

    path = Path(path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise storage_error(exc, path, f"the lock file {path.name}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            yield False
            return
        try:  # the holder before us may have removed the file: lock the one on disk
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield True
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


def save_torch(path: str | os.PathLike, obj: Any, what: str | None = None) -> Path:
    """``torch.save(obj)`` to ``path`` atomically (built in memory, see the module doc)."""
    import torch

    return atomic_write_via(path, lambda fh: torch.save(obj, fh), what)


def load_torch(path: str | os.PathLike, what: str = "checkpoint",
               map_location: Any = "cpu", hint: str = "",
               error: type[UserFacingError] = CheckpointError) -> Any:
    """``torch.load(path, weights_only=True)`` with a one-line `CheckpointError` on failure.

    A file holding Python objects beyond tensors and plain containers is refused: loading
    it could run code, and no napari-higt file needs it. The message never suggests
    loading it another way.

    Parameters
    ----------
    path : the file
    what : what the file should be, for messages ("checkpoint", "encoder checkpoint")
    hint : appended to messages: what to do instead (e.g. how such a file is made)
    error : the `UserFacingError` subclass raised (default `CheckpointError`)
    """
    import pickle

    import torch

    path = Path(path)
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        raise error(f"{path}: no such {what} (file not found){tail}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        m = re.search(r"GLOBAL (\S+)", str(exc))
        if m is None:  # not a pickle of objects at all ("invalid load key", text files)
            raise error(_unreadable(path, what, exc, tail)) from None
        found = f" ({m.group(1)})"
        raise error(
            f"{path} holds Python objects{found}, not only tensors and plain values, so it "
            f"is refused as a {what} (loading it could run code){tail}") from None
    except Exception as exc:  # truncated zip, zero bytes, not a torch file at all
        raise error(_unreadable(path, what, exc, tail)) from None


#: Prefixes that training wrappers put before every key of a state dict: DataParallel /
#: DDP (``module.``), Lightning modules, DINO teachers and students, ``torch.compile``.
WRAPPER_PREFIXES = ("module.", "backbone.", "model.", "encoder.", "trunk.", "teacher.", "net.",
                    "vit.", "_orig_mod.")


def strip_wrapper_prefixes(sd: dict[str, Any], model_keys: set[str],
                           prefixes: tuple[str, ...] = WRAPPER_PREFIXES) -> dict[str, Any]:
    """Remove a prefix shared by every key of ``sd``, again while no key is one of
    ``model_keys``; a state dict whose keys already meet the model's is returned as is."""
    while sd and not (set(sd) & model_keys):
        p = next((p for p in prefixes if all(k.startswith(p) for k in sd)), None)
        if p is None:
            break
        sd = {k[len(p):]: v for k, v in sd.items()}
    return sd


def state_dict_mismatch(want: dict[str, Any], got: dict[str, Any], n: int = 6) -> list[str]:
    """How the tensors ``got`` differ from those a model ``want``s, one phrase per kind:
    ``"2 missing (a, b)"``, ``"1 unexpected (c)"``, ``"1 of another shape (d: file (3,)
    vs model (4,))"``; empty when they fit."""
    missing = sorted(k for k in want if k not in got)
    unexpected = sorted(k for k in got if k not in want)
    shapes = sorted(f"{k}: file {tuple(got[k].shape)} vs model {tuple(want[k].shape)}"
                    for k in want if k in got and hasattr(got[k], "shape")
                    and tuple(got[k].shape) != tuple(want[k].shape))
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({short_list(missing, n)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected ({short_list(unexpected, n)})")
    if shapes:
        parts.append(f"{len(shapes)} of another shape ({short_list(shapes, min(n, 3))})")
    return parts


def _unreadable(path: Path, what: str, exc: Exception, tail: str) -> str:
    first = (str(exc).splitlines() or [""])[0].split(". ")[0][:160]
    reason = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    return (f"{path} is not a readable {what}: the file is truncated, corrupt or of another "
            f"kind ({reason}){tail}")


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
