"""Atomic file writes: permissions, symbolic links, interrupted and killed writers."""

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fastnn._files import atomic_write, check_writable

ROOT = Path(__file__).resolve().parent.parent

# A writer that stops half-way through a 3 MB file: it says so on stdout, then
# waits for a line on stdin before finishing (or is killed before it can).
WRITER = """
import sys
sys.path.insert(0, sys.argv[1])
from fastnn._files import atomic_write
with atomic_write(sys.argv[2]) as f:
    f.write(b"new" * 1_000_000)
    f.flush()
    print("half-way", flush=True)
    sys.stdin.readline()
"""


def start_writer(path):
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(ROOT), str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline() == "half-way\n"
    return writer


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for one test, then put the previous one back."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_a_new_file_gets_the_mode_the_umask_allows(tmp_path, umask, mask):
    umask(mask)
    with atomic_write(tmp_path / "w.npz") as f:
        f.write(b"data")
    # what open() gives a new file: 0666 less the umask
    with open(tmp_path / "reference", "wb"):
        pass
    assert mode_of(tmp_path / "w.npz") == 0o666 & ~mask == mode_of(tmp_path / "reference")


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    path.chmod(0o640)
    with atomic_write(path) as f:
        f.write(b"new")
    assert path.read_bytes() == b"new" and mode_of(path) == 0o640


def test_writing_through_a_symbolic_link_writes_the_file_it_points_to(tmp_path):
    (tmp_path / "store").mkdir()
    target = tmp_path / "store" / "w.npz"
    target.write_bytes(b"old")
    link = tmp_path / "latest.npz"
    link.symlink_to(target)
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.npz", "store"]
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["w.npz"]


def test_a_dangling_link_gets_its_target_created(tmp_path):
    link = tmp_path / "latest.npz"
    link.symlink_to(tmp_path / "w.npz")
    with atomic_write(link) as f:
        f.write(b"new")
    assert link.is_symlink() and (tmp_path / "w.npz").read_bytes() == b"new"


def test_an_exception_keeps_the_previous_file_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]


def test_a_killed_writer_leaves_the_previous_file_and_the_next_save_removes_its_remains(
        tmp_path):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    writer = start_writer(path)
    writer.kill()  # SIGKILL: no clean-up code runs
    writer.wait()
    writer.stdin.close()
    writer.stdout.close()
    assert path.read_bytes() == b"old"
    remains = [p for p in tmp_path.iterdir() if p.name != "w.npz"]
    assert len(remains) == 1 and remains[0].stat().st_size == 3_000_000
    with atomic_write(tmp_path / "other.npz") as f:  # any save in the directory
        f.write(b"other")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz", "w.npz"]
    assert path.read_bytes() == b"old"


def test_a_save_leaves_the_partial_file_of_a_running_writer_alone(tmp_path):
    path = tmp_path / "w.npz"
    writer = start_writer(path)
    try:
        with atomic_write(tmp_path / "other.npz") as f:
            f.write(b"other")
        assert len(list(tmp_path.iterdir())) == 2  # other.npz and the writer's partial file
    finally:
        writer.communicate("go on\n", timeout=60)
    assert writer.returncode == 0
    assert path.read_bytes() == b"new" * 1_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.npz", "w.npz"]


def test_check_writable_refuses_what_a_save_could_not_write(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        check_writable(tmp_path / "missing" / "w.npz")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        check_writable(tmp_path)
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        check_writable(tmp_path / "file" / "w.npz")
    assert check_writable(tmp_path / "w.npz") == str(tmp_path / "w.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # the probe is gone


@pytest.mark.parametrize("call, error, name", [
    (lambda: atomic_write(3).__enter__(), TypeError, "path"),
    (lambda: atomic_write("x", mode="r").__enter__(), ValueError, "mode"),
    (lambda: check_writable(None), TypeError, "path"),
])
def test_wrong_arguments(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_wrong_open_arguments_leave_nothing_behind(tmp_path):
    with pytest.raises(ValueError, match="encoding"):
        with atomic_write(tmp_path / "w.npz", "wb", encoding="utf-8"):
            pass
    assert list(tmp_path.iterdir()) == []


def test_a_path_naming_a_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_write(str(tmp_path / "w.npz") + os.sep):
            pass
    assert list(tmp_path.iterdir()) == []
