"""The real learning loop on the toy reach task: it learns, keeps probing out of replay, and resumes.

All tests here share one agent config and one observation size, so `update` / `pretrain_critic` compile
once per session (15-20 s each on this CPU); the runs themselves take seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from pld_residual.agent.policy import ResidualPolicy
from pld_residual.learning.loop import CURVE_LEARNER_KEYS, EVAL_POLICIES_DIR, learn
from pld_residual.learning.run_state import find_checkpoint, load_run
from pld_residual.replay import ReplayBuffer


def test_pld_learns_the_offset_the_base_gets_wrong(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config, base_success_rate
) -> None:
    base_alone = base_success_rate(episodes=200)
    cfg = make_toy_config(total_env_steps=1500, eval_every_steps=500, eval_episodes=50)
    start = time.perf_counter()
    summary = learn(cfg, tmp_path / "run", base_backend=toy_base, env_factory=toy_env_factory, progress=False)
    seconds = time.perf_counter() - start
    curve = summary["curve"]
    print(
        f"\ntoy reach: base alone {base_alone:.2f} (200 ep), at 0 steps {curve[0]['success_rate']:.2f}, "
        f"learned {summary['final_success_rate']:.2f} after {summary['env_steps']} env steps, "
        f"{summary['updates']} updates, {seconds:.1f} s (incl. jit compile)"
    )
    assert base_alone <= 0.35
    assert curve[0]["env_steps"] == 0 and curve[0]["success_rate"] <= 0.4  # zero residual = the base
    assert summary["final_success_rate"] >= 0.9
    assert summary["complete"] and summary["env_steps"] == 1500
    assert summary["offline"]["successes"] == cfg.offline_episodes
    assert summary["warmstart"]["steps"] == 200
    for name in ("curve.json", "curve.png", "summary.json", "policy/config.json", "policy/params.msgpack"):
        assert (tmp_path / "run" / name).is_file(), name
    points = json.loads((tmp_path / "run" / "curve.json").read_text())["points"]
    steps = [p["env_steps"] for p in points]  # evaluations happen at the first episode end past each 500
    assert len(steps) == 4 and steps[0] == 0 and steps[-1] == 1500 and steps == sorted(steps)
    assert all({"env_steps", "success_rate", "ci95", "wall_time_s"} <= set(p) for p in points)
    # learner statistics from the second point on (the first evaluation precedes any update)
    assert "learner" not in points[0]
    for point in points[1:]:
        stats = point["learner"]
        assert set(stats) == set(CURVE_LEARNER_KEYS) and all(np.isfinite(v) for v in stats.values())
        assert stats["temperature"] > 0 and stats["entropy"] != 0.0
    # the best evaluation's actor is kept: it acts like the learner did at that point
    best = summary["best"]
    first_best = next(p for p in points if p["success_rate"] == max(q["success_rate"] for q in points))
    assert best["env_steps"] == first_best["env_steps"] and best["success_rate"] >= 0.9
    saved = ResidualPolicy.load(tmp_path / "run" / best["policy"])
    if best["env_steps"] == summary["env_steps"]:
        final = ResidualPolicy.load(tmp_path / "run" / "policy")
        assert saved.params_to_bytes() == final.params_to_bytes()
    obs, base = np.zeros(saved.obs_dim, np.float32), np.zeros(7, np.float32)
    assert np.any(saved.act(obs, base, deterministic=True) != 0.0)  # not the zero residual of step 0
    # every evaluation's actor is kept under its step: the best one among them, the 0-step one is zero
    kept = ResidualPolicy.load(tmp_path / "run" / EVAL_POLICIES_DIR / str(best["env_steps"]))
    assert kept.params_to_bytes() == saved.params_to_bytes()
    first = ResidualPolicy.load(tmp_path / "run" / EVAL_POLICIES_DIR / "0")
    assert np.all(first.act(obs, base, deterministic=True) == 0.0)
    assert sorted(int(p.name) for p in (tmp_path / "run" / EVAL_POLICIES_DIR).iterdir()) == steps


def test_probing_steps_never_reach_the_online_buffer(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config
) -> None:
    trajectories = []
    cfg = make_toy_config(
        total_env_steps=600, warmup_episodes=2, probing_alpha=0.8, eval_episodes=2, eval_every_steps=600
    )
    summary = learn(
        cfg, tmp_path, base_backend=toy_base, env_factory=toy_env_factory, progress=False,
        on_episode=trajectories.append,
    )  # fmt: skip
    online = load_run(find_checkpoint(tmp_path))[1]
    # the residual's own training success leaves out warm-up episodes and successes inside the base prefix
    successes = [t.terminated and t.steps[-1].reward > 0 for t in trajectories]
    by_residual = [
        s and t.provenance[-1] == "residual" for s, t in zip(successes, trajectories, strict=True)
    ][2:]
    assert any(s and t.provenance[-1] == "base" for s, t in zip(successes, trajectories, strict=True))
    assert summary["train_success_rate_recent"] == pytest.approx(np.mean(successes[-100:]))
    assert summary["train_residual_success_rate_recent"] == pytest.approx(np.mean(by_residual[-100:]))
    where: dict[bytes, tuple[int, int]] = {}  # observation -> (episode, step)
    expected_transitions = probing_steps = 0
    for index, trajectory in enumerate(trajectories):
        plan = trajectory.plan
        assert plan.warmup == (index < 2)
        provenance = trajectory.provenance
        assert provenance[: plan.base_steps] == ["base"] * min(plan.base_steps, len(provenance))
        assert all(p == "residual" for p in provenance[plan.base_steps :])
        for t, step in enumerate(trajectory.steps):
            where[step.obs["proprio"].tobytes()] = (index, t)
            probing_steps += not plan.goes_to_replay(t)
        expected_transitions += max(0, len(trajectory) - plan.replay_start_step)
    assert probing_steps > 100  # the test means something
    assert len(online) == expected_transitions
    batch = online.sample(4000, np.random.default_rng(0))
    for proprio in batch["obs"]["proprio"]:
        episode, t = where[proprio.tobytes()]
        assert trajectories[episode].plan.goes_to_replay(t), (episode, t)


def _params(run_dir: Path) -> bytes:
    return ResidualPolicy.load(run_dir / "policy").params_to_bytes()


def test_resume_continues_exactly_where_it_stopped(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config
) -> None:
    cfg = make_toy_config(total_env_steps=600, eval_every_steps=300, eval_episodes=10, checkpoint_every=200)
    kwargs = dict(base_backend=toy_base, env_factory=toy_env_factory, progress=False)
    whole = learn(cfg, tmp_path / "whole", **kwargs)

    first = learn(cfg, tmp_path / "split", stop_after_steps=250, **kwargs)
    assert not first["complete"] and 250 <= first["env_steps"] < 300
    counters = load_run(find_checkpoint(tmp_path / "split"))[3]
    assert counters.env_steps == first["env_steps"] and counters.updates == first["updates"]
    buffer_size = len(ReplayBuffer.load(tmp_path / "split" / "checkpoint" / "online.npz"))

    second = learn(cfg, tmp_path / "split", **kwargs)
    assert second["complete"] and second["episodes"] > first["episodes"]
    assert len(load_run(find_checkpoint(tmp_path / "split"))[1]) > buffer_size
    for key in ("env_steps", "episodes", "updates", "final_success_rate"):
        assert second[key] == whole[key], key
    assert [p["success_rate"] for p in second["curve"]] == [p["success_rate"] for p in whole["curve"]]
    assert _params(tmp_path / "split") == _params(tmp_path / "whole")


def test_ctrl_c_saves_a_checkpoint_and_the_rerun_continues(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config
) -> None:
    cfg = make_toy_config(total_env_steps=400, eval_every_steps=400, eval_episodes=2)
    seen = []

    def interrupt_on_fifth(trajectory) -> None:
        seen.append(trajectory)
        if len(seen) == 5:
            raise KeyboardInterrupt

    kwargs = dict(base_backend=toy_base, env_factory=toy_env_factory, progress=False)
    with pytest.raises(KeyboardInterrupt):
        learn(cfg, tmp_path, on_episode=interrupt_on_fifth, **kwargs)
    counters = load_run(find_checkpoint(tmp_path))[3]
    assert counters.episodes == 5 and counters.env_steps == sum(len(t) for t in seen)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] and not summary["complete"]
    resumed = learn(cfg, tmp_path, **kwargs)
    assert resumed["complete"] and resumed["env_steps"] == 400 and resumed["episodes"] > 5


def test_a_changed_config_is_not_resumed_silently(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config
) -> None:
    kwargs = dict(base_backend=toy_base, env_factory=toy_env_factory, progress=False)
    learn(make_toy_config(total_env_steps=50, eval_episodes=2), tmp_path, stop_after_steps=1, **kwargs)
    with pytest.raises(ValueError, match="probing_alpha"):
        learn(make_toy_config(total_env_steps=50, eval_episodes=2, probing_alpha=0.2), tmp_path, **kwargs)


def test_held_exploration_noise_repeats_for_k_residual_steps(
    tmp_path: Path, toy_env_factory, toy_base, make_toy_config
) -> None:
    """A fresh actor's residual is tanh(noise): held noise makes it constant over blocks of k steps."""

    def residuals(hold: int) -> list[np.ndarray]:
        trajectories = []
        cfg = make_toy_config(
            total_env_steps=60, warmup_episodes=0, probing_alpha=0.0, eval_at_start=False,
            eval_every_steps=10_000, exploration_hold_steps=hold, offline_episodes=0, critic_pretrain_steps=0,
        )  # fmt: skip
        learn(cfg, tmp_path / f"hold{hold}", base_backend=toy_base, env_factory=toy_env_factory,
              progress=False, on_episode=trajectories.append)  # fmt: skip
        # z (index 2): the toy base never moves it, so the executed action is xi * residual, never clipped
        return [t.actions[:, 2] for t in trajectories]

    held, fresh = residuals(5), residuals(1)
    blocks = [episode[i : i + 5] for episode in held for i in range(0, len(episode), 5)]
    assert len(blocks) >= 6
    assert all(np.ptp(block) < 0.05 for block in blocks)  # only learning moves it inside a block
    assert np.std([block[0] for block in blocks]) > 0.1  # fresh noise from block to block
    assert np.median([np.ptp(e[:5]) for e in fresh]) > 0.1  # without holding, fresh noise every step
