"""Supervised training of `SmallVLA` on episodes: pretraining from scratch and PLD's SFT (distillation).

Efficient on CPU: images are box-downsampled once to the model's internal size and kept as uint8;
instruction embeddings are computed once per distinct string; each step samples random (episode, t)
pairs. Every random draw of step k comes from a generator seeded with (seed, k), so a run resumed from
a checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pld_vla_server.dataset import Episode, chunk_targets
from pld_vla_server.small_vla.auxiliary import StateProbe, state_targets
from pld_vla_server.small_vla.config import SmallVLAConfig
from pld_vla_server.small_vla.model import SmallVLA
from pld_vla_server.small_vla.vision import camera_input, random_shift

CHECKPOINT_FILE = "train_state.pt"


@dataclass
class TrainOptions:
    """Options of `SmallVLABackend.finetune` (all keyword arguments)."""

    steps: int = 2000  # total optimizer steps (a resumed run continues up to this number)
    batch_size: int = 64
    learning_rate: float = 3e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 100  # linear warm-up, then cosine decay to 10% at `steps`
    grad_clip: float = 1.0
    seed: int = 0
    augment: bool = True  # random shift of +-shift_pad px (at the model's internal image size)
    # Off by default: with fixed cameras an object's pixel position is its position in the workspace, and
    # +-4 px shifts (64 px images) taught the policy to ignore where the object is (package README, Tuning).
    shift_pad: int = 0
    checkpoint_dir: str | Path | None = None
    checkpoint_every: int = 500
    resume: bool = True  # continue from checkpoint_dir/train_state.pt when it exists
    log_every: int = 10  # progress callback period (steps)
    progress: Callable[[dict[str, Any]], None] | None = None
    lora_rank: int = 8
    lora_alpha: float = 16.0
    num_threads: int | None = None  # torch.set_num_threads for this call (restored afterwards)
    only_successful: bool = True  # when `dataset` is a directory
    # weight of the auxiliary object-state regression (small_vla/auxiliary.py) on episodes that carry the
    # simulator's privileged state; 0 turns it off. Ignored in `head` mode (the features do not train).
    state_loss_weight: float = 0.0

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1 or self.learning_rate <= 0 or self.checkpoint_every < 1:
            raise ValueError(
                "finetune: need steps >= 0, batch_size >= 1, learning_rate > 0, checkpoint_every >= 1"
            )
        if self.log_every < 1 or self.lora_rank < 1 or self.shift_pad < 0 or self.state_loss_weight < 0:
            raise ValueError(
                "finetune: need log_every >= 1, lora_rank >= 1, shift_pad >= 0, state_loss_weight >= 0"
            )

    @classmethod
    def from_kwargs(cls, options: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"finetune: unknown option(s) {unknown}; known: {sorted(known)}")
        return cls(**options)


@dataclass
class TrainingData:
    """All samples of a dataset as tensors, one row per (episode, t)."""

    images: torch.Tensor  # uint8 [N, cams, 3, s, s]
    proprio: torch.Tensor  # [N, P]
    language: torch.Tensor  # [N, 384]
    targets: torch.Tensor  # [N, H, 7] normalised by the action limits
    mask: torch.Tensor  # [N, H] float, 0 past the end of the episode
    state: torch.Tensor | None = None  # [N, D] standardised privileged state (auxiliary target)
    state_mask: torch.Tensor | None = None  # [N, D] float, 0 where there is no target

    def __len__(self) -> int:
        return int(self.targets.shape[0])


def prepare_data(
    episodes: list[Episode], config: SmallVLAConfig, embed: Callable[[list[str]], np.ndarray]
) -> TrainingData:
    if not episodes:
        raise ValueError("finetune: the dataset has no episodes")
    images, proprio, language, targets, masks = [], [], [], [], []
    names = sorted({e.instruction for e in episodes})
    table = dict(zip(names, embed(names), strict=True))
    high = config.action_high
    for k, episode in enumerate(episodes):
        for cam in config.cameras:
            frames = episode.images.get(cam)
            if frames is None or frames.shape[1:] != (config.image_size, config.image_size, 3):
                got = None if frames is None else frames.shape[1:]
                size = config.image_size
                raise ValueError(f"episode {k}: images[{cam!r}] must be [T, {size}, {size}, 3], got {got}")
        if episode.proprio.shape[1:] != (config.proprio_dim,):
            raise ValueError(
                f"episode {k}: proprio must be [T, {config.proprio_dim}], got {episode.proprio.shape}"
            )
        images.append(
            np.stack(
                [
                    camera_input(episode.images[cam], config.camera_window(cam), config.vision_size)
                    for cam in config.cameras
                ],
                axis=1,
            )
        )
        proprio.append(episode.proprio.astype(np.float32))
        language.append(np.repeat(table[episode.instruction][None], len(episode), axis=0))
        chunks, mask = chunk_targets(episode.actions.astype(np.float32), config.horizon)
        targets.append(np.clip(chunks / high, -1.0, 1.0))
        masks.append(mask)
    state = state_targets(episodes)
    return TrainingData(
        images=torch.from_numpy(np.concatenate(images)),
        proprio=torch.from_numpy(np.concatenate(proprio)),
        language=torch.from_numpy(np.concatenate(language).astype(np.float32)),
        targets=torch.from_numpy(np.concatenate(targets).astype(np.float32)),
        mask=torch.from_numpy(np.concatenate(masks).astype(np.float32)),
        state=None if state is None else torch.from_numpy(state[0]),
        state_mask=None if state is None else torch.from_numpy(state[1]),
    )


def make_state_probe(
    model: SmallVLA, data: TrainingData, options: TrainOptions, mode: str
) -> StateProbe | None:
    """The auxiliary probe when this run uses one (a weight > 0, features that train, data with state)."""
    if options.state_loss_weight == 0 or mode == "head":
        return None
    if data.state is None:
        raise ValueError(
            "finetune: state_loss_weight > 0 needs episodes with `privileged` state (simulated demos); "
            "none of the episodes has it"
        )
    return StateProbe(model.config.feature_dim, data.state.shape[1], options.seed)


def fit_normalizer(model: SmallVLA, data: TrainingData) -> None:
    """Proprio mean/std from the data (std floored so constant entries do not explode)."""
    model.proprio_mean.copy_(data.proprio.mean(0))
    model.proprio_std.copy_(data.proprio.std(0, unbiased=False).clamp(min=1e-3))
    model.normalizer_fitted.fill_(True)


def learning_rate(step: int, options: TrainOptions) -> float:
    warmup = min(options.warmup_steps, max(options.steps // 10, 1))
    if step < warmup:
        return options.learning_rate * (step + 1) / warmup
    progress = (step - warmup) / max(options.steps - warmup, 1)
    return options.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step]).generate_state(1)[0]))


def train_loop(
    model: SmallVLA,
    data: TrainingData,
    options: TrainOptions,
    trainable: list[torch.nn.Parameter],
    frozen_trunk: bool,
    state: dict[str, Any],
    save_checkpoint: Callable[[dict[str, Any], torch.optim.Optimizer], None] | None,
    probe: StateProbe | None = None,
) -> dict[str, Any]:
    """Run steps state["step"] .. options.steps; `state` (step, losses, wall time) is updated in place.

    `losses` is the action loss; with a `probe`, `state_losses` records the auxiliary loss alongside."""
    if probe is not None:
        trainable = [*trainable, *probe.parameters()]
        state.setdefault("state_losses", [])
    optimizer = torch.optim.AdamW(trainable, lr=options.learning_rate, weight_decay=options.weight_decay)
    if state.get("optimizer") is not None:
        optimizer.load_state_dict(state.pop("optimizer"))
    model.train()
    start, begin = state["step"], time.perf_counter()
    base_wall = state["wall_time_s"]
    size = model.config.vision_size
    try:
        for step in range(start, options.steps):
            lr = learning_rate(step, options)
            for group in optimizer.param_groups:
                group["lr"] = lr
            generator = step_generator(options.seed, step)
            index = torch.randint(len(data), (options.batch_size,), generator=generator)
            images = data.images[index].float()
            if options.augment and options.shift_pad:
                flat = images.view(-1, 3, size, size)
                images = random_shift(flat, options.shift_pad, generator).view(images.shape)
            with torch.set_grad_enabled(not frozen_trunk):
                features = model.encode(images, data.proprio[index], data.language[index])
            loss = model.loss(features, data.targets[index], data.mask[index], generator)
            total = loss
            if probe is not None:
                state_loss = probe.loss(features, data.state[index], data.state_mask[index])
                total = loss + options.state_loss_weight * state_loss
                state["state_losses"].append(float(state_loss.item()))
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(trainable, options.grad_clip)
            optimizer.step()
            state["losses"].append(float(loss.item()))
            state["step"] = step + 1
            state["wall_time_s"] = base_wall + time.perf_counter() - begin
            done = state["step"] == options.steps
            if save_checkpoint and (state["step"] % options.checkpoint_every == 0 or done):
                save_checkpoint(state, optimizer)
            if options.progress and (state["step"] % options.log_every == 0 or done):
                elapsed = time.perf_counter() - begin
                rate = (state["step"] - start) / max(elapsed, 1e-9)
                window = state["losses"][-options.log_every :]
                options.progress(
                    {
                        "step": state["step"],
                        "total_steps": options.steps,
                        "loss": float(np.mean(window)),
                        "lr": lr,
                        "elapsed_s": elapsed,
                        "eta_s": (options.steps - state["step"]) / max(rate, 1e-9),
                    }
                )
    finally:
        model.eval()
    return state
