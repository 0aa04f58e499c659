"""Explicit examples for the batch directory's lock (_lock), in this process.

The batch tests take the lock from two processes; these take it twice from one (an flock belongs
to an open file description, so a second open in the same process is refused the same way), which
lets each branch be checked exactly: who is named as the holder, what a left-behind pid becomes,
what a clean release leaves in the file.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from novita_flux._lock import LOCK_NAME, DirectoryBusy, DirectoryLock, _read_pid
from tests.support import failing_at, hooked


def test_the_lock_file_is_named_in_the_directory_and_holds_our_pid(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    assert lock.previous_pid is None  # nothing is known before it is taken
    assert lock.path == tmp_path / ".novita-flux.lock" == tmp_path / LOCK_NAME
    with lock as held:
        assert held is lock
        assert lock.path.read_text() == f"{os.getpid()}\n"
        assert lock.previous_pid is None  # a fresh directory: nobody held it before
    assert lock.path.read_text() == ""  # a clean exit leaves no holder's pid behind
    assert lock.path.exists()


def test_taking_the_lock_passes_its_fault_point_before_the_pid_is_written(tmp_path: Path) -> None:
    """tests/faults fills the disk at `write.lock` (mutmut does not run them): the step must be
    reached, by that name, with the file emptied and our pid not in it yet."""
    lock = DirectoryLock(tmp_path)
    lock.path.write_text("12345678\n")  # a holder that died
    seen: list[tuple[str, str]] = []
    with hooked(lambda point: seen.append((point, lock.path.read_text()))), lock:
        pass
    assert seen == [("write.lock", "")]
    assert lock.previous_pid == 12345678


def test_a_lock_that_cannot_write_its_pid_is_let_go_and_the_error_raised(tmp_path: Path) -> None:
    """A full disk as the pid is written: the run stops with that error, and the directory is
    not left locked by an open file nobody will close."""

    full = failing_at({"write.lock": OSError(errno.ENOSPC, "No space left on device")})
    with hooked(full), pytest.raises(OSError, match="No space left") as failed:
        DirectoryLock(tmp_path).acquire()
    assert failed.value.errno == errno.ENOSPC
    with DirectoryLock(tmp_path) as again:  # free: the failed attempt closed its file
        assert again.path.read_text() == f"{os.getpid()}\n"


def test_a_second_holder_is_refused_and_told_whose_it_is(tmp_path: Path) -> None:
    with DirectoryLock(tmp_path), pytest.raises(DirectoryBusy) as refused:
        DirectoryLock(tmp_path).acquire()
    assert refused.value.directory == tmp_path
    assert refused.value.pid == os.getpid()
    assert str(refused.value) == (
        f"{tmp_path} is in use by process {os.getpid()} (another batch is running there)"
    )


def test_a_holder_whose_pid_cannot_be_read_is_another_process(tmp_path: Path) -> None:
    first = DirectoryLock(tmp_path).acquire()
    try:
        first.path.write_text("not a pid\n")
        with pytest.raises(DirectoryBusy) as refused:
            DirectoryLock(tmp_path).acquire()
    finally:
        first.release()
    assert refused.value.pid is None
    assert str(refused.value) == (
        f"{tmp_path} is in use by another process (another batch is running there)"
    )


def test_a_refused_attempt_closes_its_file_and_leaves_the_holder_alone(tmp_path: Path) -> None:
    def open_files() -> int:
        return len(os.listdir("/proc/self/fd"))

    with DirectoryLock(tmp_path) as held:
        before = open_files()
        for _ in range(3):
            with pytest.raises(DirectoryBusy):
                DirectoryLock(tmp_path).acquire()
        assert open_files() == before
        assert held.path.read_text() == f"{os.getpid()}\n"
    # and once the holder is gone, the directory is free again
    with DirectoryLock(tmp_path) as again:
        assert again.path.read_text() == f"{os.getpid()}\n"


def test_a_pid_left_by_a_dead_holder_is_reported_and_replaced(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("4194305\n")  # above any pid_max: never a live process
    with DirectoryLock(tmp_path) as lock:
        assert lock.previous_pid == 4194305
        assert lock.path.read_text() == f"{os.getpid()}\n"


def test_a_longer_pid_left_behind_is_overwritten_not_appended_to(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text("12345678901234567890\n")
    with DirectoryLock(tmp_path) as lock:
        assert lock.path.read_text() == f"{os.getpid()}\n"


def test_our_own_pid_left_behind_is_not_a_previous_holder(tmp_path: Path) -> None:
    (tmp_path / LOCK_NAME).write_text(f"{os.getpid()}\n")
    with DirectoryLock(tmp_path) as lock:
        assert lock.previous_pid is None


@pytest.mark.parametrize("left", ["", "\n", "abc\n", "-5\n", "12 34\n"])
def test_a_lock_file_without_a_pid_names_no_previous_holder(tmp_path: Path, left: str) -> None:
    (tmp_path / LOCK_NAME).write_text(left)
    with DirectoryLock(tmp_path) as lock:
        assert lock.previous_pid is None


def test_release_is_idempotent_and_a_released_lock_can_be_taken_again(tmp_path: Path) -> None:
    lock = DirectoryLock(tmp_path)
    lock.release()  # never acquired: nothing to do
    lock.acquire()
    lock.release()
    lock.release()
    assert lock.path.read_text() == ""
    lock.acquire()
    try:
        with pytest.raises(DirectoryBusy):
            DirectoryLock(tmp_path).acquire()
    finally:
        lock.release()


def test_the_lock_file_is_created_readable_by_others(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        with DirectoryLock(tmp_path) as lock:
            assert lock.path.stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(previous)


@pytest.mark.parametrize(
    ("text", "pid"),
    [(b"123\n", 123), (b"  77  ", 77), (b"", None), (b"x1", None), (b"\xff\xfe", None)],
)
def test_read_pid(tmp_path: Path, text: bytes, pid: int | None) -> None:
    path = tmp_path / "pid"
    path.write_bytes(text)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert _read_pid(fd) == pid
    finally:
        os.close(fd)


def test_read_pid_reads_at_most_32_bytes_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "pid"
    path.write_bytes(b"1" * 32 + b"x")  # the 33rd byte would spoil it
    fd = os.open(path, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)  # pread ignores the file position
        assert _read_pid(fd) == int("1" * 32)
    finally:
        os.close(fd)


def test_a_release_whose_clean_up_fails_still_drops_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lock = DirectoryLock(tmp_path).acquire()

    def refuse(fd: int, length: int) -> None:
        raise OSError(30, "Read-only file system")

    with monkeypatch.context() as patched:
        patched.setattr(os, "ftruncate", refuse)
        lock.release()  # the pid stays behind; the lock must not
    with DirectoryLock(tmp_path) as again:
        assert again.previous_pid is None  # it was our own pid
