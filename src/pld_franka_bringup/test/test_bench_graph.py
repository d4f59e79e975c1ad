"""`pld bench graph`: its configuration, and one short run of the real command (a tiny random VLA) that
must print the JSON document with every figure a finite number. No timing thresholds here: the numbers
depend on the machine and its load; `pld bench graph` reports them."""

from __future__ import annotations

import argparse
import json
import math

import pytest

from pld_franka_bringup.bench import GraphBenchConfig

IMAGE_SIZE = 64
PER_MODE = (
    "loop_period_ms_p50",
    "loop_period_ms_p99",
    "loop_jitter_ms_p50",
    "loop_jitter_ms_p99",
    "observation_jitter_ms_p50",
    "observation_jitter_ms_p99",
    "obs_to_command_ms_p50",
    "obs_to_command_ms_p99",
    "chunk_age_ms_p50",
    "chunk_age_ms_p99",
    "chunk_wall_age_ms_p50",
    "chunk_wall_age_ms_p99",
    "bare_rclpy_latency_ms_p50",
    "bare_rclpy_latency_ms_p99",
    "overhead_ratio_p50",
    "overhead_ratio_p99",
    "commands_per_s",
)


def test_config_refuses_unknown_modes_and_a_non_positive_window(tiny_vla) -> None:
    with pytest.raises(ValueError, match="modes"):
        GraphBenchConfig(modes=("realtime", "fast"), vla_options=tiny_vla)
    with pytest.raises(ValueError, match="modes"):
        GraphBenchConfig(modes=(), vla_options=tiny_vla)
    with pytest.raises(ValueError, match="seconds"):
        GraphBenchConfig(seconds=0, vla_options=tiny_vla)
    with pytest.raises(ValueError, match="does not exist"):
        GraphBenchConfig(vla_checkpoint="/nonexistent/flow")


def test_a_random_vla_replaces_the_checkpoint_at_the_sims_image_size(tiny_vla) -> None:
    overrides = GraphBenchConfig(vla_options=tiny_vla, image_size=IMAGE_SIZE).node_overrides()
    assert overrides["sim_node"] == {"image_size": IMAGE_SIZE}
    assert overrides["vla_server"]["checkpoint"] == ""
    options = json.loads(overrides["vla_server"]["backend_options"])
    assert options == json.loads(json.dumps({**tiny_vla, "image_size": IMAGE_SIZE}))  # tuples -> lists


@pytest.mark.ros
@pytest.mark.slow
def test_bench_graph_prints_finite_figures_for_both_modes(tiny_vla, capsys) -> None:
    from pld_residual.cli import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)  # through the `pld bench` registry
    args = parser.parse_args(
        [
            "graph",
            "--seconds",
            "3",
            "--json",
            "--image-size",
            str(IMAGE_SIZE),
            "--vla-options",
            json.dumps(tiny_vla),
        ]
    )
    assert bench.run(args) == 0
    result = json.loads(capsys.readouterr().out)  # --json: the document alone

    def finite(value) -> bool:
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)

    for key in ("loop_jitter_ms_p99", "obs_to_command_ms_p99", "bare_rclpy_latency_ms_p99"):
        assert finite(result[key]), (key, result[key])
    bare = result["bare_rclpy"]
    assert bare["received"] > 0 and bare["message_bytes"] > 3 * IMAGE_SIZE * IMAGE_SIZE
    for mode in ("realtime", "lockstep"):
        entry = result[mode]
        bad = {key: entry.get(key) for key in PER_MODE if not finite(entry.get(key))}
        assert not bad, (mode, bad)
        assert entry["commands"] > 0 and entry["obs_answered"] > 0
        assert entry["dropped"] and all(isinstance(v, int) and v >= 0 for v in entry["dropped"].values())
    assert result["realtime"]["loop_nominal_period_ms"] == 50.0  # 20 Hz
    assert set(result["acceptance"]) == {
        "realtime_loop_jitter_p99_le_5ms",
        "realtime_obs_to_command_p99_le_30ms",
    }


@pytest.mark.ros
@pytest.mark.slow
def test_bench_graph_with_a_process_per_node_reads_counters_from_status_topics(tiny_vla, capsys) -> None:
    """`--processes`: the nodes start as `ros2 launch` starts them; counters come from their status topics."""
    from pld_residual.cli import bench

    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args(
        ["graph", "--processes", "--modes", "realtime", "--seconds", "3", "--json",
         "--image-size", str(IMAGE_SIZE), "--vla-options", json.dumps(tiny_vla)]
    )  # fmt: skip
    assert bench.run(args) == 0
    result = json.loads(capsys.readouterr().out)
    entry = result["realtime"]
    assert result["composition"] == entry["composition"] == "processes"
    assert entry["commands"] > 0 and entry["obs_answered"] > 0
    assert math.isfinite(entry["loop_jitter_ms_p99"]) and math.isfinite(entry["obs_to_command_ms_p99"])
    # the counters are deltas of the nodes' own (status topic) counters: present, never negative
    assert set(entry["dropped"]) >= {"sim_holds", "actor_holds", "vla_dropped_stale"}
    assert all(isinstance(v, int) and v >= 0 for v in entry["dropped"].values())
    assert result["bare_rclpy"]["received"] > 0
