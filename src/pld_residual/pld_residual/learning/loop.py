"""PLD stage 1 in one process: frozen base VLA + task env + residual SAC agent, and the baselines.

`learn(cfg, out_dir)` runs, for the method chosen in `cfg.method` (`methods.METHODS`):

1. offline data: base rollouts until `offline_episodes` successes (or `offline_max_attempts`), kept in the
   offline buffer (methods that use offline data);
2. critic warm start (Cal-QL by default) on them (methods with a warm start);
3. online episodes: warm-up episodes by the base, then probing / roll-in plans (`curriculum`), the agent's
   steps routed to replay by `EpisodeRecorder`, `utd_ratio` gradient steps per env step (run in calls of
   `updates_per_call`), the acting `ResidualPolicy` refreshed after every update call;
4. every `eval_every_steps`: deterministic evaluation on seeds disjoint from training (`curve.json`,
   `curve.png`); every `checkpoint_every`: a full checkpoint (`run_state`), also on Ctrl-C;
5. at the end: `policy/` (`ResidualPolicy.save`) and `summary.json`.

Resuming: calling `learn` again with the same `out_dir` continues from the checkpoint. Evaluations and
checkpoints happen at episode ends, so a run stopped there (`stop_after_steps`, or a checkpoint) and
resumed gives exactly the uninterrupted run. Ctrl-C mid-episode drops that episode's replay data (its env
steps and the updates already run stay counted) and the resumed run starts the next episode. Offline
collection and the warm start are redone if interrupted before the first checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.agent import learner
from pld_residual.agent.io import atomic_write
from pld_residual.agent.policy import ResidualPolicy
from pld_residual.cli.interrupts import raise_if_requested
from pld_residual.learning.action_space import acting_xi, agent_base, executed_action, update_xis
from pld_residual.learning.base_env import BaseGuidedEnv, GuidedObs
from pld_residual.learning.config import LearnConfig
from pld_residual.learning.curriculum import RollInCurriculum, episode_plan
from pld_residual.learning.curve import CURVE_JSON, CURVE_PNG, write_curve
from pld_residual.learning.evaluation import evaluate_agent, offline_seed, train_seed
from pld_residual.learning.methods import METHODS, MethodSpec
from pld_residual.learning.rewards import PredicateReward, make_reward_source
from pld_residual.learning.run_state import LoopCounters, find_checkpoint, load_run, save_run
from pld_residual.replay import (
    BASE,
    EpisodeRecorder,
    FieldSpec,
    HybridSampler,
    ObsSpec,
    ReplayBuffer,
    Trajectory,
)
from pld_residual.replay.learner_batch import to_learner_batch

SUMMARY = "summary.json"
POLICY_DIR = "policy"
BEST_POLICY_DIR = "best_policy"  # the actor of the best evaluation so far
EVAL_POLICIES_DIR = "eval_policies"  # <env_steps>/: the actor of every evaluation (~0.7 MB each)
# learner statistics of the latest update, logged with every curve point
CURVE_LEARNER_KEYS = (
    "q_mean", "target_q_mean", "critic_loss", "actor_q", "entropy", "temperature", "residual_abs"
)  # fmt: skip
# may differ between a run and its resumption (a longer budget, another checkpoint interval)
RESUMABLE_CHANGES = frozenset({"total_env_steps", "checkpoint_every"})
TRAIN_WINDOW = 100  # training episodes in the reported recent training success rate


def default_out_dir(cfg: LearnConfig) -> Path:
    """`<workspace>/runs/<timestamp>-learn-<task>-<method>/` (design.md §5)."""
    from pld_residual.cli.workspace import workspace_root

    root = workspace_root() or Path.cwd()
    return root / "runs" / f"{datetime.now():%Y%m%d-%H%M%S}-learn-{cfg.task}-{cfg.method}"


def default_base_dir() -> Path:
    from pld_residual.cli.workspace import workspace_root

    return (workspace_root() or Path.cwd()) / "runs" / "base_vla" / "flow"


def load_base_backend(path: str | Path | None) -> Any:
    """The pretrained small VLA from `path` (default runs/base_vla/flow); a clear error when missing."""
    directory = Path(path) if path is not None else default_base_dir()
    if not (directory / "config.json").is_file():
        raise FileNotFoundError(
            f"no base VLA checkpoint in {directory}; run `pld pretrain` first (or pass --base DIR)"
        )
    from pld_vla_server.small_vla import SmallVLABackend

    return SmallVLABackend.load(directory)


def default_env_factory(cfg: LearnConfig, backend: Any) -> Callable[[], Any]:
    """pld_sim env of `cfg.task` rendering the cameras the backend expects."""
    import pld_sim

    size = cfg.image_size or backend.input_spec.image_size

    def make(terminate_on_success: bool = True) -> Any:
        return pld_sim.make(
            cfg.task, image_size=size, render_images=True, time_limit_s=cfg.time_limit_s,
            terminate_on_success=terminate_on_success,
        )  # fmt: skip

    return make


def replay_fields(obs: GuidedObs, guided: bool) -> dict[str, np.ndarray]:
    """What replay stores per observation: the residual input fields and the base action the agent sees."""
    return {**obs.fields, "base_action": agent_base(obs.base_action, guided)}


def _obs_spec(obs: GuidedObs) -> ObsSpec:
    fields = [(name, FieldSpec(value.shape, "float32")) for name, value in obs.fields.items()]
    fields.append(("base_action", FieldSpec(obs.base_action.shape, "float32")))
    return ObsSpec(tuple(fields))


def collect_offline(
    env: BaseGuidedEnv, cfg: LearnConfig, method: MethodSpec, offline: ReplayBuffer, progress: bool
) -> dict[str, Any]:
    """Base rollouts until `offline_episodes` successes; the successful ones go to `offline`."""
    from tqdm import tqdm

    start = time.perf_counter()
    kept = attempts = steps = 0
    with tqdm(
        total=cfg.offline_episodes, desc="offline base successes", unit="ep", disable=not progress
    ) as bar:
        while kept < cfg.offline_episodes and attempts < cfg.offline_max_attempts:
            obs, _ = env.reset(seed=offline_seed(cfg.seed, attempts))
            attempts += 1
            observations = [replay_fields(obs, method.guided)]
            actions, rewards = [], []
            while True:
                actions.append(obs.base_action)  # the base drives: executed = base (normalised)
                obs, reward, terminated, truncated, info = env.step(env.scale.to_env(obs.base_action))
                observations.append(replay_fields(obs, method.guided))
                rewards.append(reward)
                steps += 1
                if terminated or truncated:
                    break
            if terminated and info["reward_success"]:
                offline.add_episode(observations, actions, rewards, terminated=True)
                kept += 1
                bar.update(1)
            bar.set_postfix(attempts=attempts)
    return {
        "successes": kept,
        "attempts": attempts,
        "base_success_rate": kept / attempts if attempts else None,
        "env_steps": steps,
        "transitions": len(offline),
        "wall_time_s": round(time.perf_counter() - start, 2),
    }


def warm_start(
    state: learner.ResidualSACState,
    offline: ReplayBuffer,
    steps: int,
    rng: np.random.Generator,
    obs_fields: tuple[str, ...],
    guided: bool = True,
    progress: bool = False,
) -> tuple[learner.ResidualSACState, dict[str, Any]]:
    """`steps` critic warm-start gradient steps (rounded up to whole `updates_per_call` calls)."""
    from tqdm import tqdm

    config = state.config
    calls = math.ceil(steps / config.updates_per_call)
    start = time.perf_counter()
    info: dict[str, Any] = {}
    desc = f"critic warm start ({config.warmstart})"
    with tqdm(total=calls * config.updates_per_call, desc=desc, unit="step", disable=not progress) as bar:
        for _ in range(calls):
            batch = to_learner_batch(
                offline.sample_many(config.updates_per_call, config.batch_size, rng), obs_fields
            )
            state, info = learner.pretrain_critic(state, batch)
            bar.update(config.updates_per_call)
    report = {key: round(float(value), 5) for key, value in info.items()}
    report.update(
        loss=config.warmstart,
        steps=calls * config.updates_per_call,
        wall_time_s=round(time.perf_counter() - start, 2),
    )
    return state, report


def update_call(
    state: learner.ResidualSACState,
    sampler: HybridSampler,
    rng: np.random.Generator,
    obs_fields: tuple[str, ...],
    updates_done: int,
    guided: bool = True,
) -> tuple[learner.ResidualSACState, dict[str, Any]]:
    """One jitted `learner.update` call: `updates_per_call` gradient steps on hybrid batches, with the xi
    schedule from `updates_done` on. Shared by `pld learn` and the learner node of the ROS graph."""
    config = state.config
    raw = sampler.sample_many(config.updates_per_call, config.batch_size, rng)
    batch = to_learner_batch(raw, obs_fields)
    batch.pop("is_offline", None)
    batch["xi"] = update_xis(updates_done, config.updates_per_call, config, guided)
    return learner.update(state, batch)


class _Run:
    """The mutable pieces of one learning session (kept together so phases stay small functions)."""

    def __init__(
        self, cfg: LearnConfig, out: Path, train_env: BaseGuidedEnv, eval_env: BaseGuidedEnv
    ) -> None:
        self.cfg = cfg
        self.out = out
        self.method = METHODS.lookup(cfg.method)
        self.train_env = train_env
        self.eval_env = eval_env
        self.session_start = time.perf_counter()
        self.wall_offset = 0.0
        self.notes: list[str] = []

    def wall_time(self) -> float:
        return self.wall_offset + time.perf_counter() - self.session_start


def learn(
    cfg: LearnConfig,
    out_dir: str | Path | None = None,
    base_backend: Any = None,
    env_factory: Callable[[], Any] | None = None,
    progress: bool = True,
    stop_after_steps: int | None = None,
    on_episode: Callable[[Trajectory], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) one learning run; returns the summary (also written to `summary.json`).

    `on_episode` gets every finished online training episode's `Trajectory` (probing prefix included,
    with provenance), e.g. to keep PLD data while learning.

    `base_backend` (anything with `predict(obs) -> ActionChunk`) and `env_factory` default to the small
    VLA in `cfg.base_checkpoint` and `pld_sim.make(cfg.task)`. `stop_after_steps` stops at the first
    episode end at or after that many online env steps, with a checkpoint, as an interruption would.
    """
    method = METHODS.lookup(cfg.method)
    out = Path(out_dir) if out_dir is not None else default_out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    backend = base_backend if base_backend is not None else load_base_backend(cfg.base_checkpoint)
    factory = env_factory or default_env_factory(cfg, backend)
    # training rewards from the configured source; evaluation always judges by the env's own predicate
    reward_source = make_reward_source(cfg.reward, checkpoint=cfg.reward_checkpoint, task=cfg.task)
    learned_reward = cfg.reward != "predicate"
    train_env = factory(terminate_on_success=False) if learned_reward and env_factory is None else factory()
    run = _Run(
        cfg,
        out,
        BaseGuidedEnv(train_env, backend, cfg.execute_steps, cfg.observation, reward_source),
        BaseGuidedEnv(factory(), backend, cfg.execute_steps, cfg.observation, PredicateReward()),
    )
    probe, _ = run.train_env.reset(seed=offline_seed(cfg.seed, 0))  # sizes of the residual's inputs
    obs_fields = tuple(probe.fields)
    agent_cfg = method.agent_config(cfg.agent_config())
    if "action_dim" not in cfg.agent:
        agent_cfg = agent_cfg.replace(action_dim=run.train_env.action_dim)
    if agent_cfg.action_dim != run.train_env.action_dim:
        raise ValueError(
            f"agent.action_dim {agent_cfg.action_dim} != env action size {run.train_env.action_dim}"
        )
    spec = _obs_spec(probe)
    time_limit = run.train_env.time_limit_steps

    checkpoint = find_checkpoint(out)
    if checkpoint is not None:
        state, online, offline, counters, saved = load_run(checkpoint)
        _check_resumable(saved, cfg)
        rng = np.random.default_rng()
        rng.bit_generator.state = counters.rng_state
        run.wall_offset = counters.wall_time_s
    else:
        rng = np.random.default_rng(cfg.seed)
        counters = LoopCounters(
            next_eval_at=0 if cfg.eval_at_start else cfg.eval_every_steps,
            next_checkpoint_at=cfg.checkpoint_every,
        )
        state = learner.create(agent_cfg, int(probe.vector.size), seed=cfg.seed)
        buffer_args = dict(
            action_dim=agent_cfg.action_dim,
            gamma=agent_cfg.gamma,
            reward_bias=agent_cfg.reward_bias,
            n_step=agent_cfg.n_step,
        )
        online = ReplayBuffer(spec, cfg.buffer_capacity, **buffer_args)
        offline = ReplayBuffer(spec, max(2, cfg.offline_episodes * (time_limit + 1)), **buffer_args)
        if method.needs_offline_data and cfg.offline_episodes > 0:
            counters.offline = collect_offline(run.train_env, cfg, method, offline, progress)
        if method.warmstart and cfg.critic_pretrain_steps > 0:
            if len(offline) > 0:
                state, counters.warmstart = warm_start(
                    state, offline, cfg.critic_pretrain_steps, rng, obs_fields, progress=progress
                )
            else:
                counters.warmstart = {"skipped": "no offline base successes"}
        if method.rollin:
            counters.curriculum = RollInCurriculum(
                time_limit, cfg.jsrl_stages, cfg.jsrl_window, cfg.jsrl_tolerance
            ).to_dict()
        counters.rng_state = rng.bit_generator.state
        counters.wall_time_s = run.wall_time()
        save_run(out, state, online, offline, counters, cfg.to_dict())

    fraction = method.offline_fraction if len(offline) > 0 else 0.0
    if method.offline_fraction > 0 and fraction == 0:
        run.notes.append("no offline base successes: batches come from the online buffer only")
    empty = ReplayBuffer(
        spec,
        2,
        action_dim=online.action_dim,
        gamma=online.gamma,
        reward_bias=online.reward_bias,
        n_step=online.n_step,
    )
    sampler = HybridSampler(offline if fraction > 0 else empty, online, fraction)
    curriculum = RollInCurriculum.from_dict(counters.curriculum) if counters.curriculum is not None else None
    policy = ResidualPolicy(state.config, state.obs_dim, state.actor.params)  # behaviour: the actor itself
    loop = _OnlineLoop(run, state, online, offline, sampler, counters, rng, policy, curriculum, obs_fields)
    loop.on_episode = on_episode
    interrupted = False
    try:
        complete = loop.run(progress, stop_after_steps)
    except KeyboardInterrupt:
        loop.abort_episode()
        interrupted, complete = True, False
    loop.checkpoint()
    summary = _finish(run, loop, complete, interrupted)
    for env in (run.train_env, run.eval_env):
        env.close()
    if interrupted:
        print(f"\npld learn: interrupted; checkpoint saved. Resume with the same command and --out {out}")
        raise KeyboardInterrupt
    return summary


