"""VLA backends (importing this package registers the light ones; `small_vla` loads on first lookup)."""

from pld_vla_server.backends import hold, openpi  # noqa: F401  (registers)
from pld_vla_server.backends.base import BACKENDS, FINETUNE_MODES, VLABackend, make_backend, register_backend

__all__ = ["BACKENDS", "FINETUNE_MODES", "VLABackend", "make_backend", "register_backend"]
