"""API fuzzing: schemathesis generates requests from the app's own OpenAPI schema, in-process, for
every operation, valid and invalid, and checks each response against what the schema declares."""

from __future__ import annotations

import copy
import json
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import positive_data_acceptance

from service.api import create_app
from service.engine import Engine, build_engine
from service.settings import Settings

from .conftest import CORPUS

CASES = 100  # per operation and per mode
KEY = "fuzz-key-4b1d"


@pytest.fixture(scope="module")
def api_schema(engine: Engine, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    root = tmp_path_factory.mktemp("fuzz")
    shutil.copytree(CORPUS, root / "corpus", ignore=shutil.ignore_patterns("*.md"))
    settings = Settings(corpus_dir=root / "corpus", index_dir=root / "index", state_dir=root / "state", api_keys=KEY)
    fuzzed = build_engine(settings, embedder=engine.embedder)
    fuzzed.sync()
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(engine=fuzzed))
    # An extra query parameter generated with a null value is not sent at all, which schemathesis
    # then counts as an invalid request accepted; unknown parameters are tested directly below.
    schema.config.generation.update(allow_extra_parameters=False)
    schema.roots = (str(root),)  # for the leak check
    return schema


def no_leaks(ctx, response, case) -> None:  # noqa: ANN001
    """Error bodies carry no traceback and no server path."""
    if response.status_code >= 400:
        text = response.text
        assert "Traceback" not in text and 'File "' not in text, f"traceback in {case.operation.label}: {text[:300]}"
        for root in ctx_roots(case):
            assert root not in text, f"server path in {case.operation.label}: {text[:300]}"


def ctx_roots(case) -> tuple[str, ...]:  # noqa: ANN001
    return case.operation.schema.roots + (str(Path.home()), "/usr/", "site-packages")


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_every_operation_holds_under_generated_requests(api_schema, mode: GenerationMode) -> None:  # noqa: ANN001
    statuses: Counter[tuple[str, int]] = Counter()
    unfuzzable: list[str] = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=CASES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            # The key is sent unless the headers are what was made invalid (a missing Authorization):
            # added back, it made that case valid, and a 200 to it read as invalid data accepted.
            auth = {} if case.meta and case.meta.is_negative_at(ParameterLocation.HEADER) else {
                "Authorization": f"Bearer {KEY}"}
            response = case.call_and_validate(
                headers=auth, additional_checks=[no_leaks],
                # Schema-valid is not always meaningful: a blank question, a filter naming an
                # unknown document, LLM mode with no endpoint are 422s the schema cannot express.
                excluded_checks=[positive_data_acceptance],
            )
            statuses[(operation.label, response.status_code)] += 1  # noqa: B023 - called within the loop

        try:
            run()
        except Unsatisfiable:  # nothing to make invalid: no parameters and no body (GET /health)
            assert mode is GenerationMode.NEGATIVE, operation.label
            unfuzzable.append(operation.label)
    cases = sum(statuses.values())
    print(f"\n{mode.value}: {cases} cases over {len(operations)} operations; statuses {dict(sorted(statuses.items()))}; "
          f"no invalid form: {unfuzzable}")
    assert not any(status >= 500 for _, status in statuses)


def test_unknown_query_parameters_are_refused(client) -> None:  # noqa: ANN001
    response = client.get("/documents", params={"vot": "down"})
    assert response.status_code == 422 and "vot" in response.json()["message"]
    # Except on /health, which load balancers probe with cache-busting queries.
    assert client.get("/health", params={"ts": "1"}).status_code == 200


LONE = "\ud800"
BYTES = "%ED%A0%80"  # the UTF-8 form LONE would have, which no valid UTF-8 holds


def _string_leaves(value: object, at: tuple = ()) -> Iterator[tuple]:
    """The path to every string inside a JSON value (keys included, as a ``("key", ...)`` step)."""
    if isinstance(value, str):
        yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            yield at + (("key", key),)
            yield from _string_leaves(item, at + (key,))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _string_leaves(item, at + (n,))


def _with_surrogate(value: object, at: tuple) -> object:
    value = copy.deepcopy(value)
    *parents, last = at
    holder = value
    for step in parents:
        holder = holder[step]  # type: ignore[index]
    if isinstance(last, tuple):  # a key: renamed, its value kept
        holder[LONE] = holder.pop(last[1])  # type: ignore[union-attr]
    elif not parents and not isinstance(holder, (dict, list)):
        return LONE
    else:
        holder[last] = LONE  # type: ignore[index]
    return value


def test_a_lone_surrogate_in_any_string_of_any_request_is_a_4xx(api_schema) -> None:  # noqa: ANN001
    """Every string of every JSON body (keys too), and every string query and path parameter (as
    the bytes a surrogate would be in UTF-8, which no valid UTF-8 holds)."""
    sent: Counter[str] = Counter()
    client = TestClient(api_schema.app)
    auth = {"Authorization": f"Bearer {KEY}"}
    for operation in (result.ok() for result in api_schema.get_all_operations()):

        @given(case=operation.as_strategy(generation_mode=GenerationMode.POSITIVE))
        # Derandomized: with 10 random examples an operation with one optional string (GET /feedback)
        # now and then got none, and the coverage assertion below failed by chance.
        @settings(max_examples=10, deadline=None, database=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            path, query = case.formatted_path, case.query or {}
            # (path, query string, body) with one string made a lone surrogate: in a body as JSON
            # spells it (schemathesis itself cannot encode one), in a URL as its would-be UTF-8 bytes.
            requests: list[tuple[str, str, str | None]] = []
            body = json.dumps(case.body) if case.media_type == "application/json" else None
            if body is not None:
                requests += [(path, urlencode(query), json.dumps(_with_surrogate(case.body, at)))
                             for at in _string_leaves(case.body)]
            for name, value in query.items():
                if isinstance(value, str):
                    requests.append((path, urlencode({**query, name: ""}).replace(f"{name}=", f"{name}={BYTES}"), body))
            for name, value in (case.path_parameters or {}).items():
                if isinstance(value, str):
                    requests.append((case.operation.path.replace(f"{{{name}}}", BYTES), urlencode(query), body))
            for url, params, content in requests:
                response = client.request(case.method, f"{url}?{params}" if params else url, content=content,
                                          headers={**auth, "Content-Type": "application/json"})
                assert 400 <= response.status_code < 500, (case.operation.label, response.status_code, response.text)
                sent[case.operation.label] += 1

        run()
    print(f"\nlone surrogates sent: {dict(sent)}")
    assert {"POST /ask", "POST /ask/stream", "POST /v1/chat/completions", "GET /feedback", "GET /documents/{source}",
            "DELETE /documents/{source}"} <= set(sent)
