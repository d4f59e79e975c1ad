"""Check that this machine can run the PLD stack, and say how to fix what cannot.

Each check runs its imports in a child process, so a crashing or missing library fails one row
instead of the whole report. Exit code 0 only when every check passes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from pld_residual.cli.workspace import source_hint, workspace_root

LOCALHOST = "LOCALHOST"
DISCOVERY_VAR = "ROS_AUTOMATIC_DISCOVERY_RANGE"
DDS_MESSAGES = 20
# Versions shown in the report header (distribution names).
KEY_DISTRIBUTIONS = (
    "ros-rclpy",
    "ros-rmw-fastrtps-cpp",
    "numpy",
    "mujoco",
    "jax",
    "flax",
    "optax",
    "torch",
    "transformers",
    "rosbags",
)


@dataclass(frozen=True)
class CheckResult:
    """One row of the report: `fix` says what to run when `ok` is false."""

    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DoctorConfig:
    """Options of `pld doctor`."""

    timeout_s: float = 60.0
    dds_messages: int = DDS_MESSAGES
    as_json: bool = False

    def __post_init__(self) -> None:
        if self.timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {self.timeout_s}")
        if self.dds_messages < 1:
            raise ValueError(f"dds_messages must be at least 1, got {self.dds_messages}")


# ----------------------------------------------------------------------------- pure checks


def check_discovery_range(environ: Mapping[str, str]) -> CheckResult:
    """DDS discovery must stay on this machine; unset, Fast DDS multicasts on the network."""
    value = environ.get(DISCOVERY_VAR)
    if value == LOCALHOST:
        return CheckResult("discovery range", True, f"{DISCOVERY_VAR}={LOCALHOST}")
    shown = "unset" if value is None else f"{value!r}"
    return CheckResult(
        "discovery range",
        False,
        f"{DISCOVERY_VAR} is {shown}",
        f"{source_hint()}   (or: export {DISCOVERY_VAR}={LOCALHOST})",
    )


def check_env_script(environ: Mapping[str, str]) -> CheckResult:
    """env.sh exports PLD_ROOT; without it the install space (our packages) is not on the path."""
    root = environ.get("PLD_ROOT")
    if root and Path(root, "env.sh").is_file():
        return CheckResult("env script", True, f"sourced {root}/env.sh")
    return CheckResult("env script", False, "env.sh of the workspace is not sourced", source_hint())


def check_venv(prefix: str, base_prefix: str, version: str) -> CheckResult:
    """Every pinned library lives in the workspace's .venv, not in the system Python."""
    if prefix == base_prefix:
        return CheckResult("python venv", False, f"Python {version} outside a venv ({prefix})", source_hint())
    root = workspace_root()
    expected = root / ".venv" if root else None
    if expected is not None and Path(prefix).resolve() != expected.resolve():
        return CheckResult(
            "python venv", False, f"venv {prefix} is not this workspace's {expected}", source_hint()
        )
    return CheckResult("python venv", True, f"Python {version} in {prefix}")


def parse_pins(requirements: str) -> dict[str, str]:
    """`name==version` lines of a requirements file, names normalised as in PEP 503."""
    pins = {}
    for line in requirements.splitlines():
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;#]+)", line)
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pins(pins: Mapping[str, str], installed: Callable[[str], str | None]) -> CheckResult:
    """Installed versions equal the pins of requirements.txt (a local label like +cpu is ignored)."""
    wrong = []
    for name, want in sorted(pins.items()):
        have = installed(name)
        if have is None or have.split("+")[0] != want.split("+")[0]:
            wrong.append(f"{name} {have or 'missing'} (pinned {want})")
    if not pins:
        return CheckResult("pinned versions", False, "requirements.txt not found", "make setup")
    if wrong:
        more = f" and {len(wrong) - 3} more" if len(wrong) > 3 else ""
        return CheckResult("pinned versions", False, "; ".join(wrong[:3]) + more, "make setup")
    return CheckResult("pinned versions", True, f"{len(pins)} packages match requirements.txt")


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# ----------------------------------------------------------------------------- probes


