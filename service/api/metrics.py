"""`GET /metrics`: the HTTP metrics of this app (prometheus-fastapi-instrumentator) and the
engine's own (service/metrics.py), in Prometheus's text format, behind the keys like every route."""

from __future__ import annotations

import os

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator

from ..metrics import SECONDS
from .deps import EngineDep
from .responses import PROTECTED
from .security import known_query, require_key

router = APIRouter(dependencies=[Depends(require_key), Depends(known_query)], responses=PROTECTED)


def instrument(app: FastAPI) -> None:
    """Count and time every request, in a registry of this app's own."""
    registry = CollectorRegistry(auto_describe=True)
    Instrumentator(registry=registry, excluded_handlers=["/metrics"], should_group_status_codes=False).instrument(
        app, latency_lowr_buckets=SECONDS, latency_highr_buckets=SECONDS,
    )
    app.state.http_metrics = registry


@router.get("/metrics", response_class=Response, tags=["Operations"],
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."}})
def metrics(request: Request, engine: EngineDep) -> Response:
    """Request rates and latencies by route; Footnote's time per stage (embed, keyword, dense,
    fuse, rerank, answer, llm), answers by mode and answerable, LLM fallbacks by reason,
    unsupported sentences, citations per answer, index size, ingest time and documents written."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:  # several worker processes: their sum (prometheus_client's setting)
        merged = CollectorRegistry()
        MultiProcessCollector(merged)
        body = generate_latest(merged)
    else:
        body = generate_latest(request.app.state.http_metrics) + generate_latest(engine.metrics.registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
