"""Request bodies read one strict way, whichever endpoint: JSON that is UTF-8, has no NaN,
Infinity or numbers that overflow, no NUL characters or lone surrogates in its strings
(neither PostgreSQL nor a log line can hold them), and types as they were written (`true`
is not 1, `"5"` is not 5). Every refusal is a `422 invalid_input` naming the field."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from vigia.api.errors import describe_problems
from vigia.exceptions import InvalidInput

Model = TypeVar("Model", bound=BaseModel)

#: Deeper than this, a body is refused before it can exhaust the parser's stack.
MAX_DEPTH = 64


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is out of range for a number")
    return value


def decode(raw: bytes, field: str = "body") -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"{field} is not UTF-8 (byte {error.start})", field=field) from None


def parse_json(raw: bytes | str, field: str = "body") -> Any:
    """The JSON value of ``raw``, or `InvalidInput` naming ``field`` (and, inside it, the
    path to the bad string)."""
    text = decode(raw, field) if isinstance(raw, bytes) else raw
    try:
        value = json.loads(text, parse_constant=_constant, parse_float=_float)
    except json.JSONDecodeError as error:
        raise InvalidInput(
            f"{field} is not valid JSON: {error.msg} (line {error.lineno}, column {error.colno})", field=field
        ) from None
    except RecursionError:
        raise InvalidInput(f"{field} is nested too deeply", field=field) from None
    except ValueError as error:  # NaN, Infinity, 1e400, an integer of over 4,300 digits
        raise InvalidInput(f"{field} holds a number JSON cannot carry: {str(error)[:120]}", field=field) from None
    _check(value, field, 0)
    return value


def _check(value: Any, path: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise InvalidInput(f"{path} is nested too deeply", field=path)
    if isinstance(value, str):
        _check_text(value, path)
    elif isinstance(value, dict):
        for name, item in value.items():
            _check_text(name, path)
            _check(item, f"{path}.{name}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check(item, f"{path}.{index}", depth + 1)


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidInput(f"{path} holds a NUL character", field=path)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{path} holds a lone surrogate (not a character)", field=path) from None


def read_model(model: type[Model], raw: bytes) -> Model:
    """The body ``raw`` as ``model``: checked as above, then validated strictly (JSON's
    own types only: no number from a string or a boolean, dates in ISO 8601), or
    `InvalidInput` naming the fields."""
    value = parse_json(raw or b"{}")
    try:
        return model.model_validate(value, strict=True)
    except ValidationError as error:
        raise invalid(error) from None


def invalid(error: ValidationError) -> InvalidInput:
    message, problems = describe_problems(error.errors())
    return InvalidInput(message, field=problems[0]["field"] if problems else "body", problems=problems)


def json_body(model: type[Model]) -> Callable[[Request], Coroutine[Any, Any, Model]]:
    """A dependency reading the request's body as ``model``, strictly."""

    async def read(request: Request) -> Model:
        return read_model(model, await request.body())

    return read


def body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of an endpoint that reads ``model`` with `json_body`."""
    return {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": model.model_json_schema(ref_template="#/components/schemas/{model}")}
            },
        }
    }
