"""The Slack Bolt app: mentions, direct messages and `/footnote` answered through the engine, in
the thread of the question, with 👍/👎 feedback. Slack-specific and thin: questions go to
``Engine.ask`` like any other face's."""

from __future__ import annotations

import html
import logging
import re
import sqlite3
from typing import Any, Literal

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from ..engine import Engine
from ..errors import DatabaseUnavailable, DocumentNotFound, FootnoteError, InvalidRequest
from ..feedback import FeedbackStore
from ..models import Turn
from ..settings import Settings
from .blocks import ERROR, answer_blocks, answer_text, escape

log = logging.getLogger(__name__)

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
USAGE = "Ask me about the documents, e.g. `@Footnote which resolutions were cited?` or `/footnote <question>`."


def question_of(text: str) -> str:
    """A message's question: mentions removed, Slack's entity escapes undone."""
    return html.unescape(_MENTION.sub("", text)).strip()


class SlackBot:
    def __init__(self, engine: Engine, feedback: FeedbackStore, settings: Settings) -> None:
        self.engine = engine
        self.feedback = feedback
        self.settings = settings
        self.seen = engine.seen

    def answer(self, question: str, channel: str, asker: str | None, history: list[Turn]) -> tuple[list[dict], str]:
        """Blocks and fallback text for a question; failures become a short message, never a
        traceback (the details go to the log)."""
        try:
            answer = self.engine.ask(question, history=history)
        except InvalidRequest as exc:
            text = f"Sorry, I cannot answer that: {escape(str(exc))}"
            return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}], text
        except Exception:
            log.exception("answering a Slack question failed")
            return [{"type": "section", "text": {"type": "mrkdwn", "text": ERROR}}], ERROR
        try:
            feedback_id: str | None = self.feedback.record_answer(answer, f"slack:{channel}", asker)
        except (OSError, sqlite3.Error, DatabaseUnavailable):  # the answer matters more than its vote buttons
            log.exception("recording an answer for feedback failed")
            feedback_id = None
        return answer_blocks(answer, feedback_id), answer_text(answer)

    def history(self, client: WebClient, event: dict[str, Any], bot_user_id: str | None) -> list[Turn]:
        """The thread's earlier questions and this bot's answers, oldest first."""
        try:
            messages = client.conversations_replies(channel=event["channel"], ts=event["thread_ts"], limit=100)["messages"]
        except SlackApiError as exc:  # e.g. a missing history scope: answer without the thread
            log.warning("cannot read the thread for history: %s", exc.response.get("error"))
            return []
        turns: list[Turn] = []
        for message in messages:
            if float(message.get("ts", 0)) >= float(event["ts"]):
                break
            text = message.get("text", "")
            if message.get("user") == bot_user_id or message.get("bot_id"):
                if turns and not turns[-1].answer:
                    turns[-1] = Turn(question=turns[-1].question, answer=html.unescape(text)[:8000])
            elif question := question_of(text):
                turns.append(Turn(question=question[:4000]))
        return turns

    def reply_in_thread(self, client: WebClient, event: dict[str, Any], bot_user_id: str | None) -> None:
        if event.get("bot_id") or event.get("subtype"):  # other bots, edits, joins: not questions
            return
        channel, ts = event["channel"], event["ts"]
        # A mention in a DM can arrive as two events (app_mention and message): one answer.
        if not self.seen.first_time(f"message:{channel}:{ts}"):
            return
        thread_ts = event.get("thread_ts") or ts
        question = question_of(event.get("text", ""))
        if not question:
            blocks, text = [{"type": "section", "text": {"type": "mrkdwn", "text": USAGE}}], USAGE
        else:
            history = self.history(client, event, bot_user_id) if event.get("thread_ts") else []
            blocks, text = self.answer(question, channel, event.get("user"), history)
        client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, blocks=blocks, text=text, unfurl_links=False, unfurl_media=False
        )


def build_slack_app(engine: Engine, feedback: FeedbackStore, settings: Settings) -> App:
    if not settings.slack_bot_token:
        raise FootnoteError("the Slack bot needs FOOTNOTE_SLACK_BOT_TOKEN")
    secret = settings.slack_signing_secret.get_secret_value() if settings.slack_signing_secret else ""
    bot = SlackBot(engine, feedback, settings)
    app = App(
        client=WebClient(token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url),
        signing_secret=secret,
        # Socket Mode has no signatures; over HTTP every request is verified (5-minute window).
        request_verification_enabled=bool(secret),
        # No Slack call at startup: auth.test runs on the first request instead.
        token_verification_enabled=False,
        # Events are acknowledged at once and answered on Bolt's worker threads.
        process_before_response=False,
        logger=logging.getLogger("service.slack.bolt"),
    )

    @app.middleware
    def once_per_event(body: dict[str, Any], next: Any) -> BoltResponse | None:  # noqa: A002 - Bolt's name
        event_id = body.get("event_id")
        if event_id and not bot.seen.first_time(f"event:{event_id}"):
            log.info("slack event %s already taken; acknowledged, not answered again", event_id)
            return BoltResponse(status=200, body="")
        return next()

    @app.event("app_mention")
    def on_mention(event: dict[str, Any], client: WebClient, context: dict[str, Any]) -> None:
        bot.reply_in_thread(client, event, context.get("bot_user_id"))

    @app.event("message")
    def on_message(event: dict[str, Any], client: WebClient, context: dict[str, Any]) -> None:
        if event.get("channel_type") == "im":
            bot.reply_in_thread(client, event, context.get("bot_user_id"))

    def ack_command(ack: Any, command: dict[str, Any]) -> None:
        question = command.get("text", "").strip()
        ack(text=f"Looking that up: _{escape(question)}_" if question else USAGE)

    def answer_command(command: dict[str, Any], respond: Any) -> None:
        question = question_of(command.get("text", ""))
        if question:
            blocks, text = bot.answer(question, command["channel_id"], command.get("user_id"), [])
            respond(blocks=blocks, text=text, response_type=settings.slack_slash_response, replace_original=False)

    app.command("/footnote")(ack=ack_command, lazy=[answer_command])

    @app.action(re.compile(r"^feedback_(up|down)$"))
    def on_vote(ack: Any, body: dict[str, Any], action: dict[str, Any], respond: Any) -> None:
        ack()
        vote: Literal["up", "down"] = "up" if action["action_id"] == "feedback_up" else "down"
        try:
            feedback.vote(action["value"], body["user"]["id"], vote)
            text = "Thanks, your :thumbsup: is recorded." if vote == "up" else (
                "Thanks, your :thumbsdown: is recorded; the owners will look at this answer.")
        except DocumentNotFound:
            text = "That answer is no longer on record, so the vote was not counted."
        respond(text=text, response_type="ephemeral", replace_original=False)

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        log.error("slack request failed: %s: %s", type(error).__name__, error)

    return app
