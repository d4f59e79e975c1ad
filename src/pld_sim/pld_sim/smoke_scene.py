"""A minimal MuJoCo episode (a cube dropped on a table, filmed by one camera).

It exercises physics, offscreen rendering and the episode bookkeeping that `pld demo` reports,
until the robot scenes and tasks of `pld_sim` exist. It is not a robot task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

SCENE_XML = """
<mujoco model="pld_smoke_scene">
  <option timestep="{timestep}"/>
  <visual><quality shadowsize="0"/></visual>
  <worldbody>
    <light pos="0 0 2" dir="0 0 -1"/>
    <geom name="table" type="box" pos="0 0 0.4" size="0.4 0.4 0.02" rgba="0.6 0.5 0.4 1"/>
    <body name="cube" pos="{x} {y} {z}">
      <freejoint/>
      <geom name="cube" type="box" size="0.025 0.025 0.025" rgba="0.1 0.2 0.9 1" mass="0.05"/>
    </body>
    <camera name="front" pos="0 -0.9 0.9" xyaxes="1 0 0 0 0.6 0.8"/>
  </worldbody>
</mujoco>
"""
TABLE_TOP_Z = 0.42


@dataclass(frozen=True)
class SmokeEpisodeConfig:
    """Control at `control_hz` with `physics_dt` physics steps, as the real tasks will run."""

    steps: int = 40
    control_hz: float = 20.0
    physics_dt: float = 0.002
    image_size: int = 64
    seed: int = 0

    def __post_init__(self) -> None:
        if self.steps < 1 or self.image_size < 8:
            raise ValueError("steps must be >= 1 and image_size >= 8")
        if self.physics_dt * self.control_hz > 1.0:
            raise ValueError("physics_dt must be shorter than the control period")


@dataclass
class SmokeEpisodeResult:
    cube_heights: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def settled_on_table(self) -> bool:
        """Success predicate of the smoke episode: the cube rests on the table top."""
        return abs(self.cube_heights[-1] - (TABLE_TOP_Z + 0.025)) < 0.005


def run_smoke_episode(
    cfg: SmokeEpisodeConfig, on_step: Callable[[int], None] | None = None
) -> SmokeEpisodeResult:
    """Drop the cube from a seeded random pose and film it at the control rate."""
    rng = np.random.default_rng(cfg.seed)
    x, y = rng.uniform(-0.1, 0.1, size=2)
    z = TABLE_TOP_Z + rng.uniform(0.05, 0.15)
    model = mujoco.MjModel.from_xml_string(SCENE_XML.format(timestep=cfg.physics_dt, x=x, y=y, z=z))
    data = mujoco.MjData(model)
    substeps = round(1.0 / (cfg.control_hz * cfg.physics_dt))
    cube = model.body("cube").id
    result = SmokeEpisodeResult()
    with mujoco.Renderer(model, cfg.image_size, cfg.image_size) as renderer:
        for step in range(cfg.steps):
            mujoco.mj_step(model, data, nstep=substeps)
            renderer.update_scene(data, camera="front")
            result.frames.append(renderer.render().copy())
            result.cube_heights.append(float(data.xpos[cube][2]))
            if on_step is not None:
                on_step(step)
    return result
