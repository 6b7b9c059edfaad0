"""Parse and check a create-task body against the model's capabilities (§2.2–2.5), before any I/O.

Everything the registry knows is enforced here; media (decoding images, resolving `oss://`) is media.py's
job. The SDK's extra `input` keys (`extend_prompt`, `function`, `prompt: null`) and unknown `input` keys are
ignored, like the real service evidently does; unknown `parameters` keys are ignored unless strict.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.providers.dashscope.capabilities import (
    NEGATIVE_PROMPT_MAX,
    SEED_MAX,
    SHOT_TYPES,
    Endpoint,
    ModelSpec,
    Sound,
    get_model,
)
from app.sandbox.errors import BAD_REQUEST, MODEL_NOT_EXIST, URL_ERROR, ApiError, invalid


@dataclass(frozen=True)
class CreateRequest:
    spec: ModelSpec
    image_url: str  # img_url, or first_frame_url for kf2v
    last_frame_url: str | None
    audio_url: str | None
    prompt: str | None  # already truncated to the model's maximum
    negative_prompt: str | None
    template: str | None
    resolution: str
    duration: int
    prompt_extend: bool
    audio: bool | None
    shot_type: str | None
    watermark: bool
    seed: int | None

    @property
    def has_audio(self) -> bool:
        return self.spec.has_audio(self.audio)

    @property
    def media_urls(self) -> list[str]:
        return [url for url in (self.image_url, self.last_frame_url, self.audio_url) if url]


def _describe(values: tuple[int, ...]) -> str:
    if len(values) > 3 and values == tuple(range(values[0], values[-1] + 1)):
        return f"an integer from {values[0]} to {values[-1]}"
    return "one of " + ", ".join(str(v) for v in values)


def _optional_str(source: Mapping[str, Any], key: str) -> str | None:
    value = source.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(f"{key} is invalid, it must be a string.")
    return value


def _optional_bool(params: Mapping[str, Any], key: str, default: bool) -> bool:
    value = params.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise invalid(f"{key} is invalid, it must be a boolean.")
    return value


def _optional_int(params: Mapping[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    # JSON has one number type: 5.0 means 5, but true must not pass as 1.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{key} is invalid, it must be an integer.")
    return value


def _known_parameters(spec: ModelSpec) -> set[str]:
    known = {"resolution", "duration", "prompt_extend", "watermark", "seed", "shot_type"}
    if spec.sound is Sound.OPTIONAL:
        known.add("audio")
    return known


def _model(body: Mapping[str, Any], endpoint: Endpoint) -> ModelSpec:
    """The model the body names, checked against the path it was posted to."""
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise ApiError(400, "BadRequest.EmptyModel", 'Required parameter "model" missing from request.')
    spec = get_model(name)
    if spec is None:
        raise invalid(MODEL_NOT_EXIST)
    if spec.endpoint is not endpoint:
        raise invalid(URL_ERROR)
    return spec


def parse_create(body: Any, endpoint: Endpoint, *, strict: bool = False) -> CreateRequest:
    if not isinstance(body, dict):
        raise invalid(BAD_REQUEST)
    spec = _model(body, endpoint)
    inputs = body.get("input")
    if not isinstance(inputs, dict) or not inputs:
        raise ApiError(400, "BadRequest.EmptyInput", "Required input parameter missing from request.")
    params = body.get("parameters")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise invalid("parameters is invalid, it must be an object.")

    image_field = "first_frame_url" if spec.is_kf2v else "img_url"
    image_url = _optional_str(inputs, image_field)
    if not image_url:
        raise invalid(f"Field required: input.{image_field}")
    last_frame_url = _optional_str(inputs, "last_frame_url") if spec.is_kf2v else None

    audio_url = _optional_str(inputs, "audio_url")
    if audio_url is not None and not spec.audio_url:
        raise invalid(f"audio_url is invalid, {spec.name} does not accept an audio input.")
    template = _optional_str(inputs, "template")
    if template is not None and not spec.template:
        raise invalid(f"template is invalid, {spec.name} does not support templates.")
    if template == "":
        raise invalid("template is invalid, it must name an effect template.")
    prompt = _optional_str(inputs, "prompt")
    negative_prompt = _optional_str(inputs, "negative_prompt")

    if strict:
        unknown = sorted(set(params) - _known_parameters(spec))
        if unknown:
            raise invalid(f"{unknown[0]} is invalid, {spec.name} does not support this parameter.")

    resolution = params.get("resolution")
    if resolution is None:
        resolution = spec.default_resolution
    if resolution not in spec.resolutions:
        raise invalid(f"resolution is invalid, {spec.name} supports {', '.join(spec.resolutions)}.")
    duration = _optional_int(params, "duration")
    if duration is None:
        duration = spec.default_duration
    if duration not in spec.durations:
        raise invalid(f"duration is invalid, {spec.name} supports {_describe(spec.durations)} seconds.")
    seed = _optional_int(params, "seed")
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise invalid(f"seed is invalid, it must be in [0, {SEED_MAX}].")
    shot_type = _optional_str(params, "shot_type")
    if shot_type is not None:
        if not spec.shot_type:
            raise invalid(f"shot_type is invalid, {spec.name} does not support it.")
        if shot_type not in SHOT_TYPES:
            raise invalid(f"shot_type is invalid, it must be one of {', '.join(SHOT_TYPES)}.")
    audio = _optional_bool(params, "audio", True) if spec.sound is Sound.OPTIONAL else None

    return CreateRequest(
        spec=spec,
        image_url=image_url,
        last_frame_url=last_frame_url or None,
        audio_url=audio_url or None,
        prompt=None if prompt is None else prompt[: spec.prompt_max],
        negative_prompt=None if negative_prompt is None else negative_prompt[:NEGATIVE_PROMPT_MAX],
        template=template,
        resolution=resolution,
        duration=duration,
        prompt_extend=_optional_bool(params, "prompt_extend", True),
        audio=audio,
        shot_type=shot_type,
        watermark=_optional_bool(params, "watermark", False),
        seed=seed,
    )
