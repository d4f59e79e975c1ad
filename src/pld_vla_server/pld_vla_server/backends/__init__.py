"""VLA backends (importing this package registers them)."""

from pld_vla_server.backends import hold  # noqa: F401  (registers)
from pld_vla_server.backends.base import BACKENDS, FINETUNE_MODES, VLABackend, make_backend, register_backend

__all__ = ["BACKENDS", "FINETUNE_MODES", "VLABackend", "make_backend", "register_backend"]
