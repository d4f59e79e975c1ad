"""Ctrl-C and SIGTERM as KeyboardInterrupt for the long, resumable commands (learn, collect, distill, ...)."""

from __future__ import annotations

from typing import Any


def interrupt_on_sigterm() -> None:
    """SIGTERM (kill, systemd, a benchmark stopping its runs) and SIGINT both raise KeyboardInterrupt, so
    the run checkpoints before it exits. SIGINT is reset too: a process started in the background
    (`nohup ... &`) inherits it ignored, and Ctrl-C forwarded to it would otherwise do nothing."""
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
