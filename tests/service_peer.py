"""Server peer for test_interfaces_two_process: serves pld_interfaces' Reset service and RunEpisodes action.

Prints `READY` when both are up; answers deterministically from the request so the client can check
every field; exits after one service call and one action goal (or a timeout).
"""

from __future__ import annotations

import sys
import time

import rclpy
from rclpy.action import ActionServer
from rclpy.executors import MultiThreadedExecutor

from pld_interfaces.action import RunEpisodes
from pld_interfaces.srv import Reset

DRAWN_SEED = 4242


def main() -> int:
    rclpy.init()
    node = rclpy.create_node("service_peer")
    handled = {"reset": False, "run": False}

    def on_reset(request: Reset.Request, response: Reset.Response) -> Reset.Response:
        response.success = bool(request.task)
        response.message = "" if request.task else "no task given"
        response.seed = request.seed if request.seed >= 0 else DRAWN_SEED
        response.instruction = f"{request.task} stage {request.stage}"
        handled["reset"] = True
        return response

    def on_goal(goal_handle) -> RunEpisodes.Result:
        goal = goal_handle.request
        successes = 0
        for episode in range(goal.num_episodes):
            successes += episode % 2
            goal_handle.publish_feedback(
                RunEpisodes.Feedback(
                    episode_id=episode,
                    phase=3,
                    step=10 * episode,
                    episodes_done=episode + 1,
                    successes=successes,
                )
            )
            time.sleep(0.02)
        goal_handle.succeed()
        handled["run"] = True
        return RunEpisodes.Result(
            episodes_run=goal.num_episodes,
            successes=successes,
            success_rate=successes / goal.num_episodes,
            message=f"{goal.task} mode {goal.mode}",
        )

    node.create_service(Reset, "pld_test/reset", on_reset)
    ActionServer(node, RunEpisodes, "pld_test/run_episodes", on_goal)
    executor = MultiThreadedExecutor(num_threads=2)
    executor.add_node(node)
    print("READY", flush=True)
    deadline = time.monotonic() + 60
    while not all(handled.values()) and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    end = time.monotonic() + 1.0  # let the action result reach the client
    while time.monotonic() < end:
        executor.spin_once(timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if all(handled.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
