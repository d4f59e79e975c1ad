"""The pure parts of `pld doctor`: environment checks, pins, and the report's fix lines."""

from __future__ import annotations

import pytest

from pld_residual.cli import doctor
from pld_residual.cli.doctor import CheckResult, DoctorConfig


def test_discovery_range_passes_only_for_localhost() -> None:
    assert doctor.check_discovery_range({"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}).ok
    for environ in ({}, {"ROS_AUTOMATIC_DISCOVERY_RANGE": "SUBNET"}, {"ROS_AUTOMATIC_DISCOVERY_RANGE": ""}):
        result = doctor.check_discovery_range(environ)
        assert not result.ok
        assert "export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST" in result.fix
        assert "env.sh" in result.fix


def test_env_script_needs_pld_root_with_an_env_sh(tmp_path) -> None:
    assert not doctor.check_env_script({}).ok
    assert not doctor.check_env_script({"PLD_ROOT": str(tmp_path)}).ok
    (tmp_path / "env.sh").write_text("")
    assert doctor.check_env_script({"PLD_ROOT": str(tmp_path)}).ok


def test_venv_check_rejects_the_system_python() -> None:
    result = doctor.check_venv("/usr", "/usr", "3.11.7")
    assert not result.ok and "outside a venv" in result.detail


def test_parse_pins_normalises_names_and_skips_comments() -> None:
    text = "# comment\nRos_RclPy==9.1.2\nnumpy == 2.4.6  # why\ntorch==2.13.0\n-e ./local\nloose>=1\n"
    assert doctor.parse_pins(text) == {"ros-rclpy": "9.1.2", "numpy": "2.4.6", "torch": "2.13.0"}


def test_check_pins_ignores_local_labels_and_names_mismatches() -> None:
    pins = {"torch": "2.13.0", "numpy": "2.4.6", "jax": "0.10.2"}
    installed = {"torch": "2.13.0+cpu", "numpy": "2.4.6", "jax": "0.10.2"}
    assert doctor.check_pins(pins, installed.get).ok
    installed["numpy"] = "2.3.0"
    del installed["jax"]
    result = doctor.check_pins(pins, installed.get)
    assert not result.ok
    assert "numpy 2.3.0 (pinned 2.4.6)" in result.detail and "jax missing" in result.detail
    assert result.fix == "make setup"
    assert not doctor.check_pins({}, installed.get).ok


def test_report_prints_a_fix_under_each_failure_and_a_verdict() -> None:
    results = [
        CheckResult("import rclpy", True, "rclpy 9.1.2"),
        CheckResult("discovery range", False, "unset", ". /ws/env.sh"),
    ]
    text = doctor.render_table(results, {"torch": "2.13.0"})
    lines = text.splitlines()
    failing = next(i for i, line in enumerate(lines) if "FAIL" in line)
    assert "fix: . /ws/env.sh" in lines[failing + 1]
    assert "1 of 2 checks failed" in text
    assert "All 1 checks passed." in doctor.render_table(results[:1], {})


def test_dds_check_refuses_to_run_without_localhost_discovery() -> None:
    result = doctor.check_dds(DoctorConfig(), {"PATH": "/usr/bin"})
    assert not result.ok and "not run" in result.detail


def test_run_python_reports_the_error_line() -> None:
    ok, line = doctor.run_python("raise SystemExit('boom')", timeout_s=30)
    assert not ok and line == "boom"
    ok, line = doctor.run_python("print('a'); print('b')", timeout_s=30)
    assert ok and line == "b"


@pytest.mark.parametrize("kwargs", [{"timeout_s": 0}, {"dds_messages": 0}])
def test_config_rejects_nonsense(kwargs) -> None:
    with pytest.raises(ValueError):
        DoctorConfig(**kwargs)
