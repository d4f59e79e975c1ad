"""PLD stage 2 in one process: roll out a data source on the task and keep its successful episodes as bags.

Sources (`SOURCES`), as compared in the paper (Sections 4.2-4.3):

- `pld`: probing. The frozen base drives `T_base ~ U{0..floor(alpha*T)}` steps, then the residual
  specialist takes over (`a = clip(a_base + xi * a_delta)`). The whole episode is kept: SFT needs the base
  prefix too (only RL replay leaves it out).
- `rl_expert`: the specialist from the first step (no probing).
- `base`: the base alone ("self-bootstrap": its own successes).
- `scripted_expert`: the task's scripted expert with action noise (`expert_noise`), our stand-in for
  human teleoperation; its commands carry provenance `human`.

An episode is kept when the reward source (the success classifier on a robot, the predicate in sim) says
success; in simulation the predicate must confirm it, and a classifier success it does not confirm is
counted as a false positive and dropped. Every step's command carries its provenance (base / residual).

Resuming: attempts run on seeds `collect_seed(seed, attempt)`, each attempt's rng depends only on
(seed, attempt), and `collect_state.json` counts finished attempts after each one. Re-running the same
command after Ctrl-C redoes only the interrupted attempt and gives the dataset an uninterrupted run gives.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from pld_residual.agent.io import atomic_write
from pld_residual.dataset import topics
from pld_residual.dataset.writer import DatasetWriter, EpisodeWriter
from pld_residual.learning.action_space import agent_base, executed_action
from pld_residual.learning.base_env import BaseGuidedEnv, GuidedObs
from pld_residual.replay.probing import max_base_steps, sample_base_steps

COLLECT_FIRST_SEED = 2_000_000  # disjoint from evaluation (10 000), offline (500 000) and training seeds
SEED_STRIDE = 10_000_000
STATE_FILE = "collect_state.json"
STEP_NS = 50_000_000  # 20 Hz control: bag time advances one control period per step
SOURCES = ("pld", "rl_expert", "base", "scripted_expert")
HUMAN = 2  # ActionCommand.PROVENANCE_HUMAN
RESUMABLE_CHANGES = frozenset({"episodes", "max_attempts"})
PHASE = {name: value for value, name in topics.PHASES.items()}
END = {name: value for value, name in topics.END_REASONS.items()}


def collect_seed(run_seed: int, attempt: int) -> int:
    return COLLECT_FIRST_SEED + SEED_STRIDE * run_seed + attempt


@dataclass(frozen=True)
class CollectConfig:
    """What to collect: `episodes` kept episodes of `source` on `task`, at most `max_attempts` tries."""

    task: str = "pick_cube"
    source: str = "pld"
    episodes: int = 50
    max_attempts: int | None = None  # None: 4 x episodes
    probing_alpha: float = 0.5
    seed: int = 0
    deterministic: bool = True  # the specialist's mean action (its evaluated behaviour)
    keep_failures: bool = False  # also write failed attempts (success false in the index)
    expert_noise: float = 0.05  # scripted_expert: action noise, as in the pretraining demos

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {list(SOURCES)}, got {self.source!r}")
        if self.episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {self.episodes}")
        if self.max_attempts is not None and self.max_attempts < self.episodes:
            raise ValueError(f"max_attempts ({self.max_attempts}) must be >= episodes ({self.episodes})")
        max_base_steps(self.probing_alpha, 1)  # validates alpha

    @property
    def attempts_allowed(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 4 * self.episodes

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> CollectConfig:
        unknown = sorted(set(values) - {f.name for f in fields(cls)})
        if unknown:
            raise ValueError(f"unknown CollectConfig field(s) {unknown}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Specialist:
    """The RL expert as collection runs it: its policy, xi, and whether it sees the base action."""

    policy: Any  # ResidualPolicy
    xi: float
    guided: bool = True


def _t_base(cfg: CollectConfig, rng: np.random.Generator, time_limit: int) -> int:
    if cfg.source == "base":
        return time_limit
    if cfg.source in ("rl_expert", "scripted_expert"):
        return 0
    return sample_base_steps(rng, cfg.probing_alpha, time_limit)


def _load_state(root: Path, cfg: CollectConfig) -> int:
    """Finished attempts of an earlier run of the same collection (0 for a new one)."""
    path = root / STATE_FILE
    if not path.exists():
        return 0
    saved = json.loads(path.read_text())
    differing = sorted(
        key for key, value in cfg.to_dict().items()
        if saved["config"].get(key) != value and key not in RESUMABLE_CHANGES
    )  # fmt: skip
    if differing:
        raise ValueError(
            f"{root} was collected with other settings ({', '.join(differing)}); use another --out, "
            "or the same settings to resume"
        )
    return int(saved["attempts"])


def _save_state(root: Path, cfg: CollectConfig, attempts: int, counts: Mapping[str, int]) -> None:
    body = {"config": cfg.to_dict(), "attempts": attempts, **counts}
    atomic_write(root / STATE_FILE, (json.dumps(body, indent=2) + "\n").encode())


def _proprio_names(env: BaseGuidedEnv, obs: GuidedObs) -> list[str]:
    names = list(getattr(env.env, "proprio_names", []) or [])
    size = np.asarray(obs.raw["proprio"]).size
    return names if len(names) == size else [f"proprio_{i}" for i in range(size)]


def _run_episode(
    env: BaseGuidedEnv,
    obs: GuidedObs,
    episode: EpisodeWriter,
    specialist: Specialist | None,
    cfg: CollectConfig,
    t_base: int,
    expert: Any = None,
) -> dict[str, Any]:
    """One attempt from its reset observation, written step by step; the caller keeps or drops it."""
    proprio_names = _proprio_names(env, obs)
    stamp = time.time_ns()
    episode.add_instruction(stamp)
    if t_base > 0:
        episode.add_phase(stamp, PHASE["probing"], 0)
    step, judged = 0, False
    info: dict[str, Any] = {}
    while True:
        raw = obs.raw
        episode.add_observation(step, stamp, raw["images"], raw["proprio"], proprio_names)
        if step == t_base and t_base < env.time_limit_steps and expert is None:
            episode.add_phase(stamp, PHASE["residual"], step)
        if expert is not None:
            env_action, residual, provenance = np.asarray(expert.act(raw), np.float32), None, HUMAN
        else:
            env_action, residual, provenance = _act(env, obs, specialist, cfg, step, t_base)
        base_phys = env.scale.to_env(obs.base_action)
        episode.add_command(step, stamp, env_action, base_phys, residual, provenance)
        obs, _reward, terminated, truncated, info = env.step(env_action)
        step += 1
        stamp += STEP_NS
        judged = bool(info.get("reward_success", False))
        episode.add_reward(stamp, float(judged), judged)
        if terminated or truncated:
            break
    raw = obs.raw
    episode.add_observation(step, stamp, raw["images"], raw["proprio"], proprio_names)
    confirmed = bool(info.get("success", judged))  # the sim predicate; a robot has only the classifier
    success = judged and confirmed
    end = "success" if success else ("time_limit" if truncated else "abort")
    episode.add_phase(stamp, PHASE["done"], step, success, END[end])
    if judged and not confirmed:
        end = "unconfirmed_success"  # the index says why (the message has no such END_* code)
    return {"success": success, "judged": judged, "confirmed": confirmed, "end_reason": end, "steps": step}


def _act(
    env: BaseGuidedEnv,
    obs: GuidedObs,
    specialist: Specialist | None,
    cfg: CollectConfig,
    step: int,
    t_base: int,
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(physical env action, raw residual or None, provenance) for this step."""
    if step < t_base or specialist is None:
        return env.scale.to_env(obs.base_action), None, 0
    base = agent_base(obs.base_action, specialist.guided)
    delta = np.asarray(specialist.policy.act(obs.vector, base, deterministic=cfg.deterministic), np.float32)
    _, env_action = executed_action(obs.base_action, delta, specialist.xi, env.scale, specialist.guided)
    return env_action, delta, 1


