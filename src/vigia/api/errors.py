"""One JSON error shape for every failure, and the HTTP status of each of our exceptions."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vigia import exceptions as errors
from vigia.api.schemas import ErrorResponse

log = logging.getLogger("vigia.api")

#: Status per exception class; the first match in the class's MRO wins.
STATUS: dict[type[errors.VigiaError], int] = {
    errors.Unauthenticated: 401,
    errors.PermissionDenied: 403,
    errors.JobNotFound: 404,
    errors.BatchNotFound: 404,
    errors.UnknownPipeline: 404,
    errors.ReviewNotFound: 404,
    errors.DocumentNotFound: 404,
    errors.JobFileNotFound: 404,
    errors.IdempotencyConflict: 409,
    errors.InvalidTransition: 409,
    errors.PayloadTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.InvalidInput: 422,
    errors.StoreUnavailable: 503,
    errors.SchemaOutOfDate: 503,
    errors.TransientConflict: 503,
}
#: The error responses every operation documents: each status one of our exceptions maps to.
ERRORS: dict[int | str, dict[str, Any]] = {status: {"model": ErrorResponse} for status in sorted(set(STATUS.values()))}
#: Seconds a client should wait before trying again after a 503.
RETRY_AFTER = 5


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def describe_problems(items: Sequence[Mapping[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """A message naming the fields of pydantic validation errors, and the problems as data."""
    problems = [
        {"field": ".".join(str(part) for part in item.get("loc", ()) if part != "body"), "problem": item.get("msg")}
        for item in items
    ]
    fields = ", ".join(problem["field"] or "body" for problem in problems)
    return f"the request is not valid: check {fields}", problems


def status_of(error: errors.VigiaError) -> int:
    for kind in type(error).__mro__:
        if kind in STATUS:
            return STATUS[kind]
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.VigiaError)
    async def vigia_error(_: Request, error: errors.VigiaError) -> JSONResponse:
        status = status_of(error)
        headers = {"Retry-After": str(RETRY_AFTER)} if status == 503 else None
        if status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        if status >= 500:
            log.error("api.error", extra={"code": error.code})
        return JSONResponse(error_body(error.code, error.message, error.details), status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        # The same shape as every refused input: the code, the first field, every problem.
        message, problems = describe_problems(error.errors())
        details = {"field": problems[0]["field"] if problems else "body", "problems": problems}
        return JSONResponse(error_body("invalid_input", message, details), 422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return JSONResponse(error_body(code, str(error.detail)), error.status_code, headers=error.headers)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, error: Exception) -> JSONResponse:
        # A bug of ours: say so plainly, keep the details in our log (never patient data).
        log.exception("api.unexpected_error", extra={"error_type": type(error).__name__})
        return JSONResponse(error_body("internal_error", "an unexpected error occurred; it has been logged"), 500)
