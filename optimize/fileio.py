"""Crash-safe file writes and the campaign lock."""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from filelock import FileLock

LOCK_NAME = ".kiln.lock"
LOCK_TIMEOUT_S = 120


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder, fsync, then rename.

    A reader sees either the old file or the new one, never a partial write. The file gets the user's ordinary
    permissions (0644 under the default umask, as ``open`` gives), so colleagues sharing the folder can read it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, unlike mkstemp's 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def campaign_lock(data_dir: Path) -> FileLock:
    """Exclusive, re-entrant (one instance per path) lock over a campaign folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    return FileLock(str(data_dir / LOCK_NAME), timeout=LOCK_TIMEOUT_S, is_singleton=True)
