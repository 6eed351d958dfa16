"""The request panel (benchmarks/request_panel.yaml) on the real ml-latest-small and amazon-scientific
catalogues, each answer checked against the catalogue's own facts. Marked slow: it ingests, trains item-kNN
and indexes both catalogues first (item text embeddings cached in the temp folder). Skips, saying why,
without the data."""

from __future__ import annotations

import importlib.util
import tempfile
from functools import lru_cache
from pathlib import Path

import pytest

from tests.unit.dialogue_fixtures import SHARED

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(tempfile.gettempdir()) / "sessionflow-test-embeddings"


def _panel_module():
    spec = importlib.util.spec_from_file_location("request_panel", ROOT / "benchmarks" / "request_panel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PANEL = _panel_module()
CASES = [(name, case) for name, cases in PANEL.load_panel().items() for case in cases]


@lru_cache(maxsize=2)
def engine_for(name: str):
    from components.bundle import save_bundle
    from components.config import FeaturesConfig
    from components.datasets import BUILTIN, pull
    from components.dialogue.engine import load_engine
    from components.dialogue.packaging import write_index
    from components.features import build_features
    from components.ingest import ingest
    from components.prior import item_audience, trending_popularity
    from models import build_model

    raw = Path(tempfile.mkdtemp(prefix="sessionflow-panel-")) / "raw"
    pull(name, raw, str(SHARED))
    spec = BUILTIN[name].spec.model_copy(update={"base_dir": str(raw / name)})
    data = ingest(spec)
    fs = build_features(data.interactions, FeaturesConfig())
    model = build_model("itemknn", len(fs.vocab), {})
    model.fit(fs.train)
    bundle = raw.parent / "bundle"
    prior = trending_popularity(data.interactions, fs.vocab, 365.0)
    audience = item_audience(data.interactions, fs.vocab)  # as featurize writes it: ratings, popularity
    meta = {"data_hash": data.data_hash}
    save_bundle(bundle, model, fs.vocab, data.items, meta, spec.catalogue, prior, audience)
    write_index(bundle, CACHE)
    return load_engine(bundle)


@pytest.mark.parametrize(("catalogue", "case"), CASES, ids=[f"{n}/{c['id']}" for n, c in CASES])
def test_request(catalogue, case, request) -> None:
    needed = {
        "ml-latest-small": SHARED / "ml-latest-small.zip",
        "amazon-scientific": SHARED / "amazon-scientific",
    }
    if not needed[catalogue].exists():
        pytest.skip(f"{needed[catalogue]} not found (the shared datasets folder)")
    if case.get("known_failure"):  # documented, and must start passing before the mark goes
        request.applymarker(pytest.mark.xfail(reason=case["known_failure"], strict=True))
    engine = engine_for(catalogue)
    last, previous = PANEL.play(engine, case)
    assert PANEL.check(engine, case, last, previous) == [], (last.reply, [i.title for i in last.items])
