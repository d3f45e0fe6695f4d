"""`footnote`: a thin shell over the Engine (or over a server with --url). Domain errors become
one line on stderr and a non-zero exit here, and only here."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from .documents import discover
from .engine import Engine, build_engine
from .errors import FootnoteError, IndexMissing, InvalidRequest
from .evaluation import EvalReport, evaluate, load_gold
from .logs import configure_logging
from .models import Answer, Filters, Final
from .settings import Settings, get_settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Footnote: cited answers over your documents.",
)

Url = Annotated[str | None, typer.Option("--url", help="Ask a running server instead of the local index.")]
TopK = Annotated[int, typer.Option("--top-k", min=1, max=50, help="Passages to retrieve.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON (the API's response body).")]


def _settings() -> Settings:
    try:
        settings = get_settings()
    except ValueError as exc:
        raise FootnoteError(f"bad FOOTNOTE_* setting: {exc}") from exc
    configure_logging(settings)
    # No "Loading weights" bars; read by transformers when (and only if) a model is loaded in torch.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    return settings


def _engine() -> Engine:
    return build_engine(_settings())


def _backend(url: str | None):  # noqa: ANN202 - Engine or RemoteEngine, both evaluation.Backend
    """The server at ``url`` (with FOOTNOTE_API_KEY), or the local index, built first if there is
    none yet (as `serve` would)."""
    settings = _settings()
    if url:
        from .client import RemoteEngine

        return RemoteEngine(url, settings.api_key.get_secret_value() if settings.api_key else None)
    engine = build_engine(settings)
    try:
        engine.load()
    except IndexMissing:
        typer.echo(f"no index yet: building it from {settings.corpus_dir} (once)", err=True)
        _start(engine)
    return engine


def _progress_bar():  # noqa: ANN202 - a progress callback
    from tqdm import tqdm

    bar: tqdm | None = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            # disable=None: drawn on a terminal only, not into a log or a pipe.
            bar = tqdm(total=total, unit="document", desc="indexing", file=sys.stderr, leave=False, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


@app.command()
def index(
    paths: Annotated[
        list[Path] | None, typer.Argument(help="Files or folders to add or replace (default: sync the corpus).")
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Re-embed everything.")] = False,
) -> None:
    """With no PATHs, make the index match the corpus folder (embeds new and changed documents,
    drops removed ones). With PATHs, copy those documents into the corpus and index them."""
    engine = _engine()
    if paths:
        if rebuild:
            raise InvalidRequest("--rebuild applies to the whole corpus: give it without PATHs")
        files = [(name, path.read_bytes()) for name, path in discover(paths).items()]
        report = engine.add(files, progress=_progress_bar())
    else:
        report = engine.sync(rebuild=rebuild, progress=_progress_bar())
    typer.echo(f"indexed {report.summary()}")


def print_answer(answer: Answer, streamed: str | None = None) -> None:
    """The answer (unless it was already printed as it streamed), its sources and its flags."""
    if streamed is None:
        typer.echo(answer.answer)
    elif " ".join(streamed.split()) != " ".join(answer.answer.split()):
        typer.echo(f"\n\n{answer.answer}" if streamed else answer.answer)
    else:
        typer.echo()
    if answer.confidence is not None and answer.answerable:
        typer.echo(f"\nConfidence: {answer.confidence:.0%}")
    if answer.fallback_reason:
        typer.echo(f"\n(LLM mode failed, so this answer is quoted: {answer.fallback_reason})", err=True)
    if answer.citations:
        typer.echo("\nSources:")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.title, c.date) if x)
            typer.echo(f"  [{c.id}] {c.source}{f' ({meta})' if meta else ''} [{c.start}:{c.end}]")
            typer.echo(f"      \u201c{c.quote}\u201d")
    for u in answer.unsupported:
        typer.echo(f"\nUnsupported: \u201c{u.sentence}\u201d ({u.reason})")
    if answer.dropped_markers:
        typer.echo(f"\nRemoved markers naming no passage: {', '.join(f'[{n}]' for n in answer.dropped_markers)}")


@app.command()
def ask(
    question: str,
    top_k: TopK = 5,
    json_out: Json = False,
    url: Url = None,
    source: Annotated[list[str] | None, typer.Option(help="Only this document (repeatable).")] = None,
    date_from: Annotated[str | None, typer.Option(help="Only documents dated on/after YYYY-MM-DD.")] = None,
    date_to: Annotated[str | None, typer.Option(help="Only documents dated on/before YYYY-MM-DD.")] = None,
    mode: Annotated[
        str | None, typer.Option(help="extractive or llm (default FOOTNOTE_ANSWER_MODE).")
    ] = None,
) -> None:
    """Answer a question with citations. An LLM answer is printed as it is written."""
    if mode not in (None, "extractive", "llm"):
        raise InvalidRequest(f"--mode must be extractive or llm, got {mode!r}")
    filters = None
    if source or date_from or date_to:
        try:
            filters = Filters(source=source or None, date_from=date_from, date_to=date_to)
        except ValidationError as exc:
            raise InvalidRequest(f"bad filter: {exc.errors()[0]['msg']}") from exc
    backend = _backend(url)
    if json_out:
        typer.echo(backend.ask(question, top_k, filters, mode).model_dump_json())
        return
    streamed = ""
    for event in backend.ask_stream(question, top_k, filters, mode):
        if isinstance(event, Final):
            print_answer(event.answer, streamed)
        else:
            typer.echo(event.text, nl=False)
            streamed += event.text


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address (default FOOTNOTE_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default FOOTNOTE_PORT).")] = None,
) -> None:
    """Build the index if it is missing or stale, then serve the HTTP API."""
    import uvicorn

    from .api import create_app
    from .api.server import server_config

    settings = _settings()
    if host:  # the address bound is also what /mcp's DNS-rebinding protection is set for
        settings = settings.model_copy(update={"host": host})
    engine = build_engine(settings)
    _start(engine)
    uvicorn.Server(server_config(create_app(engine=engine), settings, host, port)).run()


@app.command(name="mcp")
def mcp_stdio() -> None:
    """Serve Footnote to an MCP client (a desktop or IDE agent) over stdin/stdout: read-only tools
    ask, search, list_documents and get_document, and the documents as resources."""
    from .mcp_server import build_mcp

    engine = build_engine(_settings())
    _start(engine)  # on stderr: stdout is the protocol's
    engine.embedder.warm_up()
    build_mcp(lambda: engine).run("stdio")


def _start(engine: Engine) -> None:
    report = engine.start(progress=_progress_bar())
    counts = engine.store.counts()
    summary = report.summary() if report else f"{counts.documents} documents, {counts.chunks} chunks in the database"
    typer.echo(f"index ready: {summary}", err=True)


@app.command()
def slack() -> None:
    """Run the Slack bot over Socket Mode (no public endpoint): needs FOOTNOTE_SLACK_APP_TOKEN
    (xapp-...) and FOOTNOTE_SLACK_BOT_TOKEN."""
    settings = _settings()
    if not (settings.slack_app_token and settings.slack_bot_token):
        raise FootnoteError(
            "footnote slack needs FOOTNOTE_SLACK_APP_TOKEN (xapp-..., Socket Mode) and FOOTNOTE_SLACK_BOT_TOKEN (xoxb-...)"
        )
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from .slack.bot import build_slack_app

    engine = build_engine(settings)
    _start(engine)
    bolt = build_slack_app(engine, engine.feedback, settings)
    typer.echo("connecting to Slack over Socket Mode", err=True)
    SocketModeHandler(bolt, settings.slack_app_token.get_secret_value()).start()


@app.command()
def feedback(
    vote: Annotated[str | None, typer.Option(help="Only 'up' or only 'down' votes.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="Most votes to list.")] = 100,
    json_out: Json = False,
    url: Url = None,
) -> None:
    """List votes on answers, newest first (`--vote down`: the answers that failed)."""
    if vote not in (None, "up", "down"):
        raise InvalidRequest(f"--vote must be up or down, got {vote!r}")
    if url:
        from .client import RemoteEngine

        key = _settings().api_key
        entries = RemoteEngine(url, key.get_secret_value() if key else None).feedback(vote, limit)  # type: ignore[arg-type]
    else:

        entries = build_engine(_settings()).feedback.entries(vote, limit)  # type: ignore[arg-type]
    if json_out:
        typer.echo(json.dumps([e.model_dump(mode="json") for e in entries], indent=2))
        return
    if not entries:
        typer.echo("no votes yet")
    for e in entries:
        mark = "+1" if e.vote == "up" else "-1"
        typer.echo(f"{mark} {e.voted_at:%Y-%m-%d %H:%M} {e.voter} in {e.channel}: {e.question}")
        typer.echo(f"     answer: {e.answer[:200]}")
        for s in e.sources:
            typer.echo(f"     [{s.id}] {s.source} [{s.start}:{s.end}]")


def _print_report(report: EvalReport) -> None:
    rows = [
        ("answer accuracy", f"{report.answer_accuracy:.3f}"),
        ("citation accuracy", f"{report.citation_accuracy:.3f}"),
        ("refusal accuracy", f"{report.refusal_accuracy:.3f}"),
        ("span integrity", f"{report.span_integrity:.3f}"),
        (f"retrieval hit@{report.top_k}", f"{report.retrieval_hit_at_k:.3f}"),
        ("latency p50 / p95", f"{report.latency_p50_ms:.1f} / {report.latency_p95_ms:.1f} ms"),
    ]
    if report.calibration_error is not None:
        rows.append(("calibration error", f"{report.calibration_error:.3f} (confidence against accuracy, answers given)"))
    typer.echo(f"{report.questions} questions")
    for label, value in rows:
        typer.echo(f"  {label:<20} {value}")
    if report.reliability:
        typer.echo("  reliability: " + ", ".join(f"{b.confidence:.2f}->{b.accuracy:.2f} ({b.answers})"
                                              for b in report.reliability))
    for r in report.results:
        if r.id in report.failed:
            typer.echo(f"  FAIL {r.id}: {r.question} -> {r.answer[:120]}")


@app.command(name="eval")
def eval_(
    gold: Annotated[Path, typer.Argument(help="Gold questions, one JSON object per line.")],
    top_k: TopK = 5,
    json_out: Json = False,
    url: Url = None,
) -> None:
    """Score a gold question set: answers, citations, refusals, spans, retrieval, latency."""
    items = load_gold(gold)
    report = evaluate(_backend(url), items, top_k)
    if json_out:
        typer.echo(report.model_dump_json(indent=2))
    else:
        _print_report(report)


def main() -> None:
    try:
        app()
    except FootnoteError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
