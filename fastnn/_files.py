"""Writing files so that a reader never sees a half-written one.

The data go to a temporary file in the target's directory, which is renamed
over the target once complete and on disk: the rename is atomic, so the
target is always either the previous file or the new one.

Three details make the result behave like a file written in place:

- The temporary file is created with mode 0666 and the kernel applies the
  umask (and the directory's default ACL), as for any file ``open`` creates;
  an existing target's permission bits are carried over.  (``mkstemp``
  would give 0600 whatever the umask.)
- A symbolic link is resolved first, so the file it points to is replaced
  and the link stays a link.
- A writer killed before the rename (``kill -9``, a power cut) cannot remove
  its temporary file.  Such files are named ``.fastnn-<host>-<pid>-<random>.
  <target>.tmp``, and every write in a directory first removes those whose
  writer, a process of this host, no longer exists.  The name, not an age,
  decides: a large save may legitimately take long, and the process id of a
  running writer keeps its file.  (Linux's ``O_TMPFILE``, an unnamed file
  linked in only when complete, leaves no remains on its own, but is missing
  on some file systems and elsewhere than Linux; and linking it in still
  takes a named temporary file, since ``linkat`` cannot replace the target.
  The naming scheme works everywhere.)  The host, as a hash of its name, is
  part of the name because process ids of other machines sharing a network
  directory say nothing here.
"""

import contextlib
import errno
import os
import re
import secrets
import socket
import stat
import zlib

_PREFIX = ".fastnn-"
#: characters of the target's name kept in a temporary name (file names are
#: limited to 255 bytes)
_STEM_LENGTH = 100
_TEMP_NAME = re.compile(r"\.fastnn-(?P<host>[0-9a-f]{8})-(?P<pid>[0-9]+)-[0-9a-f]{16}\..*\.tmp\Z",
                        re.DOTALL)
_WRITE_MODES = ("w", "wb", "wt")


def _host_tag():
    return f"{zlib.crc32(socket.gethostname().encode()):08x}"


def _process_exists(pid):
    """Whether a process with this id runs on this host (a zombie counts)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)  # signal 0: only checks that the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    except (OverflowError, ValueError):  # not a valid process id at all
        return False
    return True


def _remove_remains(directory):
    """Delete temporary files of writers on this host that no longer run."""
    if os.name != "posix":  # os.kill(pid, 0) terminates the process on Windows
        return
    host = _host_tag()
    try:
        entries = [entry.name for entry in os.scandir(directory)
                   if entry.name.startswith(_PREFIX)]
    except OSError:
        return
    for name in entries:
        match = _TEMP_NAME.match(name)
        if match is None or match["host"] != host or _process_exists(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):  # another writer may have removed it first
            os.unlink(os.path.join(directory, name))


def _resolve(path):
    """The file a write to ``path`` replaces: symbolic links followed.

    Raises
    ------
    TypeError, ValueError
        If ``path`` is not a path, or holds a NUL character.
    FileNotFoundError, NotADirectoryError, IsADirectoryError
        If its directory does not exist or is not one, or the path names a
        directory.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a file system path, got {type(path).__name__}")
    path = os.fspath(path)
    if not isinstance(path, str):  # a PathLike may return bytes
        raise TypeError(f"path must be a file system path, got {type(path).__name__}")
    if "\0" in path:
        raise ValueError(f"path must not contain a NUL character, got {path!r}")
    if path.endswith(os.sep):  # names a directory; realpath would drop the slash
        raise IsADirectoryError(errno.EISDIR, "names a directory, not a file", path)
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    if not os.path.exists(directory):
        raise FileNotFoundError(errno.ENOENT, "the directory to write into is missing",
                                directory)
    if not os.path.isdir(directory):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", directory)
    if os.path.isdir(target):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file", target)
    return target


def _create_temporary(target):
    """A new file beside ``target``, opened for writing: (descriptor, name)."""
    directory, name = os.path.split(target)
    stem = f"{_PREFIX}{_host_tag()}-{os.getpid()}-"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        temporary = os.path.join(directory,
                                 f"{stem}{secrets.token_hex(8)}.{name[:_STEM_LENGTH]}.tmp")
        try:
            return os.open(temporary, flags, 0o666), temporary
        except FileExistsError:  # 64 random bits: practically never
            continue


def check_writable(path):
    """Check, before long work, that :func:`atomic_write` can write ``path``.

    Creates and removes a temporary file where the write would create one,
    so that permissions, read-only file systems and full directories are
    found out too.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    str
        The file a write would replace (symbolic links followed).

    Raises
    ------
    OSError
        Naming the path or directory at fault.
    """
    target = _resolve(path)
    fd, temporary = _create_temporary(target)
    os.close(fd)
    os.unlink(temporary)
    return target


@contextlib.contextmanager
def atomic_write(path, mode="wb", **open_args):
    """Open a temporary file beside ``path``; rename it over ``path`` when done.

    The rename happens only after the block completes and the data reach the
    disk, so an interrupted write leaves the previous file (or none) in place,
    never a truncated one.

    Parameters
    ----------
    path : str or path-like
        The file to write; a symbolic link is followed.
    mode : {"wb", "w", "wt"}
        Binary or text.
    **open_args
        Passed to ``open`` (``encoding``, ``newline``, ...).
    """
    if not isinstance(mode, str) or mode not in _WRITE_MODES:
        raise ValueError(f"mode must be one of {_WRITE_MODES}, got {mode!r}")
    target = _resolve(path)
    directory = os.path.dirname(target)
    _remove_remains(directory)
    fd, temporary = _create_temporary(target)
    try:
        try:
            # the permission bits only: set-id bits are not for copying around
            os.fchmod(fd, stat.S_IMODE(os.stat(target).st_mode) & 0o777)
        except FileNotFoundError:
            pass
        try:
            handle = os.fdopen(fd, mode, **open_args)
        except BaseException:  # wrong open_args: the descriptor is still ours
            os.close(fd)
            raise
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _sync_directory(directory)


def _sync_directory(directory):
    """Make the rename itself durable (POSIX: the directory entry is data too)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on directories
        pass
    finally:
        os.close(fd)
