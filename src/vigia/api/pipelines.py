"""Pipelines and their stage graphs."""

from __future__ import annotations

from fastapi import APIRouter

from vigia.api.auth import App, Reader
from vigia.api.errors import ERRORS
from vigia.api.schemas import PipelineModel

router = APIRouter(tags=["pipelines"])


@router.get("/pipelines", response_model=list[PipelineModel], responses=ERRORS, summary="List pipelines")
async def list_pipelines(_: Reader, vigia: App) -> list[PipelineModel]:
    return [PipelineModel(**pipeline.describe()) for pipeline in vigia.registry]


@router.get("/pipelines/{name}", response_model=PipelineModel, responses=ERRORS, summary="A pipeline")
async def get_pipeline(name: str, _: Reader, vigia: App) -> PipelineModel:
    return PipelineModel(**vigia.registry.get(name).describe())
