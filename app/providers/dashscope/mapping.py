"""Normalized `video.generate` request → DashScope create body, validated against the capability registry.

Decisions (documented in docs/API.md):
- `size` picks the resolution tier by pixel count; an explicit `resolution` wins; a size near no tier the
  model offers is refused, naming `size`. The output keeps the reference image's aspect ratio.
- Wan renders 30 fps only: `fps` must be 30 (or omitted); anything else is refused, naming `fps`.
- `motion_strength` has no upstream equivalent: accepted, never sent, reported in `warnings`.
- Nothing undocumented goes into `parameters`.
"""

from __future__ import annotations

import math
from typing import Any

from app.providers.base import InvalidInput, Submission, VideoRequest
from app.providers.dashscope.capabilities import (
    MODELS,
    NEGATIVE_PROMPT_MAX,
    OUTPUT_FPS,
    SEED_MAX,
    SHOT_TYPES,
    TIER_PIXELS,
    ModelSpec,
    Sound,
    output_size,
    tier_for_size,
)


def _durations_text(spec: ModelSpec) -> str:
    values = spec.durations
    if len(values) == 1:
        return f"only {values[0]} s"
    if values == tuple(range(values[0], values[-1] + 1)):
        return f"whole seconds from {values[0]} to {values[-1]}"
    return ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]} s"


def _resolve_resolution(req: VideoRequest, spec: ModelSpec) -> str:
    offered = ", ".join(spec.resolutions)
    if req.resolution is not None:
        if req.resolution not in spec.resolutions:
            raise InvalidInput("resolution", f"{spec.name} offers {offered}, not {req.resolution}")
        return req.resolution
    if req.size is not None:
        width, height = req.size
        tier = tier_for_size(width, height)
        if tier is None:
            nominal = ", ".join(f"{t} ≈ {p // 1000} k px" for t, p in TIER_PIXELS.items())
            raise InvalidInput(
                "size",
                f"{width}*{height} is near no resolution tier ({nominal}); {spec.name} offers {offered}",
            )
        if tier not in spec.resolutions:
            raise InvalidInput(
                "size", f"{width}*{height} is a {tier} size; {spec.name} offers {offered} (e.g. 1280*720)"
            )
        return tier
    return spec.default_resolution


def _resolve_duration(req: VideoRequest, spec: ModelSpec) -> int:
    if req.duration is None:
        return spec.default_duration
    if not math.isfinite(req.duration) or req.duration != int(req.duration):
        raise InvalidInput("duration", f"{spec.name} accepts {_durations_text(spec)}")
    duration = int(req.duration)
    if duration not in spec.durations:
        raise InvalidInput("duration", f"{spec.name} accepts {_durations_text(spec)}, not {duration}")
    return duration


def _check_options(req: VideoRequest, spec: ModelSpec) -> None:
    if req.template is None and not (req.prompt and req.prompt.strip()):
        raise InvalidInput("prompt", "a prompt is required (unless a template is used)")
    if req.prompt is not None and len(req.prompt) > spec.prompt_max:
        raise InvalidInput(
            "prompt", f"{len(req.prompt)} characters; {spec.name} takes at most {spec.prompt_max}"
        )
    if req.negative_prompt is not None and len(req.negative_prompt) > NEGATIVE_PROMPT_MAX:
        raise InvalidInput(
            "negative_prompt", f"{len(req.negative_prompt)} characters; the limit is {NEGATIVE_PROMPT_MAX}"
        )
    if req.seed is not None and not 0 <= req.seed <= SEED_MAX:
        raise InvalidInput("seed", f"must be between 0 and {SEED_MAX}")
    if req.fps is not None and req.fps != OUTPUT_FPS:
        raise InvalidInput(
            "fps", f"Wan models render {OUTPUT_FPS} fps only; send fps={OUTPUT_FPS} or leave it out"
        )
    if req.audio is not None and spec.sound is not Sound.OPTIONAL:
        kind = "always has sound" if spec.sound is Sound.ALWAYS else "is silent"
        raise InvalidInput("audio", f"{spec.name} {kind}; only wan2.6-i2v-flash has the audio switch")
    if req.audio_url is not None:
        if not spec.audio_url:
            raise InvalidInput("audio_url", f"{spec.name} does not take an audio track")
        if not req.audio_url.lower().startswith(("https://", "http://", "oss://")):
            raise InvalidInput("audio_url", "must be an http(s):// or oss:// URL of a wav or mp3 file")
    if req.shot_type is not None:
        if not spec.shot_type:
            raise InvalidInput("shot_type", f"{spec.name} has no shot_type (wan2.6 models only)")
        if req.shot_type not in SHOT_TYPES:
            raise InvalidInput("shot_type", "must be 'single' or 'multi'")
    if req.template is not None and not spec.template:
        raise InvalidInput("template", f"{spec.name} has no effect templates (wanx2.1 models do)")
    if spec.is_kf2v:
        if req.last_frame_image is None and req.template is None:
            raise InvalidInput("last_frame_image", f"{spec.name} needs a first and a last frame")
    elif req.last_frame_image is not None:
        raise InvalidInput(
            "last_frame_image", f"{spec.name} takes one image; last frames are for kf2v models"
        )


