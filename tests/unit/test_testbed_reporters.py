"""The testbed's choice of SLURM-side reporters, without SLURM: the slurm.conf lines of each
kind, the mode kept between runs, reading the live kind from ``scontrol show config``, installing
the real plugins' files, SLURM's record of an ended job as ``scontrol`` prints it, and the CLI."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from testbed import slurm
from testbed.__main__ import _parser
from testbed.layout import Layout
from testbed.processes import TestbedError
from tests.integration.slurm_record import completion_of, epoch, parse_show_jobs


def _settings(conf: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in conf.splitlines() if "=" in line and line[0] != "#")


def test_plugins_mode_loads_the_real_plugins_and_none_of_our_reporters(tmp_path: Path) -> None:
    layout = Layout(root=tmp_path)
    settings = _settings(slurm.slurm_conf(layout, "plugins"))
    assert settings["JobCompType"] == "jobcomp/provider"
    assert settings["PlugStackConfig"] == str(slurm.plugstack_conf(layout))
    assert "JobCompLoc" not in settings and "PrologSlurmctld" not in settings
    assert settings["Prolog"] == str(slurm.PROLOG_HOOK)  # logs one line per node, reports nothing
    assert settings["PrologFlags"] == "Alloc"  # the SPANK prolog runs on every allocated node
    assert slurm.plugstack_conf_text() == (
        f"required {slurm.SLURM_PLUGIN_DIR / 'spank_provider.so'}\n"
    )


def test_scripts_mode_loads_our_reporters_and_no_plugin_stack(tmp_path: Path) -> None:
    settings = _settings(slurm.slurm_conf(Layout(root=tmp_path), "scripts"))
    assert settings["JobCompType"] == "jobcomp/script"
    assert settings["JobCompLoc"] == str(slurm.COMPLETION_HOOK)
    assert settings["PrologSlurmctld"] == str(slurm.PROLOG_SLURMCTLD_HOOK)
    assert "PlugStackConfig" not in settings


def test_the_mode_last_written_is_the_default_of_the_next_config(tmp_path: Path) -> None:
    layout = Layout(root=tmp_path)
    assert slurm.configured_reporters(layout) == "scripts"  # nothing written yet
    layout.slurm.mkdir(parents=True)
    (layout.slurm / "reporters").write_text("plugins\n")
    assert slurm.configured_reporters(layout) == "plugins"
    assert "JobCompType=jobcomp/provider" in slurm.slurm_conf(layout)
    (layout.slurm / "reporters").write_text("garbage\n")
    assert slurm.configured_reporters(layout) == "scripts"


def test_the_live_kind_is_the_controllers_completion_plugin() -> None:
    shown = "Configuration data as of 2026-12-07T15:30:00\nJobAcctGatherType       = none\n"
    assert slurm.reporters_of_config(shown + "JobCompType             = jobcomp/provider\n") == (
        "plugins"
    )
    assert slurm.reporters_of_config(shown + "JobCompType             = jobcomp/script\n") == (
        "scripts"
    )
    assert slurm.reporters_of_config(shown + "JobCompType             = jobcomp/none\n") is None
    assert slurm.reporters_of_config(shown) is None


def test_an_unknown_kind_is_refused_with_the_choices() -> None:
    assert slurm.check_reporters("plugins") == "plugins"
    with pytest.raises(TestbedError, match=r"'cpp'.*scripts, plugins"):
        slurm.check_reporters("cpp")
    with pytest.raises(SystemExit):
        _parser().parse_args(["up", "--reporters", "cpp"])
    args = _parser().parse_args(["up", "--reporters", "plugins", "--plugins-dir", "/x"])
    assert (args.reporters, args.plugins_dir) == ("plugins", Path("/x"))
    assert _parser().parse_args(["up"]).reporters == "scripts"


def test_plugins_are_copied_only_when_they_differ(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source, target = tmp_path / "real-plugins", tmp_path / "slurm-wlm"
    source.mkdir()
    monkeypatch.setattr(slurm, "SLURM_PLUGIN_DIR", target)
    for name in slurm.PLUGIN_FILES:
        (source / name).write_bytes(b"ELF " + name.encode())
    assert slurm.install_plugins(source) == list(slurm.PLUGIN_FILES)
    assert (target / "spank_provider.so").read_bytes() == b"ELF spank_provider.so"
    assert (target / "spank_provider.so").stat().st_mode & 0o777 == 0o755
    assert slurm.install_plugins(source) == []
    (source / "jobcomp_provider.so").write_bytes(b"ELF rebuilt")
    assert slurm.install_plugins(source) == ["jobcomp_provider.so"]
    assert (target / "jobcomp_provider.so").read_bytes() == b"ELF rebuilt"
    assert sorted(p.name for p in target.iterdir()) == sorted(slurm.PLUGIN_FILES)


def test_a_plugins_folder_without_the_plugins_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(slurm, "SLURM_PLUGIN_DIR", tmp_path / "slurm-wlm")
    (tmp_path / "spank_provider.so").write_bytes(b"ELF")
    with pytest.raises(TestbedError, match=rf"{tmp_path}.*missing jobcomp_provider\.so"):
        slurm.install_plugins(tmp_path)
    assert not (tmp_path / "slurm-wlm").exists()


def test_the_plugins_folder_is_the_option_then_the_environment_then_beside_the_checkout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(slurm.PLUGINS_DIR_ENV, raising=False)
    assert slurm.plugins_dir() == slurm.DEFAULT_PLUGINS_DIR
    assert slurm.DEFAULT_PLUGINS_DIR.parts[-2:] == ("shared", "real-plugins")
    monkeypatch.setenv(slurm.PLUGINS_DIR_ENV, "/from/env")
    assert slurm.plugins_dir() == Path("/from/env")
    assert slurm.plugins_dir(Path("/given")) == Path("/given")


SHOW_JOB = (
    "JobId=41 JobName=0x" + "ab" * 32 + " UserId=0xabc(1001) GroupId=0xabc(1001) "
    "JobState=FAILED Reason=NonZeroExitCode Dependency=(null) Restarts=0 ExitCode=3:0 "
    "RunTime=00:00:05 TimeLimit=00:05:00 SubmitTime=2026-12-07T15:29:58 "
    "StartTime=2026-12-07T15:30:00 EndTime=2026-12-07T15:30:05 Partition=grid "
    "NodeList=n1 Comment=supervisor 127.0.0.1:3000 NumNodes=1\n"
    "JobId=42 JobName=0x" + "cd" * 32 + " JobState=RUNNING ExitCode=0:0 "
    "StartTime=2026-12-07T15:30:01 EndTime=2026-12-07T15:35:01\n"
)


def test_slurms_record_of_an_ended_job_reads_like_the_completion_hooks_line() -> None:
    failed, running = parse_show_jobs(SHOW_JOB)
    end = completion_of(failed)
    assert end is not None
    assert (end.slurm_job_id, end.name, end.state) == (41, "0x" + "ab" * 32, "FAILED")
    assert end.exit_code_raw == 3 << 8
    assert end.duration_seconds == 5
    assert end.start == int(time.mktime(time.strptime("2026-12-07T15:30:00", "%Y-%m-%dT%H:%M:%S")))
    assert completion_of(running) is None  # not ended: no record of an end
    assert epoch("Unknown") == 0 and epoch("") == 0
