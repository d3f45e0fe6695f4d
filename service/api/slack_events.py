"""`POST /slack/events`: Slack's requests handed to the Bolt app, which verifies each signature."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from slack_bolt import BoltRequest
from starlette.concurrency import run_in_threadpool

from .responses import RATE_LIMITED, TOO_LARGE, ErrorBody

router = APIRouter(tags=["Slack"])


@router.post(
    "/slack/events",
    responses={401: {"model": ErrorBody, "description": "Missing, forged or stale Slack signature."},
               **TOO_LARGE, **RATE_LIMITED},
)
async def slack_events(request: Request) -> Response:
    """Events, slash commands and button clicks from Slack. Acknowledged at once; answers are
    posted to the thread afterwards."""
    body = (await request.body()).decode("utf-8", errors="replace")
    bolt_request = BoltRequest(body=body, query=str(request.url.query), headers=dict(request.headers))
    # Bolt's dispatch blocks (it waits for a slash command's ack); keep it off the event loop.
    response = await run_in_threadpool(request.app.state.slack.dispatch, bolt_request)
    return Response(status_code=response.status, content=response.body,
                    headers=response.first_headers_without_set_cookie())
