"""The small default VLA: a CNN + MiniLM + MLP trunk with a flow-matching or action-token head."""

from pld_vla_server.small_vla.backend import SmallVLABackend
from pld_vla_server.small_vla.config import SmallVLAConfig

__all__ = ["SmallVLABackend", "SmallVLAConfig"]
