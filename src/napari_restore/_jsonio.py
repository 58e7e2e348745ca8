"""Reading JSON documents we did not write (recipes, grain profiles, settings) safely.

Only :func:`json.loads` — nothing is unpickled or evaluated. Size, nesting and encoding
problems become ``ValueError`` naming the kind of document, instead of ``RecursionError``
(deep nesting), ``UnicodeDecodeError`` (binary files) or a slow parse of a huge file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_JSON_BYTES = 1_000_000


def parse(text: str | bytes, what: str, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """``json.loads(text)`` with size, nesting and syntax errors as ``ValueError``."""
    if len(text) > max_bytes:
        raise ValueError(f"{what} JSON is {len(text)} bytes; at most {max_bytes} allowed")
    try:
        return json.loads(text)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a 5000-digit integer
        raise ValueError(f"{what} is not valid JSON ({str(exc)[:200]})") from None
    except RecursionError:
        raise ValueError(f"{what} is not valid JSON: nested too deeply") from None


def read_text(path: str | Path, what: str, max_bytes: int = MAX_JSON_BYTES) -> str:
    """The UTF-8 text of a JSON file, refusing huge and binary files with ``ValueError``."""
    path = Path(path)
    if path.stat().st_size > max_bytes:
        raise ValueError(f"{path} is not a {what}: larger than {max_bytes} bytes")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path} is not a {what}: not UTF-8 text") from None
