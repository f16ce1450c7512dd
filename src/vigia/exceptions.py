"""Vigía's exceptions: one base, subclasses whose docstring is the default message.

The API maps each subclass to a stable error code in one place; stages raise the few
control-flow exceptions at the bottom (`Retry`, `Skip`, `Permanent`) to steer the engine.
"""

from __future__ import annotations

from typing import Any


class VigiaError(Exception):
    """Vigía failed to complete the operation."""

    code = "vigia_error"

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or (self.__doc__ or "").strip()
        self.details = details
        super().__init__(self.message)


class ConfigurationError(VigiaError):
    """The configuration is not valid."""

    code = "configuration_error"


class PipelineDefinitionError(VigiaError):
    """The pipeline definition is not valid."""

    code = "pipeline_definition_error"


class UnknownPipeline(VigiaError):
    """No pipeline is registered under that name."""

    code = "unknown_pipeline"


class JobNotFound(VigiaError):
    """No job has that id."""

    code = "job_not_found"


class JobFileNotFound(VigiaError):
    """The job has no file, or its file is no longer stored."""

    code = "job_file_not_found"


class BatchNotFound(VigiaError):
    """No batch has that id."""

    code = "batch_not_found"


class ReviewNotFound(VigiaError):
    """No such review item."""

    code = "review_not_found"


class DocumentNotFound(VigiaError):
    """No such document."""

    code = "document_not_found"


class IdempotencyConflict(VigiaError):
    """The idempotency key was already used with a different input."""

    code = "idempotency_conflict"


class InvalidInput(VigiaError):
    """The job input is not valid."""

    code = "invalid_input"


class PayloadTooLarge(VigiaError):
    """The upload is larger than allowed."""

    code = "payload_too_large"


class UnsupportedMediaType(VigiaError):
    """The upload's content is not of a type this pipeline accepts."""

    code = "unsupported_media_type"


class Unauthenticated(VigiaError):
    """A valid API key is needed: send it as `Authorization: Bearer <key>` or `X-API-Key`."""

    code = "unauthenticated"


class PermissionDenied(VigiaError):
    """This API key's role does not allow that."""

    code = "permission_denied"


class InvalidTransition(VigiaError):
    """The job is not in a state that allows this action."""

    code = "invalid_transition"


class StoreError(VigiaError):
    """The job store failed."""

    code = "store_error"


class InvalidValue(StoreError, InvalidInput):
    """The request holds a value the job store cannot hold or search for."""

    code = "invalid_value"


class StoreUnavailable(StoreError):
    """The job store cannot be reached."""

    code = "store_unavailable"


class TransientConflict(StoreError):
    """Two transactions collided; running the unit of work again will succeed."""

    code = "transient_conflict"


class DuplicateIdempotencyKey(StoreError):
    """Another submission with this idempotency key was stored at the same moment."""

    code = "duplicate_idempotency_key"


class SchemaOutOfDate(StoreError):
    """The job store's schema is not at the version this Vigía needs: run `vigia db upgrade`."""

    code = "schema_out_of_date"


# --- Raised by stages to steer the engine ---------------------------------------------


class StageControl(Exception):
    """Base of the exceptions a stage raises on purpose; never a bug."""


class Retry(StageControl):
    """Run this stage again later (counts as an attempt; the stage's max attempts apply)."""

    def __init__(self, reason: str = "stage asked to be retried", *, after: float | None = None):
        self.reason = reason
        self.after = after
        super().__init__(reason)


class Skip(StageControl):
    """This stage has nothing to do; a non-critical stage is recorded as skipped."""

    def __init__(self, reason: str = "stage skipped itself"):
        self.reason = reason
        super().__init__(reason)


class Permanent(StageControl):
    """This failure will not go away by retrying (bad input, missing configuration)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(reason)


class StageTimeout(Exception):
    """The stage ran past its timeout."""


class LeaseExpired(Exception):
    """The worker running the stage stopped renewing its lease (killed or lost)."""


class StageCancelled(StageControl):
    """The job was cancelled; raised by `ctx.raise_if_cancelled()` to stop a stage early."""
