"""Our observation -> an openpi request, an openpi response -> our ActionChunk (pure functions)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pld_vla_server.backends.openpi.config import OpenPIConfig, build_tree
from pld_vla_server.types import ActionChunk, VLAObservation

# --------------------------------------------------------------------------------------------------
# Observation -> request, response -> ActionChunk (pure)
# --------------------------------------------------------------------------------------------------


def _lookup(tree: Mapping[str, Any], key: str) -> Any:
    """A flat key if present, else the "/"-separated path; KeyError when neither exists."""
    if key in tree:
        return tree[key]
    node: Any = tree
    for part in key.split("/"):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Square uint8 HxWx3 image to size x size (bilinear, as openpi's client-side image tools use PIL)."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    from PIL import Image  # only needed when resizing

    return np.asarray(Image.fromarray(image).resize((size, size), resample=Image.Resampling.BILINEAR))


def observation_to_request(obs: VLAObservation, config: OpenPIConfig) -> dict[str, Any]:
    """The observation map the server expects (images resized, proprio as state, instruction as prompt)."""
    items: list[tuple[str, Any]] = []
    for camera, key in config.image_keys.items():
        image = np.ascontiguousarray(obs.images[camera], dtype=np.uint8)
        items.append((key, resize_image(image, config.resize_to) if config.resize_to else image))
    state = np.asarray(obs.proprio, dtype=config.state_dtype)
    if config.proprio_slices:
        items += [(key, state[start:stop].copy()) for key, (start, stop) in config.proprio_slices.items()]
    else:
        items.append((config.proprio_key, state))
    items.append((config.prompt_key, obs.instruction))
    return build_tree(items, config.nested_keys)


class OpenPIConnectionError(ConnectionError):
    """The policy server could not be reached, dropped the connection or refused it (after retries)."""


class OpenPITimeoutError(OpenPIConnectionError, TimeoutError):
    """The policy server took the request but did not answer within `request_timeout_s`."""


class OpenPIServerError(RuntimeError):
    """The policy server reported an error (its traceback) or sent a response we cannot use."""


def response_to_chunk(
    response: Any, config: OpenPIConfig, inference_ms: float = 0.0, model_id: str = "openpi"
) -> ActionChunk:
    """Our `[H, 7]` chunk from the server's `actions` (columns picked, scaled, offset, rows cut)."""
    if not isinstance(response, Mapping):
        raise OpenPIServerError(f"server response is a {type(response).__name__}, expected a map")
    try:
        raw = _lookup(response, config.actions_key)
    except KeyError:
        raise OpenPIServerError(
            f"server response has no {config.actions_key!r} (keys: {sorted(map(str, response))})"
        ) from None
    actions = np.asarray(raw)
    if actions.dtype.kind not in "biuf":
        raise OpenPIServerError(f"server {config.actions_key!r} has non-numeric dtype {actions.dtype}")
    if actions.ndim == 1:  # a single action
        actions = actions[None, :]
    if actions.ndim != 2 or actions.shape[0] == 0:
        raise OpenPIServerError(f"server {config.actions_key!r} must be [H>0, D], got shape {actions.shape}")
    needed = max(config.action_columns) + 1
    if actions.shape[1] < needed:
        raise OpenPIServerError(
            f"server {config.actions_key!r} has {actions.shape[1]} columns but action_columns "
            f"{list(config.action_columns)} needs {needed}"
        )
    rows = actions if config.horizon == 0 else actions[: config.horizon]
    mapped = rows[:, config.action_columns].astype(np.float64) * config.action_scale + config.action_offset
    if not np.all(np.isfinite(mapped)):
        raise OpenPIServerError(f"server {config.actions_key!r} contains NaN or inf")
    features = None
    if config.features_key:
        try:
            features = np.asarray(_lookup(response, config.features_key), dtype=np.float32).reshape(-1)
        except KeyError:
            features = None  # this server does not send features
        except (TypeError, ValueError) as exc:
            raise OpenPIServerError(f"server {config.features_key!r} is not a numeric vector: {exc}") from exc
    skip = {config.actions_key, config.features_key}
    extras = {str(k): v for k, v in response.items() if k not in skip}
    extras["server_action_shape"] = [int(n) for n in actions.shape]
    return ActionChunk(mapped.astype(np.float32), features, inference_ms, model_id, extras)
