"""`pld reward train`: fit the classifier on frame sets, calibrate its thresholds on held-out episodes.

Episodes, not frames, are split between training and calibration (frames of one episode are nearly the
same picture). Batches are class-balanced per stage: half success frames, half failure frames, whatever
the ratio on disk. The learner state is immutable and `update` is jitted (design.md §7.6); a training
checkpoint every `checkpoint_every` steps lets an interrupted run resume.
"""

from __future__ import annotations

import functools
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from pld_residual.agent.io import atomic_write
from pld_reward import checkpoint
from pld_reward.augment import augment, normalise, to_float
from pld_reward.calibration import choose_threshold, metrics
from pld_reward.classifier import predict_probabilities, stage_indices
from pld_reward.config import ClassifierConfig
from pld_reward.frames import FrameSet, episode_name
from pld_reward.model import SuccessClassifierNet, init_params

TRAIN_STATE_FILE = "train_state.msgpack"


@dataclass(frozen=True)
class TrainState:
    params: Any
    opt_state: Any
    step: int


def split_episodes(frames: FrameSet, holdout_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame masks (train, held out). Whole episodes go to one side, chosen by a hash of the episode's
    name: the split of an episode never changes when frames are added (mining rounds), so a retrained
    classifier is never calibrated on frames it was trained on."""
    held = np.asarray(
        [
            zlib.crc32(episode_name(meta).encode()) % 10_000 < holdout_fraction * 10_000
            for meta in frames.metas
        ],
        bool,
    )
    held_frames = held[frames.episode] if len(held) else np.zeros(len(frames), bool)
    return ~held_frames, held_frames


def balanced_indices(
    labels: np.ndarray, stages: np.ndarray, batch: int, rng: np.random.Generator
) -> np.ndarray:
    """A batch drawn evenly over the (stage, label) groups present."""
    groups = [np.flatnonzero((stages == s) & (labels == y)) for s in np.unique(stages) for y in (0, 1)]
    groups = [g for g in groups if len(g)]
    picks = rng.integers(0, len(groups), batch)
    return np.asarray([groups[g][rng.integers(0, len(groups[g]))] for g in picks])


@functools.cache
def make_update(cfg: ClassifierConfig):
    """Jitted (params, opt_state, batch, key) -> (params, opt_state, loss); one compilation per config."""
    net = SuccessClassifierNet(cfg)
    optimizer = make_optimizer(cfg)

    @jax.jit
    def update(
        params: Any,
        opt_state: Any,
        images: jax.Array,
        proprio: jax.Array,
        stage: jax.Array,
        labels: jax.Array,
        key: jax.Array,
    ) -> tuple[Any, Any, jax.Array]:
        inputs = normalise(augment(key, to_float(images), cfg))

        def loss_fn(p: Any) -> jax.Array:
            logits = net.apply(p, inputs, proprio, stage)
            return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels))

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    return update


def make_optimizer(cfg: ClassifierConfig) -> optax.GradientTransformation:
    schedule = optax.cosine_decay_schedule(cfg.learning_rate, max(1, cfg.train_steps))
    return optax.chain(optax.clip_by_global_norm(1.0), optax.adamw(schedule, weight_decay=cfg.weight_decay))


def fit(
    cfg: ClassifierConfig,
    train: FrameSet,
    out_dir: str | os.PathLike[str] | None = None,
    init: Any | None = None,
    progress: bool = True,
    checkpoint_every: int = 250,
) -> tuple[Any, list[float]]:
    """Train for `cfg.train_steps` steps from `init` (or fresh parameters); returns (params, losses).

    With `out_dir`, a training checkpoint is kept there and a re-run with the same config resumes it.
    """
    from tqdm import tqdm

    if train.positives == 0 or train.positives == len(train):
        raise ValueError(f"training frames need both outcomes: {train.positives} success of {len(train)}")
    optimizer = make_optimizer(cfg)
    params = init if init is not None else init_params(cfg)
    state = TrainState(params, optimizer.init(params), 0)
    resume_path = Path(out_dir) / TRAIN_STATE_FILE if out_dir is not None else None
    if resume_path is not None:
        resume_path.parent.mkdir(parents=True, exist_ok=True)
    if resume_path is not None and resume_path.is_file():
        state = _restore(resume_path, state, cfg)
    update = make_update(cfg)
    rng = np.random.default_rng(cfg.seed + state.step)
    key = jax.random.PRNGKey(cfg.seed + 7919 * state.step)
    index = stage_indices(cfg, train.stages)
    width = cfg.proprio_dim if cfg.use_proprio else 0
    proprio = train.proprio[:, :width] if width else np.zeros((len(train), 0), np.float32)
    labels = train.labels.astype(np.float32)
    losses: list[float] = []
    params, opt_state = state.params, state.opt_state
    bar = tqdm(
        range(state.step, cfg.train_steps),
        desc="train classifier",
        unit="step",
        disable=not progress,
        initial=state.step,
        total=cfg.train_steps,
    )
    for step in bar:
        batch = balanced_indices(train.labels, index, cfg.batch_size, rng)
        key, sub = jax.random.split(key)
        params, opt_state, loss = update(
            params, opt_state, train.images[batch], proprio[batch], index[batch], labels[batch], sub
        )
        if step % 25 == 0 or step == cfg.train_steps - 1:
            losses.append(float(loss))
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        if resume_path is not None and (step + 1) % checkpoint_every == 0 and step + 1 < cfg.train_steps:
            _save_state(resume_path, TrainState(params, opt_state, step + 1), cfg)
    if resume_path is not None:
        resume_path.unlink(missing_ok=True)
    return params, losses


def stage_metrics(
    cfg: ClassifierConfig, probs: np.ndarray, frames: FrameSet, stage_id: int, threshold: float
) -> dict[str, Any]:
    """Metrics of one stage at `threshold`: on the clear frames (headline) and on all of them (`strict`)."""
    mask = frames.stages == stage_id
    clear = mask & ~frames.ambiguous(cfg.ambiguity_steps)
    return {
        "stage": stage_id,
        "task": cfg.tasks[cfg.stage_index(stage_id)],
        **metrics(probs[clear], frames.labels[clear], threshold),
        "ambiguous_frames": int(mask.sum() - clear.sum()),
        "strict": metrics(probs[mask], frames.labels[mask], threshold),
    }


def calibrate(cfg: ClassifierConfig, params: Any, held: FrameSet) -> dict[str, Any]:
    """Per-stage thresholds for `cfg.target_precision` on the clear held-out frames, with their metrics."""
    probs = predict_probabilities(cfg, params, held.images, held.proprio, held.stages)
    clear = ~held.ambiguous(cfg.ambiguity_steps)
    thresholds, per_stage = [], []
    for stage_id in _stage_ids(cfg):
        mask = (held.stages == stage_id) & clear
        if not mask.any() or not held.labels[mask].any():
            raise ValueError(f"no held-out success frames for stage {stage_id}: collect more episodes")
        threshold, met = choose_threshold(probs[mask], held.labels[mask], cfg.target_precision)
        thresholds.append(threshold)
        per_stage.append({"target_met": met, **stage_metrics(cfg, probs, held, stage_id, threshold)})
    return {"thresholds": thresholds, "target_precision": cfg.target_precision, "held_out": per_stage}


def evaluate(
    cfg: ClassifierConfig, params: Any, thresholds: list[float], frames: FrameSet
) -> list[dict[str, Any]]:
    """Metrics per stage at the given thresholds (fresh test frames)."""
    probs = predict_probabilities(cfg, params, frames.images, frames.proprio, frames.stages)
    return [
        stage_metrics(cfg, probs, frames, stage_id, thresholds[cfg.stage_index(stage_id)])
        for stage_id in _stage_ids(cfg)
        if np.any(frames.stages == stage_id)
    ]


MIN_PROPRIO_SCALE = 1e-3  # 1 mm or 1 mrad: a value that hardly moves in training is not blown up


def fit_proprio_normalisation(cfg: ClassifierConfig, train: FrameSet) -> ClassifierConfig:
    """`cfg` with proprio_mean/scale from the training frames, when it reads proprio and has none yet
    (a classifier being fine-tuned, as in mining, keeps the numbers its parameters were trained with)."""
    if not cfg.use_proprio or cfg.proprio_mean or len(train) == 0:
        return cfg
    values = np.asarray(train.proprio, np.float64)[:, : cfg.proprio_dim]
    if values.shape[1] != cfg.proprio_dim:
        raise ValueError(
            f"the frames hold {values.shape[1]} proprio values, the config reads {cfg.proprio_dim}"
        )
    mean = tuple(float(v) for v in values.mean(axis=0))
    scale = tuple(float(v) for v in np.maximum(values.std(axis=0), MIN_PROPRIO_SCALE))
    return cfg.replace(proprio_mean=mean, proprio_scale=scale)


def train_classifier(
    cfg: ClassifierConfig,
    frames: FrameSet,
    out_dir: str | os.PathLike[str],
    holdout_fraction: float = 0.25,
    init: Any | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Split, fit, calibrate and save; returns the report written to `<out_dir>/train_report.json`."""
    train_mask, held_mask = split_episodes(frames, holdout_fraction)
    # ambiguous frames (next to a label change) teach nothing but label noise
    train = frames.select(train_mask & ~frames.ambiguous(cfg.ambiguity_steps))
    held = frames.select(held_mask)
    cfg = fit_proprio_normalisation(cfg, train)
    params, losses = fit(cfg, train, out_dir, init=init, progress=progress)
    calibration = calibrate(cfg, params, held)
    calibration.update(
        train_frames=len(train),
        train_positives=train.positives,
        held_frames=len(held),
        held_positives=held.positives,
    )
    checkpoint.save(out_dir, cfg, params, calibration)
    report = {"calibration": calibration, "losses": losses, "frames": frames.summary()}
    Path(out_dir, "train_report.json").write_text(json.dumps(report, indent=1))
    return report


def _stage_ids(cfg: ClassifierConfig) -> list[int]:
    return [0] if cfg.num_stages == 1 else list(range(1, cfg.num_stages + 1))


def _save_state(path: Path, state: TrainState, cfg: ClassifierConfig) -> None:
    payload = {"params": state.params, "opt_state": state.opt_state, "step": state.step}
    blob = flax.serialization.to_bytes(payload)
    header = json.dumps(cfg.to_dict(), sort_keys=True).encode()
    atomic_write(path, len(header).to_bytes(4, "little") + header + blob)


def _restore(path: Path, template: TrainState, cfg: ClassifierConfig) -> TrainState:
    data = path.read_bytes()
    size = int.from_bytes(data[:4], "little")
    saved = json.loads(data[4 : 4 + size])
    if saved != json.loads(json.dumps(cfg.to_dict(), sort_keys=True)):
        raise ValueError(f"{path} was written by a run with another config; delete it to start over")
    payload = {"params": template.params, "opt_state": template.opt_state, "step": 0}
    restored = flax.serialization.from_bytes(payload, data[4 + size :])
    return TrainState(restored["params"], restored["opt_state"], int(restored["step"]))
