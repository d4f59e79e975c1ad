"""Publisher / subscriber peer for `pld doctor`'s two-process DDS check.

`sub` exits 0 once it has received `--count` messages (printing how many and the median latency);
`pub` publishes until the subscriber is gone or the timeout passes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def run_subscriber(node, topic: str, count: int, timeout_s: float) -> int:
    latencies_ms: list[float] = []

    def on_message(msg: String) -> None:
        latencies_ms.append((time.time() - float(msg.data.split()[1])) * 1e3)

    node.create_subscription(String, topic, on_message, QOS)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    deadline = time.monotonic() + timeout_s
    while len(latencies_ms) < count and time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.1)
    if len(latencies_ms) < count:
        print(f"received {len(latencies_ms)} of {count} messages in {timeout_s:.0f} s", file=sys.stderr)
        return 1
    print(f"received {len(latencies_ms)}/{count}, median latency {statistics.median(latencies_ms):.2f} ms")
    return 0


def run_publisher(node, topic: str, count: int, timeout_s: float) -> int:
    publisher = node.create_publisher(String, topic, QOS)
    deadline = time.monotonic() + timeout_s
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print("no subscriber appeared", file=sys.stderr)
            return 1
        time.sleep(0.05)
    for i in range(count):
        publisher.publish(String(data=f"{i} {time.time()}"))
        time.sleep(0.01)
    # Stay until the subscriber has what it needs and leaves, so reliable delivery can complete.
    while publisher.get_subscription_count() > 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("role", choices=("pub", "sub"))
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    rclpy.init()
    node = rclpy.create_node(f"pld_doctor_{args.role}")
    try:
        runner = run_subscriber if args.role == "sub" else run_publisher
        return runner(node, args.topic, args.count, args.timeout)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
