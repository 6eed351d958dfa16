"""In-process fixtures: the service module over the tiny bundle, an ASGI test client, a temp feedback DB."""

from __future__ import annotations

import importlib
import sys

import pytest
from starlette.testclient import TestClient

from tests.service import DATA_HASH, environ, isolated_bentoml_home, make_bundle, save_bentoml_model

LABELS = {
    "registered_model": "sessionflow-recommender",
    "mlflow_model_version": "7",
    "mlflow_run_id": "run-abc",
    "data_hash": DATA_HASH,
    "model": "itemknn",
}


@pytest.fixture(scope="package")
def feedback_db(tmp_path_factory):
    """Where the in-process service logs feedback (never the project's data/feedback)."""
    return tmp_path_factory.mktemp("feedback") / "feedback.db"


@pytest.fixture(scope="package")
def service(tmp_path_factory, feedback_db):
    """The service module, imported with bento arguments exactly as a built bento passes them."""
    from bentoml._internal.configuration.containers import BentoMLContainer

    home = tmp_path_factory.mktemp("bentoml_home")
    with (
        isolated_bentoml_home(home),
        environ(
            SESSIONFLOW_FEEDBACK_DB=str(feedback_db),
            SESSIONFLOW_FEEDBACK_URL=None,
            SESSIONFLOW_CATALOGUE_OVERLAY=str(feedback_db.parent / "catalogue" / "overlay.json"),
        ),
    ):
        tag = save_bentoml_model(make_bundle(tmp_path_factory.mktemp("bundle") / "b"), LABELS)
        # Generous latency budget: batching is tested, not load shedding on a busy test machine.
        args = {"model_tag": tag, "max_latency_ms": "20000", "conversation": '{"default_k": 5}'}
        with BentoMLContainer.bento_arguments.patch(args):
            if "bento.service" in sys.modules:
                module = importlib.reload(sys.modules["bento.service"])
            else:
                module = importlib.import_module("bento.service")
        assert tag == module.MODEL_TAG
        yield module


@pytest.fixture(scope="package")
def client(service):
    with TestClient(app=service.SessionRecommender.to_asgi()) as test_client:
        yield test_client