def run_python(code: str, timeout_s: float, env: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Run `code` in a fresh interpreter; return (exit code 0, last line of output or error)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=dict(env) if env is not None else None,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s:.0f} s"
    out = (proc.stdout.strip() or proc.stderr.strip()).splitlines()
    if proc.returncode != 0:
        err = proc.stderr.strip().splitlines()
        return False, (err[-1] if err else f"exit code {proc.returncode}")
    return True, out[-1] if out else ""


def _child_env() -> dict[str, str]:
    """Environment for probes: ours, with this package importable even when run from the source tree."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    return env


RCLPY_PROBE = """
import rclpy, os
from importlib import metadata
print(f"rclpy {metadata.version('ros-rclpy')}, RMW {os.environ.get('RMW_IMPLEMENTATION', 'default')}")
"""

INTERFACES_PROBE = """
from pld_interfaces.msg import Observation, ActionChunk, ActionCommand, Reward, EpisodeEvent, PolicyParams
from pld_interfaces.srv import Reset
from pld_interfaces.action import RunEpisodes
import pld_interfaces
print(f"6 messages, 1 service, 1 action from {pld_interfaces.__path__[0]}")
"""

MUJOCO_PROBE = """
import os, time, mujoco
xml = '''<mujoco><worldbody><light pos="0 0 2"/><geom type="plane" size="1 1 .1" rgba=".8 .8 .8 1"/>
<geom type="box" pos="0 0 .1" size=".1 .1 .1" rgba="0 0 1 1"/>
<camera name="c" pos="0 -1 .6" xyaxes="1 0 0 0 .5 .9"/></worldbody></mujoco>'''
model = mujoco.MjModel.from_xml_string(xml)
data = mujoco.MjData(model)
mujoco.mj_forward(model, data)
with mujoco.Renderer(model, 64, 64) as renderer:
    renderer.update_scene(data, camera="c")
    renderer.render()  # the first frame pays for context set-up
    t = time.perf_counter(); frame = renderer.render(); ms = (time.perf_counter() - t) * 1e3
