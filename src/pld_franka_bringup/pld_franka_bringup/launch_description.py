"""Launch descriptions of the PLD graph, shared by every launch file (each file is a few lines).

Only composition: one described `DeclareLaunchArgument` per `graph.LAUNCH_ARGUMENTS` entry, then an
`OpaqueFunction` that turns the argument strings into `GraphArgs`, asks `graph.build_graph` which nodes
run with which overrides, and returns one `launch_ros` `Node` per spec with the task YAML and the
overrides as its parameters. `launch` / `launch_ros` are imported inside the functions: this module
imports on machines without them (pip-only ROS), where `pld run` composes the same graph in-process.
"""

from __future__ import annotations

from typing import Any

from pld_franka_bringup.graph import LAUNCH_ARGUMENTS, GraphArgs, NodeSpec, build_graph, build_learner


def declare_arguments(names: tuple[str, ...] | None = None) -> list[Any]:
    """`DeclareLaunchArgument` actions for the graph's arguments (all, or those in `names`)."""
    import launch

    return [
        launch.actions.DeclareLaunchArgument(
            arg.name,
            default_value=arg.default,
            description=arg.description,
            choices=list(arg.choices) if arg.choices else None,
        )
        for arg in LAUNCH_ARGUMENTS
        if names is None or arg.name in names
    ]


def argument_values(context: Any, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """The graph arguments' strings in a launch context (after `DeclareLaunchArgument` set defaults)."""
    configurations = context.launch_configurations
    wanted = [arg.name for arg in LAUNCH_ARGUMENTS if names is None or arg.name in names]
    return {name: configurations[name] for name in wanted if name in configurations}


def node_action(spec: NodeSpec) -> Any:
    """A `launch_ros` Node for one spec: the task YAML, then the overrides (which win)."""
    from launch_ros.actions import Node

    return Node(
        package=spec.package,
        executable=spec.executable,
        name=spec.name,
        namespace=spec.namespace,
        parameters=[str(spec.params_file), dict(spec.overrides)],
        remappings=list(spec.remappings),
        output="screen",
        emulate_tty=True,
    )


def _graph_nodes(context: Any, task: str) -> list[Any]:
    args = GraphArgs.from_strings({"task": task, **argument_values(context)})
    return [node_action(spec) for spec in build_graph(args)]


def graph_launch_description(task: str) -> Any:
    """The robot graph of `task` (`config/<task>.yaml`), e.g. for pick_cube.launch.py."""
    import launch

    return launch.LaunchDescription(
        [*declare_arguments(), launch.actions.OpaqueFunction(function=_graph_nodes, args=[task])]
    )


REMOTE_LEARNER_ARGUMENTS = ("sim", "robot_ip", "namespace")


def _learner_nodes(context: Any) -> list[Any]:
    values = argument_values(context, REMOTE_LEARNER_ARGUMENTS)
    args = GraphArgs.from_strings({"task": context.launch_configurations["task"], **values})
    return [node_action(build_learner(args))]


def remote_learner_launch_description() -> Any:
    """The learner alone (learner:=remote on the robot machine), in the robot's namespace."""
    import launch

    task = launch.actions.DeclareLaunchArgument(
        "task", default_value="pick_cube", description="task preset: config/<task>.yaml of pld_franka_bringup"
    )
    learner = launch.actions.OpaqueFunction(function=_learner_nodes)
    return launch.LaunchDescription([task, *declare_arguments(REMOTE_LEARNER_ARGUMENTS), learner])
