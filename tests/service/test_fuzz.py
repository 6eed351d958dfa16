"""Property-based fuzzing of every operation in the service's OpenAPI spec (schemathesis), against a real
`bentoml serve` process: inputs that follow the schema and inputs that break it (schemathesis' positive and
negative generation), at least 300 examples for each operation that takes input, and not a single 5xx.
Marked slow (a few minutes); run with ``pytest -m slow``."""

from __future__ import annotations

import collections

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402

from tests.service import packaged_model, served  # noqa: E402

pytestmark = pytest.mark.slow
EXAMPLES = 300


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    home = tmp / "bentoml_home"
    tag = packaged_model(home, tmp)
    with served(tag, home, tmp / "feedback.db", tmp / "serve.log") as service:
        yield service
    log = (tmp / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]


def test_no_operation_answers_5xx(server):
    """Every operation of /docs.json: hypothesis draws cases from schemathesis' strategy for it (valid and
    invalid), each is sent over HTTP, and none may answer 5xx."""
    api = schemathesis.openapi.from_url(f"{server.url}/docs.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/recommend",
        "/recommend_batch",
        "/chat",
        "/feedback",
        "/reset",
    }
    calls: collections.Counter[str] = collections.Counter()
    statuses: dict[str, collections.Counter[int]] = collections.defaultdict(collections.Counter)

    def fuzz(operation, mode: GenerationMode) -> None:
        key = f"{operation.method.upper()} {operation.path}"

        @settings(
            max_examples=EXAMPLES,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
            suppress_health_check=list(HealthCheck),
            deadline=None,
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case):
            response = case.call(base_url=server.url, timeout=30)
            calls[key] += 1
            statuses[key][response.status_code] += 1
            case.validate_response(response, checks=[not_a_server_error])

        run()

    takes_input = {
        f"{op.method.upper()} {op.path}" for op in operations if op.body or op.query or op.path_parameters
    }
    for operation in operations:  # a GET with one boolean has 3 valid inputs: the invalid ones count too
        fuzz(operation, GenerationMode.POSITIVE)
        if f"{operation.method.upper()} {operation.path}" in takes_input:  # nothing to break otherwise
            fuzz(operation, GenerationMode.NEGATIVE)
    short = {op: calls[op] for op in takes_input if calls[op] < EXAMPLES}
    assert not short, f"fewer than {EXAMPLES} examples: {short}"
    server_errors = {op: dict(c) for op, c in statuses.items() if any(s >= 500 for s in c)}
    assert not server_errors, server_errors
    print({op: dict(c) for op, c in statuses.items()})
