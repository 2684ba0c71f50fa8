"""Is the ``--state`` path usable? Checked before start, with a message naming the path.

The state database is opened deep inside the service (SQLite, in a thread, once the event
loop runs), where a read-only folder, a directory, or a file that is not a database used to
end in a traceback, and only when the first write came. Checked here first, the operator
gets one line naming the path and what is wrong with it, and exit 2.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
from pathlib import Path
from typing import NoReturn

from monitor.common.config import ConfigError

_NOT_WRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)


class StatePathError(ConfigError):
    """The state database's path cannot be used; the message names it."""


def check_writable(path: str | Path) -> None:
    """For ``run`` and ``collector``: the database can be created or opened for writing
    (its folder too: SQLite writes its journal beside it). Raises StatePathError."""
    target = Path(path)
    _not_a_directory(target)
    folder = target.absolute().parent
    if not folder.is_dir():
        _fail(target, f"the folder {folder} does not exist / thư mục không tồn tại")
    _folder_writable(target, folder)
    if target.exists():
        _file_writable(target)
        _is_database(target, "rw")


def check_readable(path: str | Path) -> None:
    """For the report commands, which only read: an existing SQLite database."""
    target = Path(path)
    _not_a_directory(target)
    if not target.exists():
        _fail(target, "no such file / không có tệp này")
    try:
        with target.open("rb"):
            pass
    except OSError as exc:
        _fail(target, f"cannot read it: {exc.strerror or exc}")
    try:
        _is_database(target, "ro")
    except StatePathError:
        folder = target.absolute().parent
        _folder_writable(target, folder)  # the likelier cause, named if it is the one
        raise


def _folder_writable(target: Path, folder: Path) -> None:
    """Root ignores permission bits, so ask the kernel: create and remove a file there.
    (SQLite writes beside the database even to read it when it is in WAL mode.)"""
    try:
        fd, name = tempfile.mkstemp(prefix=".tslcd-state-check-", dir=folder)
    except OSError as exc:
        _fail(target, f"cannot write in its folder {folder}: {_why(exc)}")
    os.close(fd)
    os.unlink(name)


def _not_a_directory(target: Path) -> None:
    """Only a regular file (or nothing yet) can hold the database: not a directory, a
    device such as /dev/null, a pipe, or a symbolic link to nowhere."""
    if target.is_dir():
        _fail(target, "is a directory, not a database file / là thư mục, không phải tệp")
    if os.path.lexists(target) and not target.exists():
        _fail(target, "is a symbolic link to nothing / là liên kết tới tệp không tồn tại")
    if target.exists() and not target.is_file():
        _fail(target, "is not a regular file (a device or a pipe) / không phải tệp thường")


def _file_writable(target: Path) -> None:
    try:
        with target.open("r+b"):
            pass
    except OSError as exc:
        _fail(target, f"cannot open it for writing: {_why(exc)}")


def _is_database(target: Path, mode: str) -> None:
    """Reading the header page is enough to tell garbage from a database, whatever its
    size (an empty file is an empty database)."""
    uri = f"file:{target.absolute()}?mode={mode}"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            db.execute("PRAGMA schema_version").fetchone()
        finally:
            db.close()
    except sqlite3.Error as exc:
        _fail(target, f"not a usable SQLite database ({exc}) / không phải cơ sở dữ liệu "
                      "trạng thái")


def _why(exc: OSError) -> str:
    if exc.errno in _NOT_WRITABLE:
        return f"{exc.strerror} (read-only / chỉ đọc)"
    return exc.strerror or str(exc)


def _fail(target: Path, message: str) -> NoReturn:
    raise StatePathError(f"state database {target}: {message}")
