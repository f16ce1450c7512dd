"""Request and response models: the API's documented shapes, and conversions to them."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from vigia.escalation import Review, ReviewStatus
from vigia.job import Event, Job, StageRun, StageState
from vigia.pipeline import Pipeline
from vigia.store.base import Batch, DeadJob
from vigia.store.documents import DocumentRow, PageRow

API_PREFIX = "/api/v1"

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_only(value: Any) -> Any:
    # pydantic reads "0.5" or 0 as seconds since 1970: a date here is written as a date.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("a date and time in ISO 8601 is expected, e.g. 2026-12-02T10:30:00Z")
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{value[:40]!r} is not a date in ISO 8601, e.g. 2026-12-02T10:30:00Z") from None


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


#: A moment written in ISO 8601 (UTC when it names no zone).
IsoDateTime = Annotated[dt.datetime, BeforeValidator(_iso_only), AfterValidator(_aware)]


def iso(moment: float | None) -> str | None:
    if moment is None:
        return None
    return dt.datetime.fromtimestamp(moment, dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable, machine-readable error code.")
    message: str = Field(description="What went wrong, for a person.")
    details: dict[str, Any] = Field(default_factory=dict)


class ErrorResponse(BaseModel):
    error: ErrorDetail


class SubmitRequest(BaseModel):
    input: Any = Field(default=None, description="The job's input, as the pipeline expects it.")
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first.")


class BatchRequest(BaseModel):
    pipeline: str
    inputs: list[Any] = Field(min_length=1, max_length=1000, description="One job per input.")
    priority: int = Field(default=0, ge=-100, le=100)


#: How a stage that will never run is shown: its job finished without it (a stage before
#: it failed for good). A retry from the dead-letter queue makes it pending again.
NOT_RUN = "not_run"


class StageRunModel(BaseModel):
    stage: str
    state: str = Field(
        description="pending, queued, running, retrying, succeeded, failed, skipped, cancelled, or not_run: "
        "the job finished without it and it will not run (unless the job is retried)."
    )
    queue: str
    attempts: int
    progress: float = Field(description="The stage's own progress, 0.0–1.0.")
    started_at: str | None
    finished_at: str | None
    duration: float | None = Field(description="Seconds the last attempt took.")
    error_type: str | None
    error_message: str | None


class JobModel(BaseModel):
    id: str
    pipeline: str
    pipeline_version: str
    state: str
    priority: int
    progress: float = Field(description="Overall progress, 0–100; 100 only once finished.")
    current_stage: str | None
    error_type: str | None
    error_message: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    updated_at: str
    last_event: int = Field(description="Sequence number of the job's latest event.")
    batch_id: str | None
    links: dict[str, str]


class ReviewSummaryModel(BaseModel):
    id: str
    status: str
    reason: str
    role: str
    severity: str


class JobDetailModel(JobModel):
    stages: list[StageRunModel]
    awaiting_review: bool = Field(description="A human-review item of this job is open or acknowledged.")
    reviews: list[ReviewSummaryModel]


class JobPageModel(BaseModel):
    jobs: list[JobModel]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


class JobResultModel(BaseModel):
    id: str
    state: str
    result: Any
    degraded_stages: list[str] = Field(description="Non-critical stages that failed or were skipped.")


class PendingResultModel(BaseModel):
    id: str
    state: str
    progress: float
    current_stage: str | None


class EventModel(BaseModel):
    job_id: str
    seq: int
    type: str
    state: str
    stage: str | None
    progress: float
    stage_progress: float | None
    message: str | None
    created_at: str


class BatchModel(BaseModel):
    id: str
    pipeline: str
    size: int
    counts: dict[str, int] = Field(description="Jobs of the batch by state.")
    finished: int
    progress: float = Field(description="Mean progress of the batch's jobs, 0–100.")
    created_at: str
    job_ids: list[str]


class BatchSubmittedModel(BaseModel):
    id: str
    jobs: list[JobModel]


class ReviewModel(BaseModel):
    id: str
    job_id: str
    stage: str | None
    kind: str = Field(description="failure, result (a pipeline's rule) or request (the stage asked).")
    reason: str
    severity: str
    role: str = Field(description="Who must look.")
    urgency: str
    status: str = Field(description="open, acknowledged or resolved.")
    created_at: float
    acknowledged_at: float | None
    acknowledged_by: str | None
    resolved_at: float | None
    resolved_by: str | None
    resolution: str | None


class ReviewPageModel(BaseModel):
    reviews: list[ReviewModel]
    next_cursor: str | None


class DeadJobModel(BaseModel):
    job: JobModel
    failed_stage: str | None = Field(description="The stage whose failure killed the job.")
    attempts: int
    error_type: str | None
    error_message: str | None


class DeadPageModel(BaseModel):
    jobs: list[DeadJobModel]
    next_cursor: str | None


class HourCountModel(BaseModel):
    hour: int = Field(description="The hour's start, in epoch seconds.")
    count: int


class DeadStatisticsModel(BaseModel):
    total: int
    by_pipeline: dict[str, int]
    by_stage: dict[str, int] = Field(description="By the stage that failed.")
    by_error_type: dict[str, int]
    by_hour: list[HourCountModel] = Field(description="By hour of death, oldest first.")


class QueueStatusModel(BaseModel):
    name: str
    depth: int = Field(description="Stage runs ready to run and waiting.")
    consumers: list[str] = Field(description="Workers consuming the queue.")


class ProcessingTimesModel(BaseModel):
    count: int
    p50: float
    p95: float
    p99: float


class AlertModel(BaseModel):
    rule: str
    key: str = Field(description="What the alert is about (a queue, a pipeline, ...).")
    severity: str
    message: str
    since: float = Field(description="When its condition began, in epoch seconds.")
    firing: bool = Field(description="False while the condition has not lasted long enough yet.")


class ScalingAdviceModel(BaseModel):
    queue: str
    arrivals_per_minute: float = Field(description="Stage runs that became ready, per minute, over the window.")
    mean_service_seconds: float | None = Field(description="Mean duration of the runs that finished in the window.")
    offered_load: float = Field(description="Slots busy on average: arrival rate × service time.")
    slots_needed: int
    workers_needed: int = Field(description="Workers of VIGIA_CONCURRENCY slots for the target wait.")
    expected_wait_seconds: float | None = Field(description="Mean wait with that many (null: they cannot keep up).")
    utilisation: float | None
    keda_list_length: int | None = Field(description="Messages per replica for KEDA's Redis scaler.")
    reasoning: str


class MonitoringStatusModel(BaseModel):
    at: float
    health: str = Field(description="ok, warning or critical.")
    window_seconds: float
    queues: list[QueueStatusModel]
    workers: list[str]
    throughput_per_minute: float
    failure_rate: float | None = Field(description="Failed or dead among finished jobs in the window.")
    finished: int
    failed: int
    processing_seconds: dict[str, ProcessingTimesModel] = Field(description="Per pipeline, start to finish.")
    dlq_size: int
    open_reviews: int
    notifications_failed: int
    alerts: list[AlertModel]
    scaling: list[ScalingAdviceModel] = Field(
        description="Per queue, the workers the load of the window needs for VIGIA_SCALE_TARGET_WAIT (M/M/c)."
    )


class PipelineTrendModel(BaseModel):
    finished: list[int]
    failed: list[int]
    failure_rate: list[float | None]
    p95_seconds: list[float | None]


class QueueTrendModel(BaseModel):
    depth: list[int | None]
    consumers: list[int | None]


class MonitoringHistoryModel(BaseModel):
    step_seconds: float
    buckets: list[float] = Field(description="Each minute's start, epoch seconds, oldest first.")
    pipelines: dict[str, PipelineTrendModel] = Field(description="One value per bucket.")
    queues: dict[str, QueueTrendModel] = Field(description="One value per bucket.")


class IdentityModel(BaseModel):
    key_id: str
    name: str
    tenant: str
    role: str
    permissions: list[str] = Field(description="What this key may do: read, submit, review, admin.")


class StageInfoModel(BaseModel):
    name: str
    depends_on: list[str]
    queue: str
    timeout: float
    critical: bool
    severity: str
    weight: float
    max_attempts: int
    description: str


class PipelineModel(BaseModel):
    name: str
    version: str
    description: str
    accepts: list[str] = Field(description="Media types of the file a job may carry.")
    stages: list[StageInfoModel]


def job_links(job_id: str) -> dict[str, str]:
    base = f"{API_PREFIX}/jobs/{job_id}"
    return {"self": base, "result": f"{base}/result", "events": f"{base}/events", "cancel": f"{base}/cancel"}


def job_model(job: Job) -> JobModel:
    return JobModel(
        id=job.id,
        pipeline=job.pipeline,
        pipeline_version=job.pipeline_version,
        state=job.state.value,
        priority=job.priority,
        progress=job.progress,
        current_stage=job.current_stage,
        error_type=job.error_type,
        error_message=job.error_message,
        created_at=iso(job.created_at) or "",
        started_at=iso(job.started_at),
        finished_at=iso(job.finished_at),
        updated_at=iso(job.updated_at) or "",
        last_event=job.last_seq,
        batch_id=job.batch_id,
        links=job_links(job.id),
    )


def job_detail_model(
    job: Job, runs: list[StageRun], reviews: list[Review], pipeline: Pipeline | None
) -> JobDetailModel:
    """The job with its stages (in the pipeline's order when it is known here) and reviews."""
    order = {name: index for index, name in enumerate(pipeline.nodes)} if pipeline is not None else {}
    ordered = sorted(runs, key=lambda run: order.get(run.stage, len(order)))
    return JobDetailModel(
        **job_model(job).model_dump(),
        stages=[stage_model(run, job_finished=job.state.is_terminal) for run in ordered],
        awaiting_review=any(review.status is not ReviewStatus.RESOLVED for review in reviews),
        reviews=[
            ReviewSummaryModel(
                id=review.id,
                status=review.status.value,
                reason=review.reason,
                role=review.role,
                severity=review.severity.value,
            )
            for review in reviews
        ],
    )


def review_model(review: Review) -> ReviewModel:
    values = review.to_dict()
    values.pop("tenant")
    return ReviewModel(**values)


def dead_model(dead: DeadJob) -> DeadJobModel:
    return DeadJobModel(
        job=job_model(dead.job),
        failed_stage=dead.stage,
        attempts=dead.attempts,
        error_type=dead.error_type,
        error_message=dead.error_message,
    )


def stage_model(run: StageRun, *, job_finished: bool = False) -> StageRunModel:
    # In the store a stage of a finished job stays pending, so that a retry can take it up.
    waiting = run.state in (StageState.PENDING, StageState.QUEUED, StageState.RETRYING)
    return StageRunModel(
        stage=run.stage,
        state=NOT_RUN if job_finished and waiting else run.state.value,
        queue=run.queue,
        attempts=run.attempts,
        progress=run.progress,
        started_at=iso(run.started_at),
        finished_at=iso(run.finished_at),
        duration=run.duration,
        error_type=run.error_type,
        error_message=run.error_message,
    )


def event_model(event: Event) -> EventModel:
    return EventModel(
        job_id=event.job_id,
        seq=event.seq,
        type=event.type.value,
        state=event.state.value,
        stage=event.stage,
        progress=event.progress,
        stage_progress=event.stage_progress,
        message=event.message,
        created_at=iso(event.created_at) or "",
    )


def batch_model(batch: Batch, job_ids: list[str]) -> BatchModel:
    return BatchModel(
        id=batch.id,
        pipeline=batch.pipeline,
        size=batch.size,
        counts=dict(batch.counts),
        finished=batch.finished,
        progress=batch.progress,
        created_at=iso(batch.created_at) or "",
        job_ids=job_ids,
    )


# --- documents -----------------------------------------------------------------------------


class DocumentModel(BaseModel):
    id: str
    title: str | None
    document_type: str | None
    language: str | None
    date: str | None = Field(description="Date of issue, ISO 8601, as read from the text.")
    page_count: int
    status: str = Field(description="indexing, indexed, or degraded (keyword search still finds it).")
    filename: str | None
    media_type: str
    size: int
    sha256: str
    job_id: str | None
    created_at: str
    updated_at: str
    links: dict[str, str]


class DocumentPageModel(BaseModel):
    documents: list[DocumentModel]
    next_cursor: str | None


class PageModel(BaseModel):
    number: int
    method: str = Field(description="text_layer, ocr, empty or failed.")
    ocr_confidence: float | None = Field(description="Mean confidence of the words read, 0–100 (OCR'd pages).")
    reason: str | None = Field(description="Why the text layer was not used, or why OCR failed.")
    text: str


class ChunkModel(BaseModel):
    ordinal: int
    page_start: int
    page_end: int
    start_offset: int = Field(description="Where the chunk starts in the document's cleaned text.")
    end_offset: int
    text: str


class ChunkPageModel(BaseModel):
    chunks: list[ChunkModel]
    total: int


class DocumentDetailModel(DocumentModel):
    metadata: dict[str, Any] | None = Field(description="Each field with its source: offsets, page, the words.")
    methods: dict[str, int]
    degraded: list[str]
    embedding_model: str | None
    chunks: int
    chunks_embedded: int
    pages: list[PageModel]


class SearchResultModel(BaseModel):
    document_id: str
    page: int
    chunk_id: int
    score: float = Field(description="Reciprocal rank fusion of the two rankings.")
    keyword_score: float | None
    vector_score: float | None = Field(description="Cosine similarity to the query.")
    snippet: str = Field(description="HTML-escaped, the query's words marked <mark>…</mark>.")


class SearchModel(BaseModel):
    results: list[SearchResultModel]
    vector_search: str = Field(description="ok, or why only keyword ranking was used.")


def document_links(document_id: str) -> dict[str, str]:
    base = f"{API_PREFIX}/documents/{document_id}"
    return {"self": base, "file": f"{base}/file"}


def document_model(row: DocumentRow) -> DocumentModel:
    return DocumentModel(
        id=row.id,
        title=row.title,
        document_type=row.doc_type,
        language=row.language,
        date=row.doc_date,
        page_count=row.page_count,
        status=row.status,
        filename=row.filename,
        media_type=row.media_type,
        size=row.size,
        sha256=row.sha256,
        job_id=row.job_id,
        created_at=iso(row.created_at) or "",
        updated_at=iso(row.updated_at) or "",
        links=document_links(row.id),
    )


def document_detail_model(row: DocumentRow, pages: list[PageRow], counts: tuple[int, int]) -> DocumentDetailModel:
    details = dict(row.details or {})
    total, embedded = counts
    return DocumentDetailModel(
        **document_model(row).model_dump(),
        metadata=details.get("metadata"),
        methods=details.get("methods") or {},
        degraded=details.get("degraded") or [],
        embedding_model=details.get("embedding_model"),
        chunks=total,
        chunks_embedded=embedded,
        pages=[
            PageModel(
                number=page.number,
                method=page.method,
                ocr_confidence=page.ocr_confidence,
                reason=page.reason,
                text=page.text,
            )
            for page in pages
        ],
    )
