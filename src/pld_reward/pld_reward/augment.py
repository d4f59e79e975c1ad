"""Training-time image augmentation in JAX: random shift (pad and crop, as DrQ) and colour jitter.

Shifts make the classifier look at the objects rather than at exact pixel positions (cameras move a few
pixels between mounts); jitter covers lighting. Both act per image, on float images in [0, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from pld_reward.config import ClassifierConfig

_GREY = jnp.asarray([0.299, 0.587, 0.114])


def random_shift(key: jax.Array, images: jax.Array, pad: int) -> jax.Array:
    """images [N, H, W, C]: each shifted by up to `pad` pixels (edge pixels repeat into the gap)."""
    if pad == 0:
        return images
    n, h, w, _ = images.shape
    padded = jnp.pad(images, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge")
    offsets = jax.random.randint(key, (n, 2), 0, 2 * pad + 1)

    def crop(image: jax.Array, offset: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice(image, (offset[0], offset[1], 0), (h, w, image.shape[-1]))

    return jax.vmap(crop)(padded, offsets)


def colour_jitter(
    key: jax.Array, images: jax.Array, brightness: float, contrast: float, saturation: float
) -> jax.Array:
    """images [N, H, W, 3] in [0, 1]: per-image brightness, contrast and saturation factors in 1 +- amount."""
    n = images.shape[0]
    kb, kc, ks = jax.random.split(key, 3)

    def factor(k: jax.Array, amount: float) -> jax.Array:
        return jax.random.uniform(k, (n, 1, 1, 1), minval=1.0 - amount, maxval=1.0 + amount)

    x = images * factor(kb, brightness)
    mean = jnp.mean(x, axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * factor(kc, contrast) + mean
    grey = jnp.sum(x * _GREY, axis=-1, keepdims=True)
    x = (x - grey) * factor(ks, saturation) + grey
    return jnp.clip(x, 0.0, 1.0)


def augment(key: jax.Array, images: jax.Array, cfg: ClassifierConfig) -> jax.Array:
    """images [B, C, H, W, 3] float in [0, 1] -> augmented, same shape (each camera view on its own)."""
    shape = images.shape
    flat = images.reshape((-1, *shape[2:]))
    k_shift, k_colour = jax.random.split(key)
    flat = random_shift(k_shift, flat, cfg.shift_px)
    flat = colour_jitter(k_colour, flat, cfg.brightness, cfg.contrast, cfg.saturation)
    return flat.reshape(shape)


def to_float(images: jax.Array) -> jax.Array:
    """uint8 [..., 3] -> float32 in [0, 1]."""
    return images.astype(jnp.float32) / 255.0


def normalise(images: jax.Array) -> jax.Array:
    """Float images in [0, 1] -> roughly zero-mean, unit-scale network input."""
    return (images - 0.5) / 0.25
