"""`POST /slack/events`: Slack's requests handed to the Bolt app, which verifies each signature."""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt import BoltRequest
from starlette.concurrency import run_in_threadpool

from .responses import RATE_LIMITED, TOO_LARGE, ErrorBody

router = APIRouter(tags=["Slack"])


def _is_object(body: str, content_type: str) -> bool:
    """Whether a body has the shape Slack sends: a JSON object, or a form (slash commands) whose
    ``payload`` field, if any (button clicks), is a JSON object."""
    try:
        if content_type.startswith("application/json"):
            return isinstance(json.loads(body), dict)
        payloads = parse_qs(body).get("payload", [])
        return all(isinstance(json.loads(p), dict) for p in payloads)
    except ValueError:  # json.JSONDecodeError included
        return False


@router.post(
    "/slack/events",
    responses={400: {"model": ErrorBody, "description": "A body that is not a JSON object."},
               401: {"model": ErrorBody, "description": "Missing, forged or stale Slack signature."},
               **TOO_LARGE, **RATE_LIMITED},
)
async def slack_events(request: Request) -> Response:
    """Events, slash commands and button clicks from Slack. Acknowledged at once; answers are
    posted to the thread afterwards."""
    body = (await request.body()).decode("utf-8", errors="replace")
    if not _is_object(body, request.headers.get("content-type", "")):
        # Bolt assumes an object and fails on anything else, signed or not.
        return JSONResponse(status_code=400, content={"detail": "the body is not a JSON object (nor a form whose "
                                                                "payload is one)"})
    bolt_request = BoltRequest(body=body, query=str(request.url.query), headers=dict(request.headers))
    # Bolt's dispatch blocks (it waits for a slash command's ack); keep it off the event loop.
    response = await run_in_threadpool(request.app.state.slack.dispatch, bolt_request)
    return Response(status_code=response.status, content=response.body,
                    headers=response.first_headers_without_set_cookie())
