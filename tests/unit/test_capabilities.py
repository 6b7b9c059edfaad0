"""The capability registry covers every model of docs/PROTOCOL.md §2.5 with its documented limits."""

from __future__ import annotations

import pytest

from app.providers.dashscope.capabilities import MODELS, Endpoint, Sound, output_size, tier_for_size

DOCUMENTED = {
    # name: (endpoint, resolutions, default resolution, durations, sound, prompt max)
    "wan2.6-i2v-flash": (Endpoint.I2V, ("720P", "1080P"), "1080P", tuple(range(2, 16)), Sound.OPTIONAL, 1500),
    "wan2.6-i2v": (Endpoint.I2V, ("720P", "1080P"), "1080P", tuple(range(2, 16)), Sound.ALWAYS, 1500),
    "wan2.6-i2v-us": (Endpoint.I2V, ("720P", "1080P"), "1080P", (5, 10, 15), Sound.ALWAYS, 1500),
    "wan2.5-i2v-preview": (Endpoint.I2V, ("480P", "720P", "1080P"), "1080P", (5, 10), Sound.ALWAYS, 1500),
    "wan2.2-i2v-flash": (Endpoint.I2V, ("480P", "720P", "1080P"), "720P", (5,), Sound.SILENT, 800),
    "wan2.2-i2v-plus": (Endpoint.I2V, ("480P", "1080P"), "1080P", (5,), Sound.SILENT, 800),
    "wanx2.1-i2v-turbo": (Endpoint.I2V, ("480P", "720P"), "720P", (3, 4, 5), Sound.SILENT, 800),
    "wan2.1-i2v-turbo": (Endpoint.I2V, ("480P", "720P"), "720P", (3, 4, 5), Sound.SILENT, 800),
    "wanx2.1-i2v-plus": (Endpoint.I2V, ("720P",), "720P", (5,), Sound.SILENT, 800),
    "wan2.1-i2v-plus": (Endpoint.I2V, ("720P",), "720P", (5,), Sound.SILENT, 800),
    "wan2.2-kf2v-flash": (Endpoint.KF2V, ("480P", "720P", "1080P"), "720P", (5,), Sound.SILENT, 800),
    "wanx2.1-kf2v-plus": (Endpoint.KF2V, ("720P",), "720P", (5,), Sound.SILENT, 800),
    "wan2.1-kf2v-plus": (Endpoint.KF2V, ("720P",), "720P", (5,), Sound.SILENT, 800),
}


def test_every_documented_model_is_registered_and_nothing_else() -> None:
    assert set(MODELS) == set(DOCUMENTED)


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_model_limits_match_the_protocol_document(name: str) -> None:
    spec = MODELS[name]
    endpoint, resolutions, default, durations, sound, prompt_max = DOCUMENTED[name]
    assert (spec.endpoint, spec.resolutions, spec.default_resolution) == (endpoint, resolutions, default)
    assert (spec.durations, spec.sound, spec.prompt_max) == (durations, sound, prompt_max)
    assert spec.default_duration == 5
    assert spec.audio_url == name.startswith(("wan2.6", "wan2.5"))
    assert spec.shot_type == name.startswith("wan2.6")
    assert spec.template == ("2.1" in name)


def test_families_share_the_documented_rate_limits() -> None:
    assert {MODELS[m].family for m in ("wan2.6-i2v-flash", "wan2.6-i2v", "wan2.6-i2v-us")} == {"wan2.6"}
    assert MODELS["wan2.2-kf2v-flash"].family == MODELS["wanx2.1-kf2v-plus"].family == "kf2v"


def test_output_size_follows_the_documented_example() -> None:
    # docs/PROTOCOL.md §2.4: a 750x1000 input at 720P renders 816x1104.
    assert output_size("720P", 750, 1000) == (816, 1104)
    assert output_size("720P", 1280, 720) == (1280, 720)
    width, height = output_size("1080P", 1920, 1080)
    assert width % 16 == 0 and height % 16 == 0


@pytest.mark.parametrize(
    ("size", "tier"),
    [
        ((1280, 720), "720P"),
        ((720, 1280), "720P"),
        ((1920, 1080), "1080P"),
        ((832, 480), "480P"),
        ((1024, 1024), "720P"),
        ((640, 360), None),
        ((3840, 2160), None),
    ],
)
def test_size_maps_to_the_nearest_tier_or_none(size: tuple[int, int], tier: str | None) -> None:
    assert tier_for_size(*size) == tier