def _check_resumable(saved: dict[str, Any], cfg: LearnConfig) -> None:
    current = cfg.to_dict()
    changed = sorted(k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k])
    if changed:
        detail = ", ".join(f"{k}: {saved.get(k)!r} -> {current[k]!r}" for k in changed)
        raise ValueError(f"the output directory holds a run with another config ({detail}); use a new --out")


class _OnlineLoop:
    """Phase 3: online episodes, updates, evaluations and checkpoints."""

    def __init__(
        self,
        run: _Run,
        state: learner.ResidualSACState,
        online: ReplayBuffer,
        offline: ReplayBuffer,
        sampler: HybridSampler,
        counters: LoopCounters,
        rng: np.random.Generator,
        policy: ResidualPolicy,
        curriculum: RollInCurriculum | None,
        obs_fields: tuple[str, ...],
    ) -> None:
        self.run_ = run
        self.cfg = run.cfg
        self.method = run.method
        self.state = state
        self.online = online
        self.offline = offline
        self.sampler = sampler
        self.counters = counters
        self.rng = rng
        self.policy = policy
        self.curriculum = curriculum
        self.obs_fields = obs_fields
        self.xi = acting_xi(counters.updates, state.config, run.method.guided)
        self.recorder: EpisodeRecorder | None = None
        self.last_info: dict[str, Any] = {}
        self.on_episode: Callable[[Trajectory], None] | None = None

    # ------------------------------------------------------------------ phases

    def run(self, progress: bool, stop_after_steps: int | None) -> bool:
        """Episodes until the budget; True when it was reached (False: stopped by `stop_after_steps`)."""
        from tqdm import tqdm

        cfg, c = self.cfg, self.counters
        with tqdm(
            total=cfg.total_env_steps, initial=min(c.env_steps, cfg.total_env_steps), unit="step",
            desc=f"learn {cfg.task} {cfg.method}", disable=not progress, dynamic_ncols=True,
        ) as bar:  # fmt: skip
            self.bar = bar
            while True:
                if c.env_steps >= c.next_eval_at or (
                    c.env_steps >= cfg.total_env_steps
                    and (not c.curve or c.curve[-1]["env_steps"] != c.env_steps)
                ):
                    self.evaluate()
                if c.env_steps >= cfg.total_env_steps:
                    return True
                if stop_after_steps is not None and c.env_steps >= stop_after_steps:
                    return False
                if c.env_steps >= c.next_checkpoint_at:
                    self.checkpoint()
                raise_if_requested()
                self.episode()

    def episode(self) -> None:
        """One online training episode."""
        cfg, c, env = self.cfg, self.counters, self.run_.train_env
        guided = self.method.guided
        plan = episode_plan(
            self.method, self.rng, c.episodes, env.time_limit_steps, cfg.probing_alpha, cfg.warmup_episodes,
            self.curriculum,
        )  # fmt: skip
        obs, _ = env.reset(seed=train_seed(cfg.seed, c.episodes))
        c.episodes += 1
        self.recorder = recorder = EpisodeRecorder(plan, self.online)
        fields = replay_fields(obs, guided)
        success = residual_success = False
        held, seed = 0, 0
        for t in range(plan.time_limit_steps):
            controller = plan.controller(t)
            if controller == BASE:
                norm, action = obs.base_action, env.scale.to_env(obs.base_action)
            else:
                if held == 0:  # same seed = same Gaussian noise draw, around this step's own mean
                    seed = int(self.rng.integers(0, 2**31 - 1))
                held = (held + 1) % cfg.exploration_hold_steps
                delta = self.policy.act(obs.vector, fields["base_action"], deterministic=False, seed=seed)
                norm, action = executed_action(obs.base_action, delta, self.xi, env.scale, guided)
            obs, reward, terminated, truncated, info = env.step(action)
            c.env_steps += 1
            self.bar.update(1)
            step_success = bool(info.get("success", False))
            success = success or step_success
            residual_success = residual_success or (step_success and controller != BASE)
            if c.env_steps >= cfg.total_env_steps and not terminated:
                truncated = True  # the budget ends the episode; replay still bootstraps from its last state
            next_fields = replay_fields(obs, guided)
            recorder.step(fields, norm, reward, next_fields, terminated, truncated, controller)
            fields = next_fields
            if not plan.warmup:
                self.train_step()
            if terminated or truncated:
                break
        self.recorder = None
        c.train_outcomes.append(success)
        if not plan.warmup:
            # probing successes (the base finished inside its prefix) say nothing about the residual
            c.train_residual_outcomes.append(residual_success)
        if self.curriculum is not None and not plan.warmup:
            self.curriculum.record(success)
        self._postfix()
        if self.on_episode is not None:
            self.on_episode(recorder.trajectory)

    def train_step(self) -> None:
        """Owe `utd_ratio` gradient steps for this env step; run them in calls of `updates_per_call`."""
        config = self.state.config
        if len(self.online) == 0 and len(self.sampler.offline) == 0:
            return  # nothing to learn from yet
        c = self.counters
        c.pending_updates += config.utd_ratio
        while c.pending_updates >= config.updates_per_call:
            self.state, info = update_call(
                self.state, self.sampler, self.rng, self.obs_fields, c.updates, self.method.guided
            )
            c.pending_updates -= config.updates_per_call
            c.updates += config.updates_per_call
            self.policy.set_params(self.state.actor.params)
            self.xi = acting_xi(c.updates, config, self.method.guided)
            self.last_info = info

    def evaluate(self) -> None:
        cfg, c = self.cfg, self.counters
        evaluated = ResidualPolicy.from_learner(self.state)  # the deployed actor (the average with actor_ema)
        result = evaluate_agent(self.run_.eval_env, evaluated, self.xi, self.method.guided, cfg.eval_episodes)
        recent = c.train_outcomes[-TRAIN_WINDOW:]
        point = {
            "env_steps": c.env_steps,
            "success_rate": result["success_rate"],
            "ci95": result["ci95"],
            "wall_time_s": round(self.run_.wall_time(), 2),
            "episodes": c.episodes,
            "updates": c.updates,
            "eval_episodes": result["episodes"],
            "train_success_rate": float(np.mean(recent)) if recent else None,
            "train_residual_success_rate": _rate(c.train_residual_outcomes[-TRAIN_WINDOW:]),
            "xi": round(self.xi, 4),
        }
        if self.curriculum is not None:
            point["rollin_horizon"] = self.curriculum.horizon
        if self.last_info:  # the learner's state at this point: where a collapse shows first
            point["learner"] = {k: round(float(self.last_info[k]), 5) for k in CURVE_LEARNER_KEYS}
        evaluated.save(self.run_.out / EVAL_POLICIES_DIR / str(c.env_steps))  # to replay any point later
        if point["success_rate"] > max((p["success_rate"] for p in c.curve), default=-1.0):
            # the residual's evaluation is not monotone in training (it can collapse as xi grows), so the
            # best evaluated actor is kept beside the final one; act with the xi of its curve point
            evaluated.save(self.run_.out / BEST_POLICY_DIR)
            point["saved_as_best"] = True
        c.curve.append(point)
        while c.next_eval_at <= c.env_steps:
            c.next_eval_at += cfg.eval_every_steps
        write_curve(self.run_.out, c.curve, f"{cfg.method} on {cfg.task} (seed {cfg.seed})")
        self._postfix()

    def checkpoint(self) -> None:
        c = self.counters
        while c.next_checkpoint_at <= c.env_steps:
            c.next_checkpoint_at += self.cfg.checkpoint_every
        c.rng_state = self.rng.bit_generator.state
        c.wall_time_s = self.run_.wall_time()
        if self.curriculum is not None:
            c.curriculum = self.curriculum.to_dict()
        save_run(self.run_.out, self.state, self.online, self.offline, c, self.cfg.to_dict())

    def abort_episode(self) -> None:
        """Ctrl-C mid-episode: its replay data go (never sampleable anyway); counters stay."""
        if self.recorder is not None and not self.recorder.done:
            self.recorder.abort()
        self.recorder = None

    def _postfix(self) -> None:
        c = self.counters
        parts = {"ep": c.episodes}
        if c.curve:
            parts["success"] = f"{c.curve[-1]['success_rate']:.0%}"
        recent = c.train_outcomes[-TRAIN_WINDOW:]
        if recent:
            parts["train"] = f"{np.mean(recent):.0%}"
        residual = _rate(c.train_residual_outcomes[-TRAIN_WINDOW:])
        if residual is not None:
            parts["by_residual"] = f"{residual:.0%}"  # successes after the base prefix handed over
        if self.curriculum is not None:
            parts["h"] = self.curriculum.horizon
        self.bar.set_postfix(parts)


