"""Workspace-wide pytest fixtures: keep every ROS process of a test run on loopback and in its own domain.

Set at configure time, before any test imports rclpy or starts a child process, and again per test so
that tests running ROS graphs never hear each other (or another test run on the same machine).
"""

from __future__ import annotations

import os
import random
import tempfile
from pathlib import Path

import pytest


def _worker_domains() -> range:
    """Domain ids 1..101 map to valid Fast DDS port ranges; 0 is the default that other users share.

    Under pytest-xdist each worker draws from its own residue class, so two tests running at the same
    time in different workers can never share a domain.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(worker.removeprefix("gw")) if worker.startswith("gw") else 0
    return range(1 + index, 102, max(count, 1))


_DOMAIN_RANGE = _worker_domains()
_rng = random.Random(os.getpid())


def pytest_configure(config: pytest.Config) -> None:
    ros_tmp = Path(tempfile.mkdtemp(prefix="pld-pytest-ros-"))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ["ROS_HOME"] = str(ros_tmp)
    os.environ["ROS_LOG_DIR"] = str(ros_tmp / "log")
    os.environ["ROS_DOMAIN_ID"] = str(_rng.choice(_DOMAIN_RANGE))
    os.environ.setdefault("MUJOCO_GL", "egl")
    # rclpy then rejects wrong-sized arrays at assignment instead of publishing garbage or truncating
    os.environ["ROS_PYTHON_CHECK_FIELDS"] = "1"


@pytest.fixture(autouse=True)
def ros_isolation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> int:
    """A fresh ROS_DOMAIN_ID, ROS_HOME and ROS_LOG_DIR for each test; returns the domain id."""
    domain_id = _rng.choice(_DOMAIN_RANGE)
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    monkeypatch.setenv("ROS_HOME", str(tmp_path / "ros_home"))
    monkeypatch.setenv("ROS_LOG_DIR", str(tmp_path / "ros_home" / "log"))
    return domain_id


@pytest.fixture
def tiny_vla() -> dict:
    """SmallVLAConfig fields of a VLA small enough to build, train and run in a test (random weights)."""
    return dict(
        vision_size=32, vision_channels=(8, 16), vision_dim=32, trunk_hidden=64, feature_dim=32,
        flow_hidden=64, ar_hidden=64, ar_embed=32, horizon=4,
    )  # fmt: skip


@pytest.fixture
def context(ros_isolation: int):
    """An rclpy context in the test's own ROS domain, shut down after the test."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_isolation)
    yield context
    rclpy.try_shutdown(context=context)