def _warnings(req: VideoRequest, spec: ModelSpec, resolution: str) -> list[str]:
    warnings = []
    if req.motion_strength is not None:
        warnings.append("motion_strength has no DashScope equivalent: it was accepted but not sent upstream")
    if req.template is not None and req.prompt:
        warnings.append("prompt is ignored upstream when a template is used")
    if req.shot_type is not None and req.prompt_extend is False:
        warnings.append("shot_type only takes effect with prompt_extend on")
    if req.audio is False and req.audio_url is not None:
        warnings.append("audio=false wins over audio_url: the video will be silent")
    image = req.reference_image
    if req.size is not None and image.width and image.height:
        expected = output_size(resolution, image.width, image.height)
        width, height = req.size
        if abs(math.log((width / height) / (expected[0] / expected[1]))) > 0.02:
            warnings.append(
                f"the output keeps the reference image's aspect ratio: expect about "
                f"{expected[0]}*{expected[1]}, not {width}*{height}"
            )
    return warnings


def sent_images(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The reference and last-frame images of a create body `build_submission` made, as they were sent
    (a data: URI of the checked bytes, or an oss:// URL): the inverse of its image placement."""
    inputs = body.get("input")
    if not isinstance(inputs, dict):
        return None, None
    first = inputs.get("img_url", inputs.get("first_frame_url"))
    last = inputs.get("last_frame_url")
    return (first if isinstance(first, str) else None), (last if isinstance(last, str) else None)


def build_submission(req: VideoRequest) -> Submission:
    """Validate `req` against its model and build the exact create body. Raises InvalidInput(field)."""
    spec = MODELS.get(req.model)
    if spec is None:
        raise InvalidInput("model", f"unknown model {req.model!r}; known: {', '.join(sorted(MODELS))}")
    _check_options(req, spec)
    resolution = _resolve_resolution(req, spec)
    duration = _resolve_duration(req, spec)

    inputs: dict[str, Any] = {}
    if req.prompt is not None:
        inputs["prompt"] = req.prompt
    if req.negative_prompt:
        inputs["negative_prompt"] = req.negative_prompt
    if spec.is_kf2v:
        inputs["first_frame_url"] = req.reference_image.uri
        if req.last_frame_image is not None:
            inputs["last_frame_url"] = req.last_frame_image.uri
    else:
        inputs["img_url"] = req.reference_image.uri
    if req.audio_url is not None:
        inputs["audio_url"] = req.audio_url
    if req.template is not None:
        inputs["template"] = req.template

    parameters: dict[str, Any] = {"resolution": resolution, "duration": duration}
    for name in ("prompt_extend", "shot_type", "audio", "watermark", "seed"):
        value = getattr(req, name)
        if value is not None:
            parameters[name] = value

    image = req.reference_image
    expected = output_size(resolution, image.width, image.height) if image.width and image.height else None
    return Submission(
        model=spec.name,
        limit_group=spec.family,
        body={"model": spec.name, "input": inputs, "parameters": parameters},
        resolution=resolution,
        duration=duration,
        fps=OUTPUT_FPS,
        has_audio=spec.has_audio(req.audio),
        expected_size=expected,
        warnings=_warnings(req, spec, resolution),
    )