def _best_point(curve: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The evaluation whose actor is in `best_policy/` (the first with the highest success rate)."""
    saved = [p for p in curve if p.get("saved_as_best")]
    if not saved:
        return None
    point = saved[-1]
    keys = ("env_steps", "success_rate", "ci95", "xi")
    return {"policy": BEST_POLICY_DIR, **{key: point[key] for key in keys}}


def _rate(outcomes: list[bool]) -> float | None:
    return float(np.mean(outcomes)) if outcomes else None


def _finish(run: _Run, loop: _OnlineLoop, complete: bool, interrupted: bool) -> dict[str, Any]:
    """Write `policy/` and `summary.json`; returns the summary."""
    cfg, c, out = run.cfg, loop.counters, run.out
    policy_dir = ResidualPolicy.from_learner(loop.state).save(out / POLICY_DIR)
    recent = c.train_outcomes[-TRAIN_WINDOW:]
    final = c.curve[-1] if c.curve else None
    summary = {
        "task": cfg.task,
        "method": cfg.method,
        "method_spec": run.method.to_dict(),
        "complete": complete,
        "interrupted": interrupted,
        "env_steps": c.env_steps,
        "episodes": c.episodes,
        "updates": c.updates,
        "final_success_rate": final["success_rate"] if final else None,
        "final_ci95": final["ci95"] if final else None,
        "best_success_rate": max((p["success_rate"] for p in c.curve), default=None),
        "best": _best_point(c.curve),
        "start_success_rate": c.curve[0]["success_rate"]
        if c.curve and c.curve[0]["env_steps"] == 0
        else None,
        "train_success_rate_recent": float(np.mean(recent)) if recent else None,
        "train_residual_success_rate_recent": _rate(c.train_residual_outcomes[-TRAIN_WINDOW:]),
        "xi": loop.xi,
        "offline": c.offline,
        "warmstart": c.warmstart,
        "curriculum": loop.curriculum.to_dict() if loop.curriculum is not None else None,
        "last_update": {key: round(float(value), 5) for key, value in loop.last_info.items()},
        "wall_time_s": round(run.wall_time(), 2),
        "notes": run.notes,
        "curve": c.curve,
        "files": {
            "curve_json": CURVE_JSON,
            "curve_png": CURVE_PNG,
            "policy": str(policy_dir.relative_to(out)),
        },
        "config": cfg.to_dict(),
        "agent_config": loop.state.config.to_dict(),
    }
    atomic_write(out / SUMMARY, (json.dumps(summary, indent=2) + "\n").encode())
    return summary
