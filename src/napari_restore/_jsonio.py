"""Reading files we did not write (recipes, grain profiles, settings, sidecars) safely.

Only :func:`json.loads` — nothing is unpickled or evaluated. Size, nesting and encoding
problems become ``ValueError`` naming the kind of document, instead of ``RecursionError``
(deep nesting), ``UnicodeDecodeError`` (binary files) or a slow parse of a huge file. A path
that is not a regular file (a directory, a FIFO, ``/dev/zero``) is refused before anything is
read from it, and no read goes past the size limit, so no read blocks or runs forever.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 1_000_000

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, in words ("a FIFO (named pipe)", …)."""
    for test, words in _KINDS:
        if test(mode):
            return words
    return "not a regular file"


def check_regular(path: str | Path, what: str) -> os.stat_result:
    """``os.stat(path)`` of a regular file; ``ValueError`` naming ``what`` for anything else.

    ``stat`` never blocks (opening a FIFO would), and follows symbolic links, so a link to
    ``/dev/zero`` is refused too. A missing file is ``FileNotFoundError``.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} {path} does not exist") from None
    except NotADirectoryError:
        raise FileNotFoundError(f"{what} {path} does not exist "
                                "(a part of the path is a file, not a folder)") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"{what} {path} is {file_kind(st.st_mode)}; a regular file is needed")
    return st


def read_bytes(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> bytes:
    """At most ``max_bytes`` bytes of the regular file ``path`` (``ValueError`` if longer)."""
    check_regular(path, what)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)  # non-blocking: a FIFO swapped in after the check cannot hang us
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{what} {path} is {file_kind(st.st_mode)}; a regular file is needed")
        if st.st_size > max_bytes:
            raise ValueError(f"{path} is not a {what}: larger than {max_bytes} bytes")
        chunks, size = [], 0
        while size <= max_bytes:  # bounded even where st_size lies (e.g. /proc files)
            chunk = os.read(fd, max_bytes + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(fd)
    if size > max_bytes:
        raise ValueError(f"{path} is not a {what}: larger than {max_bytes} bytes")
    return b"".join(chunks)


def parse(text: str | bytes, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """``json.loads(text)`` with size, nesting and syntax errors as ``ValueError``."""
    if not isinstance(text, str | bytes | bytearray):
        raise TypeError(f"{what} JSON must be a str or bytes; got {type(text).__name__} "
                        f"(to read a file, pass its path to the loader)")
    if len(text) > max_bytes:
        raise ValueError(f"{what} JSON is {len(text)} bytes; at most {max_bytes} allowed")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise ValueError(f"{what} is not valid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise ValueError(f"{what} is not valid JSON: nested too deeply") from None


def read_text(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of a JSON file, refusing huge, binary and non-regular files with
    ``ValueError`` (a missing file is ``FileNotFoundError``)."""
    try:
        return read_bytes(path, what, max_bytes).decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a {what}: not UTF-8 text") from None
