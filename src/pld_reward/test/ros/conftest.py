"""Fixtures of the pld_reward node tests: an rclpy context in the test's own domain."""

from __future__ import annotations

import pytest


@pytest.fixture
def context(ros_isolation: int):
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=ros_isolation)
    yield context
    rclpy.try_shutdown(context=context)
