"""The sentence encoder batches texts of similar length together and gives each text its own vector back."""

import numpy as np

from components.text_encoder import get_encoder


def test_each_text_gets_its_own_vector_whatever_the_batching() -> None:
    texts = [
        "A long description of a waterproof wood glue that dries clear and holds outdoors in the rain",
        "Heat",
        "",
        "A funny science fiction film from the nineties",
        "Saw",
        "Toy Story (1995) Adventure Animation Children Comedy Fantasy pixar fun",
    ]
    enc = get_encoder()
    batched = enc.encode(texts, batch_size=2)  # sorted by length inside: batches mix the original order
    alone = np.stack([enc.encode([t])[0] for t in texts])
    assert batched.shape == (len(texts), 384)
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    assert np.all(np.abs(np.linalg.norm(batched, axis=1) - 1) < 1e-5)


def test_onnx_runtime_and_pytorch_give_the_same_vectors(tmp_path, monkeypatch) -> None:
    from components.text_encoder import CACHE_DIR_ENV, SentenceEncoder

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path))
    texts = ["I loved Heat and Collateral", "", "a waterproof glue for wood, not Gorilla", "Saw"]
    fast = SentenceEncoder(device="cpu", backend="onnx")
    slow = SentenceEncoder(device="cpu", backend="torch")
    assert (fast.backend, slow.backend) == ("onnx", "torch")
    assert len(list((tmp_path / "encoder").glob("*.onnx"))) == 1  # exported once, no temporary file left
    assert not list((tmp_path / "encoder").glob("*.tmp"))
    np.testing.assert_allclose(fast.encode(texts), slow.encode(texts), atol=1e-5)
    np.testing.assert_allclose(fast.encode(texts[:1]), slow.encode(texts[:1]), atol=1e-5)
    again = SentenceEncoder(device="cpu", backend="onnx")  # reads the cached file
    np.testing.assert_allclose(again.encode(texts), fast.encode(texts), atol=1e-6)


def test_a_failing_export_falls_back_to_pytorch_with_one_line(monkeypatch, caplog) -> None:
    import pytest

    from components import text_encoder

    def broken(*_args, **_kwargs):
        raise OSError("read-only file system: '/nowhere'\nmore detail")

    monkeypatch.setattr(text_encoder, "onnx_session", broken)
    with caplog.at_level("WARNING", logger="components.text_encoder"):
        enc = text_encoder.SentenceEncoder(device="cpu", backend="auto")
    assert enc.backend == "torch"
    assert "OSError: read-only file system" in caplog.text and "more detail" not in caplog.text
    assert enc.encode(["still works"]).shape == (1, 384)
    with pytest.raises(OSError):
        text_encoder.SentenceEncoder(device="cpu", backend="onnx")  # asked for explicitly: no silent fallback
    with pytest.raises(ValueError, match="SESSIONFLOW_ENCODER_BACKEND"):
        text_encoder.SentenceEncoder(device="cpu", backend="tensorrt")


def test_threads_asking_at_once_share_one_encoder() -> None:
    """In a fresh process two threads ask for the encoder at once (the conversation's reply preparation and a
    request): both get the same one, loaded once, and neither fails importing transformers."""
    import subprocess
    import sys

    code = """
import threading
from components import text_encoder as te
barrier, got, errors = threading.Barrier(2), [], []
def ask():
    barrier.wait()
    try:
        got.append(te.get_encoder())
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=ask) for _ in range(2)]
[t.start() for t in threads]; [t.join() for t in threads]
assert not errors, errors
assert len(got) == 2 and got[0] is got[1], got
print("ok")
"""
    cmd = [sys.executable, "-c", code]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]
