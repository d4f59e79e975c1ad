"""Ctrl-C and SIGTERM as KeyboardInterrupt for the long, resumable commands (learn, collect, distill, ...)."""

from __future__ import annotations

from typing import Any

_requested = False


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt again when a Ctrl-C / SIGTERM was caught but swallowed on its way."""
    if _requested:
        raise KeyboardInterrupt


def interrupt_on_sigterm() -> None:
    """SIGTERM (kill, systemd, a benchmark stopping its runs) and SIGINT both raise KeyboardInterrupt, so
    the run checkpoints before it exits. SIGINT is reset too: a process started in the background
    (`nohup ... &`) inherits it ignored, and Ctrl-C forwarded to it would otherwise do nothing."""
    import signal

    global _requested
    _requested = False  # a new command (or a test calling one in-process) starts uninterrupted

    def interrupt(signum: int, frame: Any) -> None:
        global _requested
        _requested = (
            True  # a raise inside a gc callback (jax's) is swallowed: raise_if_requested() repeats it
        )
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
