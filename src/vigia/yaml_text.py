"""A small YAML writer for the documents Vigía writes for other tools (alert rules,
deployment manifests): mappings, lists, strings, numbers, booleans. Strings are written
double-quoted, as JSON writes them, which YAML reads the same; no library needed."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

#: Keys written as they are; others are quoted.
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]*$")


def to_yaml(document: Any, indent: int = 0) -> str:
    """``document`` as YAML, block style, ``indent`` levels in."""
    pad = "  " * indent
    lines: list[str] = []
    if isinstance(document, Mapping):
        for key, value in document.items():
            name = key if _PLAIN_KEY.match(str(key)) else json.dumps(str(key))
            if isinstance(value, Mapping | list) and value:
                lines.append(f"{pad}{name}:")
                lines.append(to_yaml(value, indent + 1))
            else:
                lines.append(f"{pad}{name}: {_scalar(value)}")
    elif isinstance(document, list):
        for item in document:
            if isinstance(item, Mapping) and item:
                nested = to_yaml(item, indent + 1).splitlines()
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines.extend(nested[1:])
            elif isinstance(item, list) and item:
                lines.append(f"{pad}- {json.dumps(item, ensure_ascii=False)}")  # JSON: YAML's flow style
            else:
                lines.append(f"{pad}- {_scalar(item)}")
    else:
        lines.append(f"{pad}{_scalar(document)}")
    return "\n".join(lines)


def _scalar(value: Any) -> str:
    if isinstance(value, Mapping | list):
        return "{}" if isinstance(value, Mapping) else "[]"
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int | float):
        return repr(value)
    return json.dumps(str(value), ensure_ascii=False)


def documents(items: list[Any]) -> str:
    """Several documents in one stream, as Kubernetes manifests are kept."""
    return "---\n".join(to_yaml(item) + "\n" for item in items)
