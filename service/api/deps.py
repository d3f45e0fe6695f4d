"""What routes receive as typed dependencies. Async, like every dependency here: FastAPI runs a
plain-def dependency on the thread pool, where it would queue behind the answers being computed."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..engine import Engine
from ..feedback import FeedbackStore


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_feedback(request: Request) -> FeedbackStore:
    return request.app.state.feedback


EngineDep = Annotated[Engine, Depends(get_engine)]
FeedbackDep = Annotated[FeedbackStore, Depends(get_feedback)]
