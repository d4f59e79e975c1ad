"""The episode manager node in-process against a fake driver (a `Reset` service and an observation
stream), with `use_sim_time` on as in every sim graph: a `run_episodes` goal must be answered by wall
time, also when sim time stands still (a lockstep sim advances its clock only while commands arrive, so
it stops with the last episode; a paused or not yet started sim publishes no clock at all)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.ros

NAMESPACE = "/em"
TIME_LIMIT = 3


class FakeDriver:
    """What the sim node offers the manager: `reset` starts episode k+1 at step 0, then a steady timer
    publishes the next steps. It never publishes /clock, so the manager's sim time stays at zero."""

    def __init__(self, context, executor) -> None:
        from rclpy.clock import Clock, ClockType
        from rclpy.node import Node

        from pld_interfaces.msg import Observation
        from pld_interfaces.srv import Reset
        from pld_residual.ros.episode_manager_node import INPUT_QOS

        self.node = Node("fake_driver", namespace=NAMESPACE, context=context)
        executor.add_node(self.node)
        self.episode_id, self.step, self.resets = 0, 0, 0
        self._observation = self.node.create_publisher(Observation, "observation", INPUT_QOS)
        self.node.create_service(Reset, "reset", self._on_reset)
        self.node.create_timer(0.02, self._publish, clock=Clock(clock_type=ClockType.STEADY_TIME))

    def _on_reset(self, request, response):
        self.resets += 1
        self.episode_id, self.step = self.episode_id + 1, 0
        response.success, response.seed, response.instruction = True, int(request.seed), "pick up the cube"
        return response

    def _publish(self) -> None:
        from pld_interfaces.msg import Observation

        if self.episode_id == 0:
            return
        msg = Observation(episode_id=self.episode_id, step=self.step)
        msg.header.stamp.nanosec = 1 + self.step  # increasing stamps; the clock itself stays at zero
        self._observation.publish(msg)
        self.step += 1


def test_a_run_episodes_goal_is_answered_while_sim_time_stands_still(context) -> None:
    from rclpy.action import ActionClient
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from pld_interfaces.action import RunEpisodes
    from pld_residual.ros.episode_manager_node import EpisodeManagerNode

    executor = SingleThreadedExecutor(context=context)
    driver = FakeDriver(context, executor)
    overrides = {
        "use_sim_time": True, "task": "pick_cube", "mode": "eval", "num_episodes": 0,
        "time_limit_steps": TIME_LIMIT, "vla_status_timeout_s": 0.0,
    }  # fmt: skip
    manager = EpisodeManagerNode(
        namespace=NAMESPACE, context=context,
        parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()],
    )  # fmt: skip
    executor.add_node(manager)
    client_node = Node("goal_sender", namespace=NAMESPACE, context=context)
    executor.add_node(client_node)
    client = ActionClient(client_node, RunEpisodes, "run_episodes")
    try:
        assert client.wait_for_server(timeout_sec=10)
        assert manager.get_clock().now().nanoseconds == 0  # sim time, and no /clock: it stands still
        sent = client.send_goal_async(
            RunEpisodes.Goal(task="pick_cube", num_episodes=2, mode=RunEpisodes.Goal.MODE_EVAL, seed=7)
        )
        executor.spin_until_future_complete(sent, timeout_sec=10)
        assert sent.done() and sent.result().accepted
        answer = sent.result().get_result_async()
        executor.spin_until_future_complete(answer, timeout_sec=20)
        assert answer.done(), manager.machine.status()
        result = answer.result().result
    finally:
        client.destroy()
        for node in (client_node, manager, driver.node):
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown(timeout_sec=1.0)
    assert driver.resets == 2
    assert result.episodes_run == 2 and result.successes == 0 and "done" in result.message
