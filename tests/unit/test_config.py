"""Settings: where the upstream key comes from, when the sandbox is used, per-family limit maps."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import Settings, environment
from app.config_docs import render
from app.sandbox.settings import SandboxSettings
from app.serving import HttpLimits

REPO = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, **values: object) -> Settings:
    values.setdefault("dashscope_credentials_file", tmp_path / "none")
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_no_key_means_sandbox(tmp_path: Path) -> None:
    settings = make(tmp_path)
    assert settings.upstream_key is None and settings.sandbox_enabled


def test_env_key_wins_over_the_credentials_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text("[default]\ndashscope_api_key = sk-from-file\n")
    from_file = make(tmp_path, dashscope_credentials_file=credentials).upstream_key
    assert from_file is not None and from_file.get_secret_value() == "sk-from-file"
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-from-env")
    settings = make(tmp_path, dashscope_credentials_file=credentials)
    assert settings.upstream_key is not None and settings.upstream_key.get_secret_value() == "sk-from-env"
    assert not settings.sandbox_enabled
    assert "sk-from-env" not in repr(settings)  # secrets never print


def test_sandbox_can_be_forced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-real")
    monkeypatch.setenv("DASHSCOPE_SANDBOX", "true")
    assert make(tmp_path).sandbox_enabled


def test_family_maps_merge_with_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("UPSTREAM_MAX_INFLIGHT", "wan2.6=8, kf2v=1")
    monkeypatch.setenv("UPSTREAM_SUBMIT_RPS", '{"wan2.5": 1.5}')
    settings = make(tmp_path)
    assert settings.upstream_max_inflight == {"wan2.6": 8, "wan2.5": 5, "wan2.2": 2, "wan2.1": 2, "kf2v": 1}
    assert settings.upstream_submit_rps["wan2.5"] == 1.5 and settings.upstream_submit_rps["wan2.6"] == 5


def test_storage_defaults_under_output_dir(tmp_path: Path) -> None:
    expected = str(tmp_path / "ai-video-wan-video" / "videos")
    assert make(tmp_path, output_dir=tmp_path).resolved_storage_url == expected


def test_poll_intervals_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="POLL_MIN_INTERVAL_S"):
        make(tmp_path, poll_min_interval_s=5, poll_max_interval_s=1)


def test_configuration_page_is_current() -> None:
    assert (REPO / "docs" / "CONFIGURATION.md").read_text() == render(), "run `make config-docs`"


def test_webhook_settings_parse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_RETRY_SCHEDULE", "0, 1.5, 60")
    monkeypatch.setenv("WEBHOOK_DEFAULT_EVENTS", "job.running,job.succeeded")
    settings = make(tmp_path)
    assert settings.webhook_retry_schedule == [0, 1.5, 60]
    assert settings.webhook_default_events == ["job.running", "job.succeeded"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_RETRY_SCHEDULE", "5,-1"),
        ("WEBHOOK_RETRY_SCHEDULE", ""),
        ("WEBHOOK_DEFAULT_EVENTS", "job.done"),
        ("WEBHOOK_SECRET", "not-a-secret"),
        ("LINK_SIGNING_SECRET", "too-short"),
    ],
)
def test_bad_webhook_settings_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name if name != "WEBHOOK_DEFAULT_EVENTS" else "unknown event"):
        make(tmp_path)


def test_the_sandbox_reads_its_own_variables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SANDBOX_* belong to the sandbox's own settings; the gateway's carry them as one group, with the same
    variable names as ever, and the old flat keywords still set them."""
    monkeypatch.setenv("SANDBOX_PORT", "8123")
    monkeypatch.setenv("SANDBOX_FAULTS", "get:500*1")
    monkeypatch.setenv("SANDBOX", "not json")  # not ours: must not be read as the group
    assert SandboxSettings(_env_file=None).port == 8123
    settings = make(tmp_path)
    assert (settings.sandbox.port, settings.sandbox.faults) == (8123, "get:500*1")
    flat: dict[str, object] = {"sandbox_pending_s": 0.5, "sandbox_port": 9000}
    settings = make(tmp_path, **flat)
    assert (settings.sandbox.pending_s, settings.sandbox.port, settings.sandbox.faults) == (
        0.5,
        9000,
        "get:500*1",
    )
    assert "SANDBOX_PORT" in environment() and "SANDBOX" not in environment()
    assert [n for n in environment() if n.startswith("SANDBOX_")] == [
        f"SANDBOX_{name.upper()}" for name in SandboxSettings.model_fields
    ]


def test_the_sandbox_group_reads_the_same_env_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("SANDBOX_RUNNING_S=3\nPOLL_MAX_INTERVAL_S=30\n")
    settings = Settings(dashscope_credentials_file=tmp_path / "none")
    assert (settings.sandbox.running_s, settings.poll_max_interval_s) == (3.0, 30.0)
    assert make(tmp_path).sandbox.running_s == SandboxSettings.model_fields["running_s"].default


def test_the_redactor_gets_every_secret(tmp_path: Path) -> None:
    link = "link-" + "l" * 32
    settings = make(
        tmp_path, dashscope_api_key="sk-upstream", sandbox_api_key="sk-own-sandbox", link_signing_secret=link
    )
    assert {"sk-upstream", "sk-own-sandbox", link} <= set(settings.secret_values())


def test_the_protocols_own_head_limits_are_the_settings_defaults() -> None:
    """serving.py cannot import the settings (the sandbox uses it too): its defaults are pinned here."""
    assert HttpLimits() == HttpLimits.from_settings(Settings.model_construct())
