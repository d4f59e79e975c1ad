"""`pld run <task> [key:=value ...]`: the `ros2 launch pld_franka_bringup <task>.launch.py` graph composed
in one process (one executor; the sim node on its own thread), with the same nodes, YAML and arguments,
for machines without `ros2 launch`.

  pld run pick_cube mode:=eval num_episodes:=10              # base (+ residual if checkpoint) in sim
  pld run pick_cube mode:=collect checkpoint:=runs/<learn>/best_policy num_episodes:=50 dataset_dir:=data/pld
  pld run pick_cube --list                                    # the nodes and parameters, then exit

With `num_episodes:=N` it stops when the N episodes are done and the recorder has written them; with the
default (auto: episodes until stopped) or 0 (serve `run_episodes` goals) it runs until Ctrl-C or
`--seconds`. Ctrl-C ends the open episode as aborted and finalises its bag.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from pld_franka_bringup.graph import LAUNCH_ARGUMENTS, GraphArgs, build_graph, load_node_parameters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    lines = [f"  {a.name}:={a.default or repr('')}  {a.description}" for a in LAUNCH_ARGUMENTS]
    parser.epilog = "launch arguments (key:=value):\n" + "\n".join(lines)
    add = parser.add_argument
    add("task", help="task preset (src/pld_franka_bringup/config/<task>.yaml), e.g. pick_cube")
    add("arguments", nargs="*", metavar="key:=value", help="launch arguments, as for ros2 launch")
    add("--seconds", type=float, default=None, help="stop after this long (wall clock)")
    add("--list", action="store_true", help="print the nodes and their parameters as JSON and exit")


def parse_launch_arguments(task: str, items: list[str]) -> GraphArgs:
    values = {"task": task}
    for item in items:
        key, sep, value = item.partition(":=")
        if not sep or not key:
            raise ValueError(f"expected key:=value, got {item!r}")
        values[key] = value
    return GraphArgs.from_strings(values)


def run(args: argparse.Namespace) -> int:
    try:
        graph_args = parse_launch_arguments(args.task, args.arguments)
        specs = build_graph(graph_args)
        parameters = {spec.fqn: load_node_parameters(spec) for spec in specs}
    except ValueError as exc:
        print(f"pld run: {exc}", file=sys.stderr)
        return 2
    if args.list:
        print(json.dumps(parameters, indent=2, default=str))
        return 0
    from pld_residual.cli.interrupts import interrupt_on_sigterm

    interrupt_on_sigterm()
    return _run_graph(graph_args, specs, args.seconds)


def _run_graph(graph_args: GraphArgs, specs: list, seconds: float | None) -> int:
    from pld_franka_bringup.ros.compose import ComposedGraph, init_context, recording_idle

    context = init_context()
    start = time.monotonic()
    try:
        with ComposedGraph(specs, context) as graph:
            print(
                f"pld run: {len(graph.nodes)} nodes up in /{graph_args.namespace}: {', '.join(graph.nodes)}"
            )
            manager = graph.nodes["episode_manager"]
            recorder = graph.nodes.get("recorder")

            def finished() -> bool:
                if graph_args.num_episodes == 0 or manager.last_result is None:
                    return False
                return recorder is None or recording_idle(recorder)

            try:
                graph.spin_until(finished, seconds)
            except KeyboardInterrupt:
                print("\npld run: interrupted; finalising the open episode")
            result = manager.last_result
            summary = {
                "task": graph_args.task,
                "mode": graph_args.mode,
                "wall_time_s": round(time.monotonic() - start, 1),
                "episodes": manager.machine.counters.__dict__,
                "batch": None if result is None else result.message,
            }
            if recorder is not None:
                summary["dataset"] = str(recorder.recorder.root)
                summary["recorder"] = recorder.recorder.status()
    except ValueError as exc:  # a node refused its parameters
        print(f"pld run: {exc}", file=sys.stderr)
        return 2
    finally:
        rclpy_shutdown(context)
    print(json.dumps(summary, indent=2, default=str))
    return 0


def rclpy_shutdown(context) -> None:
    import rclpy

    rclpy.try_shutdown(context=context)