def collect(
    cfg: CollectConfig,
    env: BaseGuidedEnv,
    out: Path,
    specialist: Specialist | None = None,
    progress: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Collect into the dataset at `out` until `cfg.episodes` kept episodes (resumes an earlier run)."""
    from tqdm import tqdm

    if cfg.source in ("pld", "rl_expert") and specialist is None:
        raise ValueError(f"source {cfg.source!r} needs the RL specialist (a `pld learn` run)")
    out = Path(out)
    start = time.perf_counter()
    with DatasetWriter(out) as dataset:
        attempts = _load_state(out, cfg)
        kept = sum(1 for r in dataset.records if r["success"] and r["source"] == cfg.source)
        counts = {"kept": kept, "false_positives": 0, "failures": 0}
        bar = tqdm(total=cfg.episodes, initial=min(kept, cfg.episodes), desc=f"collect {cfg.source}",
                   unit="ep", disable=not progress)  # fmt: skip
        with bar:
            while kept < cfg.episodes and attempts < cfg.attempts_allowed:
                seed = collect_seed(cfg.seed, attempts)
                rng = np.random.default_rng([cfg.seed, attempts])
                t_base = _t_base(cfg, rng, env.time_limit_steps)
                obs, _ = env.reset(seed=seed)
                expert = _expert(env, cfg, seed) if cfg.source == "scripted_expert" else None
                with dataset.episode(
                    task=cfg.task, instruction=str(obs.raw["instruction"]), seed=seed, source=cfg.source,
                    t_base=t_base, extra={"attempt": attempts, **(extra or {})},
                ) as episode:  # fmt: skip
                    outcome = _run_episode(env, obs, episode, specialist, cfg, t_base, expert)
                    if outcome["success"] or cfg.keep_failures:
                        episode.finish(outcome["success"], outcome["end_reason"], {"steps": outcome["steps"]})
                    else:
                        episode.abort()
                attempts += 1
                kept += outcome["success"]
                counts["kept"] = kept
                counts["false_positives"] += outcome["judged"] and not outcome["confirmed"]
                counts["failures"] += not outcome["success"]
                _save_state(out, cfg, attempts, counts)
                bar.update(int(outcome["success"]))
                bar.set_postfix(attempts=attempts, rate=f"{kept / attempts:.0%}")
    return {
        "dataset": str(out),
        "source": cfg.source,
        "kept": kept,
        "attempts": attempts,
        "complete": kept >= cfg.episodes,
        "false_positives_this_run": counts["false_positives"],
        "wall_time_s": round(time.perf_counter() - start, 2),
        "config": cfg.to_dict(),
    }


def _expert(env: BaseGuidedEnv, cfg: CollectConfig, seed: int) -> Any:
    """The task's scripted expert for this attempt (it reads the simulator's state, so sim only)."""
    from pld_sim.experts import make_expert
    from pld_sim.experts.base import ExpertConfig

    if not hasattr(env.env, "task"):
        raise ValueError(f"source scripted_expert needs a pld_sim task env, got {type(env.env).__name__}")
    return make_expert(env.env, ExpertConfig(noise=cfg.expert_noise), seed=seed)