assert frame.shape == (64, 64, 3) and frame.std() > 1.0, "rendered frame is blank"
backend = os.environ.get('MUJOCO_GL', 'default')
print(f"mujoco {mujoco.__version__}, MUJOCO_GL={backend}, 64x64 frame in {ms:.1f} ms")
"""

JAX_PROBE = """
import jax, jax.numpy as jnp
x = jnp.ones((256, 256))
y = jax.jit(lambda a: (a @ a).sum())(x).block_until_ready()
assert float(y) == 256.0 ** 3, float(y)
print(f"jax {jax.__version__} on {jax.devices()[0].platform}, jitted matmul ok")
"""

TORCH_PROBE = """
import torch
x = torch.ones(256, 256)
y = (x @ x).sum().item()
assert y == 256.0 ** 3, y
print(f"torch {torch.__version__} on cpu ({torch.get_num_threads()} threads), matmul ok")
"""


def probe(name: str, code: str, fix: str, timeout_s: float, env: Mapping[str, str]) -> CheckResult:
    ok, line = run_python(code, timeout_s, env)
    return CheckResult(name, ok, line, "" if ok else fix)


def check_dds(cfg: DoctorConfig, env: Mapping[str, str]) -> CheckResult:
    """A subscriber and a publisher in two separate processes exchange messages over DDS."""
    name = f"DDS {cfg.dds_messages} msgs, 2 processes"
    if env.get(DISCOVERY_VAR) != LOCALHOST:
        return CheckResult(
            name,
            False,
            f"not run: {DISCOVERY_VAR} is not {LOCALHOST}, so DDS discovery would leave this machine",
            source_hint(),
        )
    topic = f"pld_doctor_{uuid.uuid4().hex[:8]}"
    peer = [
        sys.executable,
        "-m",
        "pld_residual.ros.doctor_peer",
        "--topic",
        topic,
        "--count",
        str(cfg.dds_messages),
        "--timeout",
        str(cfg.timeout_s),
    ]
    start = time.perf_counter()
    sub = subprocess.Popen(
        [*peer, "sub"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env)
    )
    pub = subprocess.Popen(
        [*peer, "pub"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(env)
    )
    try:
        sub_out, sub_err = sub.communicate(timeout=cfg.timeout_s + 10)
    except subprocess.TimeoutExpired:
        sub.kill()
        sub_out, sub_err = sub.communicate()
    try:
        pub.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        pub.kill()
        pub.communicate()
    elapsed = time.perf_counter() - start
    if sub.returncode == 0:
        return CheckResult(name, True, f"{sub_out.strip().splitlines()[-1]} ({elapsed:.1f} s incl. start-up)")
    reason = (sub_err.strip() or sub_out.strip() or f"exit code {sub.returncode}").splitlines()[-1]
    return CheckResult(
        name,
        False,
        reason,
        "check that no firewall blocks loopback UDP and that /dev/shm is writable; then `make setup`",
    )


def run_checks(cfg: DoctorConfig) -> list[CheckResult]:
    env = _child_env()
    env.setdefault("MUJOCO_GL", "egl")
    root = workspace_root()
    requirements = root / "requirements.txt" if root else None
    pins = parse_pins(requirements.read_text()) if requirements and requirements.is_file() else {}
    built = root is not None and (root / "install" / "pld_interfaces").is_dir()
    setup_fix = (
        source_hint() if built and "PLD_ROOT" not in os.environ else f"make setup   (then {source_hint()})"
    )
    results = [
        check_venv(sys.prefix, sys.base_prefix, sys.version.split()[0]),
        check_pins(pins, installed_version),
        check_env_script(os.environ),
        check_discovery_range(os.environ),
        probe("import rclpy", RCLPY_PROBE, setup_fix, cfg.timeout_s, env),
        probe("custom interfaces", INTERFACES_PROBE, setup_fix, cfg.timeout_s, env),
        check_dds(cfg, env),
        probe(
            "MuJoCo offscreen render",
            MUJOCO_PROBE,
            "make setup installs libegl1 libegl-mesa0 libgl1-mesa-dri libosmesa6; or try MUJOCO_GL=osmesa",
            cfg.timeout_s,
            env,
        ),
        probe("JAX on CPU", JAX_PROBE, setup_fix, cfg.timeout_s, env),
        probe("torch on CPU", TORCH_PROBE, setup_fix, cfg.timeout_s, env),
    ]
    return results


# ----------------------------------------------------------------------------- report


def render_table(results: list[CheckResult], versions: Mapping[str, str | None]) -> str:
    """The human report: versions, one row per check, a fix line under every failure, a verdict."""
    lines = ["PLD doctor", ""]
    lines.append("versions: " + ", ".join(f"{k} {v or 'missing'}" for k, v in versions.items()))
    lines.append("")
    width = max(len(r.name) for r in results)
    lines.append(f"  {'check'.ljust(width)}  status  detail")
    for r in results:
        lines.append(f"  {r.name.ljust(width)}  {'ok  ' if r.ok else 'FAIL'}    {r.detail}")
        if not r.ok and r.fix:
            lines.append(f"  {''.ljust(width)}          fix: {r.fix}")
    failed = [r for r in results if not r.ok]
    lines.append("")
    if failed:
        lines.append(
            f"{len(failed)} of {len(results)} checks failed. "
            "Run the fix lines above, then `pld doctor` again."
        )
        if any(r.name in ("env script", "discovery range") for r in failed):
            lines.append(f"First run: {source_hint()}")
    else:
        lines.append(f"All {len(results)} checks passed.")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DoctorConfig.timeout_s,
        help="seconds each probe may take (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    cfg = DoctorConfig(timeout_s=args.timeout, as_json=args.json)
    results = run_checks(cfg)
    versions = {name: installed_version(name) for name in KEY_DISTRIBUTIONS}
    if cfg.as_json:
        print(
            json.dumps(
                {
                    "ok": all(r.ok for r in results),
                    "versions": versions,
                    "checks": [asdict(r) for r in results],
                },
                indent=2,
            )
        )
    else:
        print(render_table(results, versions))
    return 0 if all(r.ok for r in results) else 1
