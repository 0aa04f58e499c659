"""One writer per batch directory: an advisory lock on `DIR/.novita-flux.lock`.

The lock is an flock(2) on the file, which the kernel drops when its holder dies however it
dies (SIGKILL included), so a lock left by a killed process is never stale: the next run simply
gets it, and the pid the dead process wrote there says whose it was. The file itself stays.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from novita_flux._faultpoints import reach

LOCK_NAME = ".novita-flux.lock"


class DirectoryBusy(Exception):
    """Another live process holds the directory's lock."""

    def __init__(self, directory: Path, pid: int | None) -> None:
        holder = f"process {pid}" if pid is not None else "another process"
        super().__init__(f"{directory} is in use by {holder} (another batch is running there)")
        self.directory = directory
        self.pid = pid


class DirectoryLock:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self._fd: int | None = None
        self.previous_pid: int | None = None  # who held it last, if it was left behind

    def acquire(self) -> DirectoryLock:
        import fcntl  # POSIX only; imported here so the library still imports elsewhere

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DirectoryBusy(self.path.parent, pid) from None
        left = _read_pid(fd)
        self.previous_pid = left if left not in (None, os.getpid()) else None
        try:
            os.ftruncate(fd, 0)
            reach("write.lock")
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            os.fsync(fd)
        except BaseException:
            os.close(fd)  # the lock goes with it
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # a clean exit leaves no holder's pid behind
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    return int(text) if text.isdigit() else None
