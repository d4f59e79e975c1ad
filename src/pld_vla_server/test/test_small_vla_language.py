"""The language encoder is the real all-MiniLM-L6-v2, loaded offline, cached per instruction."""

from __future__ import annotations

import numpy as np
import pytest

from pld_vla_server.small_vla.language import LanguageEncoder


@pytest.fixture(scope="module")
def encoder() -> LanguageEncoder:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        encoder = LanguageEncoder()
        encoder.embed(["warm up"])
    return encoder


def test_minilm_embeddings(encoder: LanguageEncoder) -> None:
    texts = [
        "pick up the red cube",
        "lift the red block",
        "insert the peg into the hole",
        "pick up the red cube",
    ]
    vectors = encoder.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors[0], vectors[3])
    assert not np.allclose(vectors[0], vectors[2])
    # a real sentence encoder: paraphrases are closer than different tasks
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.1
    assert encoder._model.config.hidden_size == 384 and encoder._model.config.num_hidden_layers == 6


def test_same_instruction_does_not_rerun_the_model(
    encoder: LanguageEncoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = encoder.embed(["open the gripper"])
    monkeypatch.setattr(
        encoder, "_encode", lambda text: pytest.fail("language model ran for a cached string")
    )
    assert np.array_equal(encoder.embed(["open the gripper"] * 3), np.repeat(first, 3, axis=0))
