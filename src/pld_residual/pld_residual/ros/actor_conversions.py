"""Message <-> actor-core conversions of the residual actor node. Pure functions, unit-tested once.

Malformed messages raise ValueError naming the field, so the node can count and drop them instead of
indexing a chunk whose size disagrees with its header. Commands are built with
`pld_sim.ros.conversions.array_to_action_command`, the same builder every other command sender uses.
"""

from __future__ import annotations

import numpy as np
from builtin_interfaces.msg import Time

from pld_interfaces.msg import ActionChunk, ActionCommand, Observation
from pld_residual.actor.core import ActorStep, ChunkInput, ObservationInput
from pld_residual.actor.safety import ACTION_DIM
from pld_sim.ros.conversions import array_to_action_command, time_to_nanoseconds


def observation_input_from_msg(msg: Observation) -> ObservationInput:
    """pld_interfaces/Observation -> ObservationInput (proprio, stamp, episode, step, frame); no images."""
    if len(msg.proprio_names) != len(msg.proprio):
        raise ValueError(f"observation.proprio: {len(msg.proprio_names)} names for {len(msg.proprio)} values")
    return ObservationInput(
        proprio=np.array(msg.proprio, dtype=np.float32),
        stamp_ns=time_to_nanoseconds(msg.header.stamp),
        episode_id=int(msg.episode_id),
        step=int(msg.step),
        frame_id=msg.header.frame_id,
    )


def chunk_input_from_msg(msg: ActionChunk) -> ChunkInput:
    """pld_interfaces/ActionChunk -> ChunkInput with actions [horizon, 7] and the feature vector."""
    if msg.action_dim != ACTION_DIM:
        raise ValueError(f"action_chunk.action_dim: expected {ACTION_DIM}, got {msg.action_dim}")
    if msg.horizon < 1:
        raise ValueError("action_chunk.horizon: must be at least 1")
    if len(msg.actions) != msg.horizon * msg.action_dim:
        raise ValueError(
            f"action_chunk.actions: {len(msg.actions)} values for horizon {msg.horizon} x {msg.action_dim}"
        )
    return ChunkInput(
        actions=np.array(msg.actions, dtype=np.float32).reshape(msg.horizon, msg.action_dim),
        stamp_ns=time_to_nanoseconds(msg.header.stamp),
        features=np.array(msg.features, dtype=np.float32),
        model_id=msg.model_id,
    )


def actor_step_to_msg(step: ActorStep, stamp: Time) -> ActionCommand:
    """ActorStep -> ActionCommand stamped when it was computed, in the observation's frame."""
    return array_to_action_command(
        step.command,
        base=step.base,
        residual=step.residual,
        provenance=int(step.provenance),
        episode_id=step.episode_id,
        step=step.step,
        stamp=stamp,
        frame_id=step.frame_id,
    )
