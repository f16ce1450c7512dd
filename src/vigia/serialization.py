"""What the job store accepts as a job input or a stage output: JSON that every supported
database can hold, so that a pipeline behaves the same on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import re
from typing import Any

# An escaped NUL in json.dumps output: "\u0000" preceded by an even number of backslashes.
# PostgreSQL's JSONB cannot store that character.
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


class NotStorable(ValueError):
    """The value cannot be stored as a job input or stage output."""


def to_storable(value: Any) -> Any:
    """The value as the store will give it back (tuples become lists, keys strings), or
    `NotStorable` naming why it cannot be stored."""
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as error:
        raise NotStorable(f"is not JSON-serialisable: {error}") from None
    except RecursionError:
        raise NotStorable("is nested too deeply") from None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotStorable("contains text that is not valid Unicode (a lone surrogate)") from None
    if _ESCAPED_NUL.search(text):
        raise NotStorable("contains a NUL character (\\u0000), which the job store cannot hold")
    try:
        return json.loads(text)
    except RecursionError:
        raise NotStorable("is nested too deeply") from None
