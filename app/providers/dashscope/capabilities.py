"""The per-model capability registry: every Wan image-to-video model of docs/PROTOCOL.md §2.5.

Both the gateway's validation (mapping.py) and the sandbox emulator read this table, so what the gateway
accepts and what the emulator enforces cannot drift apart. Sources are cited in the protocol document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Endpoint(StrEnum):
    """Which create path a model uses (§1.2)."""

    I2V = "video-generation"  # POST /services/aigc/video-generation/video-synthesis
    KF2V = "image2video"  # POST /services/aigc/image2video/video-synthesis

    @property
    def path(self) -> str:
        return f"/services/aigc/{self.value}/video-synthesis"


class Sound(StrEnum):
    SILENT = "silent"
    ALWAYS = "always"
    OPTIONAL = "optional"  # wan2.6-i2v-flash: the `audio` parameter switches it (default on)


#: Nominal pixel counts of the resolution tiers. Output keeps the input image's aspect ratio at about
#: this many pixels, both sides floored to multiples of 16 (750x1000 at 720P -> 816x1104, §2.4).
TIER_PIXELS: dict[str, int] = {"480P": 832 * 480, "720P": 1280 * 720, "1080P": 1920 * 1080}
TIER_SR: dict[str, int] = {"480P": 480, "720P": 720, "1080P": 1080}

OUTPUT_FPS = 30
SEED_MAX = 2_147_483_647
NEGATIVE_PROMPT_MAX = 500
SHOT_TYPES = ("single", "multi")


@dataclass(frozen=True)
class ModelSpec:
    name: str
    endpoint: Endpoint
    family: str  # rate-limit group (§7): wan2.6, wan2.5, wan2.2, wan2.1, kf2v
    resolutions: tuple[str, ...]
    default_resolution: str
    durations: tuple[int, ...]
    default_duration: int
    sound: Sound
    audio_url: bool
    shot_type: bool
    template: bool
    prompt_max: int
    usage_style: str  # which `usage` keys the service reports (§3.2)
    actual_prompt: bool  # SUCCEEDED carries actual_prompt when prompt_extend is on (never for 2.6)

    @property
    def is_kf2v(self) -> bool:
        return self.endpoint is Endpoint.KF2V

    def has_audio(self, audio: bool | None) -> bool:
        if self.sound is Sound.ALWAYS:
            return True
        if self.sound is Sound.OPTIONAL:
            return audio is not False
        return False


def _spec(
    name: str,
    *,
    family: str,
    resolutions: tuple[str, ...],
    default_resolution: str,
    durations: tuple[int, ...] = (5,),
    sound: Sound = Sound.SILENT,
    audio_url: bool = False,
    shot_type: bool = False,
    template: bool = False,
    prompt_max: int = 800,
    usage_style: str,
    endpoint: Endpoint = Endpoint.I2V,
) -> ModelSpec:
    return ModelSpec(
        name=name,
        endpoint=endpoint,
        family=family,
        resolutions=resolutions,
        default_resolution=default_resolution,
        durations=durations,
        default_duration=5,
        sound=sound,
        audio_url=audio_url,
        shot_type=shot_type,
        template=template,
        prompt_max=prompt_max,
        usage_style=usage_style,
        actual_prompt=not name.startswith("wan2.6"),
    )


_TWO_TO_FIFTEEN = tuple(range(2, 16))

_SPECS: list[ModelSpec] = [
    _spec(
        "wan2.6-i2v-flash",
        family="wan2.6",
        resolutions=("720P", "1080P"),
        default_resolution="1080P",
        durations=_TWO_TO_FIFTEEN,
        sound=Sound.OPTIONAL,
        audio_url=True,
        shot_type=True,
        prompt_max=1500,
        usage_style="wan2.6",
    ),
    _spec(
        "wan2.6-i2v",
        family="wan2.6",
        resolutions=("720P", "1080P"),
        default_resolution="1080P",
        durations=_TWO_TO_FIFTEEN,
        sound=Sound.ALWAYS,
        audio_url=True,
        shot_type=True,
        prompt_max=1500,
        usage_style="wan2.6",
    ),
    _spec(
        "wan2.6-i2v-us",
        family="wan2.6",
        resolutions=("720P", "1080P"),
        default_resolution="1080P",
        durations=(5, 10, 15),
        sound=Sound.ALWAYS,
        audio_url=True,
        shot_type=True,
        prompt_max=1500,
        usage_style="wan2.6",
    ),
    _spec(
        "wan2.5-i2v-preview",
        family="wan2.5",
        resolutions=("480P", "720P", "1080P"),
        default_resolution="1080P",
        durations=(5, 10),
        sound=Sound.ALWAYS,
        audio_url=True,
        prompt_max=1500,
        usage_style="sr",
    ),
    _spec(
        "wan2.2-i2v-flash",
        family="wan2.2",
        resolutions=("480P", "720P", "1080P"),
        default_resolution="720P",
        usage_style="sr",
    ),
    _spec(
        "wan2.2-i2v-plus",
        family="wan2.2",
        resolutions=("480P", "1080P"),
        default_resolution="1080P",
        usage_style="sr",
    ),
    _spec(
        "wan2.2-kf2v-flash",
        family="kf2v",
        resolutions=("480P", "720P", "1080P"),
        default_resolution="720P",
        usage_style="kf2v-flash",
        endpoint=Endpoint.KF2V,
    ),
]

# The 2.1 models are spelled `wanx2.1-*` in Beijing and `wan2.1-*` in Singapore (§1.1): both are accepted.
for _prefix in ("wanx2.1", "wan2.1"):
    _SPECS += [
        _spec(
            f"{_prefix}-i2v-turbo",
            family="wan2.1",
            resolutions=("480P", "720P"),
            default_resolution="720P",
            durations=(3, 4, 5),
            template=True,
            usage_style="wan2.1",
        ),
        _spec(
            f"{_prefix}-i2v-plus",
            family="wan2.1",
            resolutions=("720P",),
            default_resolution="720P",
            template=True,
            usage_style="wan2.1",
        ),
        _spec(
            f"{_prefix}-kf2v-plus",
            family="kf2v",
            resolutions=("720P",),
            default_resolution="720P",
            template=True,
            usage_style="wan2.1",
            endpoint=Endpoint.KF2V,
        ),
    ]

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}
DEFAULT_MODEL = "wan2.6-i2v-flash"
FAMILIES: tuple[str, ...] = tuple(sorted({spec.family for spec in _SPECS}))


def get_model(name: str) -> ModelSpec | None:
    return MODELS.get(name)


def output_size(resolution: str, image_width: int, image_height: int) -> tuple[int, int]:
    """The frame size the service renders: the image's aspect ratio at the tier's pixel count, both
    sides floored to multiples of 16 (docs/PROTOCOL.md §2.4: 750x1000 at 720P -> 816x1104)."""
    pixels = TIER_PIXELS[resolution]
    aspect = image_width / image_height
    width = int(math.sqrt(pixels * aspect)) // 16 * 16
    height = int(math.sqrt(pixels / aspect)) // 16 * 16
    return max(width, 16), max(height, 16)


#: A `size` maps to the tier whose pixel count is nearest, if within this factor of it.
SIZE_TIER_TOLERANCE = 1.35


def tier_for_size(width: int, height: int) -> str | None:
    """The resolution tier a `WIDTH*HEIGHT` size asks for, or None when it is near no tier."""
    pixels = width * height
    best = min(TIER_PIXELS, key=lambda tier: abs(math.log(pixels / TIER_PIXELS[tier])))
    ratio = pixels / TIER_PIXELS[best]
    if 1 / SIZE_TIER_TOLERANCE <= ratio <= SIZE_TIER_TOLERANCE:
        return best
    return None
