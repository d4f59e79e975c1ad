"""The methods `pld learn` runs in one harness: PLD and the paper's baselines, as a registry of switches.

Our reading of each baseline, in this harness (same env, same frozen base for data and guidance, same
agent networks and update code; only these switches differ):

- `pld`: residual on the base (`a = a_base + xi * a_delta`), Cal-QL critic warm start on ~50 successful
  base rollouts, those rollouts kept as the offline buffer and sampled 50/50 with online data for the
  whole run, warm-up episodes driven by the base, probing (`T_base ~ U[0, alpha*T]`).
- `rlpd`: RLPD (Ball et al. 2023): the agent outputs the whole action (no base guidance), offline base
  successes replayed 50/50 with online data, no warm start, no warm-up by the base.
- `wsrl`: WSRL (Zhou et al. 2025): fine-tuning after offline RL without retaining offline data. We warm
  start the critic with Cal-QL on the base successes; WSRL's warm-up rolls the pre-trained policy to seed
  the online buffer, and the pre-trained policy here is the base, so the warm-up episodes are base
  rollouts; after them the agent acts alone and samples the online buffer only.
- `jsrl`: JSRL (Uchendu et al. 2023): the base is the guide policy and drives the first h steps
  (roll-in), the agent acts alone afterwards; h shrinks through a curriculum as the success rate holds up
  (`curriculum.RollInCurriculum`). All steps, guide steps included, go to the online buffer.
- `sac`: plain SAC from scratch: no base, no offline data, no warm start, no warm-up.

Every method observes the same vector (VLA features + proprio by default), so only guidance differs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pld_residual.agent.config import ResidualSACConfig
from pld_sim.registry import Registry


@dataclass(frozen=True)
class MethodSpec:
    """Switches of one method; see the module docstring for what each method sets."""

    name: str
    description: str
    guided: bool  # residual on the base; False: the agent's output is the whole action
    warmstart: bool  # critic warm start (the agent config's `warmstart` loss) on offline base successes
    offline_fraction: float  # share of offline base successes in every batch (0: online buffer only)
    warmup_by_base: bool  # the first `warmup_episodes` episodes are base-only rollouts into replay
    probing: bool  # PLD probing: the base drives a random prefix, kept out of replay
    rollin: bool  # JSRL roll-in curriculum

    @property
    def needs_offline_data(self) -> bool:
        return self.warmstart or self.offline_fraction > 0

    def agent_config(self, config: ResidualSACConfig) -> ResidualSACConfig:
        """The agent config this method runs with: unchanged (so all methods share one compiled `update`;
        unguided methods get xi = 1 through the batch, see `action_space.update_xis`), except that a
        method with a warm start needs a warm-start loss (`none` becomes Cal-QL), and a method without
        base guidance outputs the whole action, so a residual limited to some axes does not apply to it."""
        if self.warmstart and config.warmstart == "none":
            config = config.replace(warmstart="calql")
        if not self.guided and config.residual_axes is not None:
            config = config.replace(residual_axes=None)
        return config

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


METHODS: Registry[MethodSpec] = Registry("method")


def register_method(spec: MethodSpec) -> MethodSpec:
    return METHODS.add(spec.name, spec)


register_method(
    MethodSpec(
        "pld",
        "residual on the base, Cal-QL warm start, 50/50 offline/online, warm-up, probing",
        guided=True,
        warmstart=True,
        offline_fraction=0.5,
        warmup_by_base=True,
        probing=True,
        rollin=False,
    )
)
register_method(
    MethodSpec(
        "rlpd",
        "no base guidance, offline base successes sampled 50/50, no warm start",
        guided=False,
        warmstart=False,
        offline_fraction=0.5,
        warmup_by_base=False,
        probing=False,
        rollin=False,
    )
)
register_method(
    MethodSpec(
        "wsrl",
        "Cal-QL warm start, base warm-up, online buffer only, agent acts alone",
        guided=False,
        warmstart=True,
        offline_fraction=0.0,
        warmup_by_base=True,
        probing=False,
        rollin=False,
    )
)
register_method(
    MethodSpec(
        "jsrl",
        "base rolls in for h steps (curriculum shrinks h), then the agent acts alone",
        guided=False,
        warmstart=False,
        offline_fraction=0.0,
        warmup_by_base=False,
        probing=False,
        rollin=True,
    )
)
register_method(
    MethodSpec(
        "sac",
        "plain SAC from scratch: no base, no offline data",
        guided=False,
        warmstart=False,
        offline_fraction=0.0,
        warmup_by_base=False,
        probing=False,
        rollin=False,
    )
)
