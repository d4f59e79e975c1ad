"""`pld collect` core on the toy task: probing prefix then takeover, successes kept, exact resumption."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from pld_residual.agent.config import ResidualSACConfig
from pld_residual.agent.policy import ResidualPolicy
from pld_residual.collection import STATE_FILE, CollectConfig, Specialist, collect, collect_seed
from pld_residual.dataset.index import load_index
from pld_residual.dataset.reader import read_episode
from pld_residual.learning.base_env import BaseGuidedEnv
from pld_residual.learning.rewards import PredicateReward


class InterruptMidEpisode(PredicateReward):
    """The predicate, but Ctrl-C arrives 5 steps into the attempt after the `successes`-th success."""

    def __init__(self, successes: int) -> None:
        self.successes, self.after = successes, 5

    def __call__(self, next_obs, info):
        outcome = super().__call__(next_obs, info)
        if self.successes == 0:
            self.after -= 1
            if self.after == 0:
                raise KeyboardInterrupt
        self.successes -= outcome.success
        return outcome


@pytest.fixture
def guided_env(toy_env_factory: Callable, toy_base) -> Callable[..., BaseGuidedEnv]:
    return lambda reward=None: BaseGuidedEnv(toy_env_factory(), toy_base, 4, "vla", reward)


@pytest.fixture
def specialist(guided_env: Callable) -> Specialist:
    """A freshly initialised residual (zero last layer): it acts, and its residual is exactly 0."""
    obs, _ = guided_env().reset(seed=0)
    config = ResidualSACConfig(hidden=16, actor_layers=2, critic_layers=2)
    return Specialist(ResidualPolicy.create(config, obs.vector.size, seed=0), xi=0.5)


def test_pld_episodes_are_a_base_prefix_then_residual_commands_and_all_succeed(
    tmp_path: Path, guided_env: Callable, specialist: Specialist
) -> None:
    cfg = CollectConfig(task="toy_reach", source="pld", episodes=3, max_attempts=100, probing_alpha=0.5)
    result = collect(cfg, guided_env(), tmp_path / "d", specialist, progress=False)
    assert result["complete"] and result["kept"] == 3 and result["attempts"] >= 3
    records = load_index(tmp_path / "d")
    assert len(records) == 3 and all(r["success"] and r["source"] == "pld" for r in records)
    assert {r["seed"] for r in records} <= {collect_seed(0, a) for a in range(result["attempts"])}
    for record in records:
        assert 0 <= record["t_base"] <= 12  # floor(0.5 * 25)
        episode = read_episode(tmp_path / "d" / record["bag"])
        probing = min(record["t_base"], len(episode))
        assert episode.provenance.tolist() == [0] * probing + [1] * (len(episode) - probing)
        np.testing.assert_allclose(episode.command, episode.base, atol=1e-6)  # the residual outputs 0
        assert not episode.residual.any()
        assert len(episode.proprio) == len(episode) + 1 and episode.images["side"].shape[1:] == (8, 8, 3)
        assert episode.reward_success[-1] and not episode.reward_success[:-1].any()
        assert episode.instruction == "reach the goal"


def test_an_interrupted_collection_resumes_to_the_uninterrupted_dataset(
    tmp_path: Path, guided_env: Callable, specialist: Specialist
) -> None:
    cfg = CollectConfig(task="toy_reach", source="pld", episodes=4, max_attempts=100, probing_alpha=0.5)
    whole = collect(cfg, guided_env(), tmp_path / "whole", specialist, progress=False)

    with pytest.raises(KeyboardInterrupt):  # Ctrl-C in the middle of an attempt
        collect(cfg, guided_env(InterruptMidEpisode(2)), tmp_path / "resumed", specialist, progress=False)
    before = load_index(tmp_path / "resumed")
    assert len(before) == 2
    assert (tmp_path / "resumed" / STATE_FILE).exists()
    resumed = collect(cfg, guided_env(), tmp_path / "resumed", specialist, progress=False)
    assert resumed["attempts"] == whole["attempts"] and resumed["kept"] == 4

    def key(records: list[dict]) -> list[tuple]:
        return [(r["bag"], r["seed"], r["t_base"], r["length"], r["provenance"]) for r in records]

    assert key(load_index(tmp_path / "resumed")) == key(load_index(tmp_path / "whole"))
    assert key(load_index(tmp_path / "resumed"))[: len(before)] == key(before)  # finished ones untouched

    extended = CollectConfig(**{**cfg.to_dict(), "episodes": 5})
    more = collect(extended, guided_env(), tmp_path / "whole", specialist, progress=False)
    assert more["kept"] == 5  # a larger target extends the same collection
    with pytest.raises(ValueError, match="probing_alpha"):
        collect(CollectConfig(**{**cfg.to_dict(), "probing_alpha": 0.2}), guided_env(), tmp_path / "whole",
                specialist, progress=False)  # fmt: skip


def test_base_source_keeps_the_bases_own_successes_and_failures_on_request(
    tmp_path: Path, guided_env: Callable
) -> None:
    cfg = CollectConfig(task="toy_reach", source="base", episodes=2, keep_failures=True, max_attempts=100)
    result = collect(cfg, guided_env(), tmp_path / "d", None, progress=False)
    records = load_index(tmp_path / "d")
    assert result["kept"] == 2 and len(records) == result["attempts"]  # failures written too
    assert sum(r["success"] for r in records) == 2
    assert all(r["provenance"] == {"base": r["length"]} and r["t_base"] == 25 for r in records)
    assert {r["end_reason"] for r in records if not r["success"]} <= {"time_limit"}


def test_settings_that_cannot_work_are_refused(tmp_path: Path, guided_env: Callable) -> None:
    with pytest.raises(ValueError, match="needs the RL specialist"):
        collect(CollectConfig(source="pld", episodes=1), guided_env(), tmp_path / "d", None, progress=False)
    for bad, match in (
        ({"source": "teleop"}, "source"), ({"episodes": 0}, "episodes"),
        ({"episodes": 5, "max_attempts": 2}, "max_attempts"), ({"probing_alpha": 1.5}, "alpha"),
    ):  # fmt: skip
        with pytest.raises(ValueError, match=match):
            CollectConfig(**bad)


class AlwaysSuccess(PredicateReward):
    """A classifier that calls every frame a success: what false-positive confirmation must catch."""

    def __call__(self, next_obs, info):
        return type(super().__call__(next_obs, info))(1.0, True)


def test_a_judged_success_the_predicate_denies_is_dropped_and_counted(
    tmp_path: Path, guided_env: Callable, specialist: Specialist
) -> None:
    cfg = CollectConfig(task="toy_reach", source="pld", episodes=1, max_attempts=5, probing_alpha=0.0)
    result = collect(cfg, guided_env(AlwaysSuccess()), tmp_path / "d", specialist, progress=False)
    assert result["kept"] == 0 and result["attempts"] == 5 and result["false_positives_this_run"] == 5
    assert load_index(tmp_path / "d") == []
