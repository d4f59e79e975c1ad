"""The workspace conftest keeps each test on loopback, in a temp ROS_HOME, in a domain of its own worker."""

from __future__ import annotations

import os
from pathlib import Path


def test_every_test_gets_loopback_discovery_and_a_temp_ros_home(tmp_path: Path) -> None:
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert Path(os.environ["ROS_HOME"]).is_relative_to(tmp_path)
    assert Path(os.environ["ROS_LOG_DIR"]).is_relative_to(tmp_path)


def test_the_domain_belongs_to_this_worker_alone(ros_isolation: int) -> None:
    """Parallel workers draw from disjoint residue classes of 1..101, so they never share a domain."""
    domain = int(os.environ["ROS_DOMAIN_ID"])
    assert domain == ros_isolation and 1 <= domain <= 101
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    index = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    assert (domain - 1) % count == index
