"""`GET /v1/models`: the Wan models this gateway takes, with what each accepts (architecture §3.1 "People").

A thin translator over the capability registry (`providers/dashscope/capabilities.py`), the table the
gateway validates requests with, so a form built from this list (the console's New job page) offers
exactly what `POST /v1/jobs` accepts. Each entry also carries OpenAI's `object: "model"` and `owned_by`,
so `openai`'s `client.models.list()` reads it too.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from app.api.auth import PrincipalDep
from app.api.problems import problem_responses
from app.api.routing import StrictRoute
from app.providers.dashscope.capabilities import (
    MODELS,
    NEGATIVE_PROMPT_MAX,
    OUTPUT_FPS,
    SEED_MAX,
    SHOT_TYPES,
    ModelSpec,
    Sound,
    output_size,
)

router = APIRouter(prefix="/v1", tags=["models"], route_class=StrictRoute)

#: The aspect ratios `sizes` lists (the output keeps the reference image's aspect ratio, so these are the
#: frame sizes of images of these shapes).
ASPECTS: tuple[tuple[int, int], ...] = ((16, 9), (9, 16), (1, 1), (4, 3), (3, 4))


class ModelOptions(BaseModel):
    """Which optional fields of `POST /v1/jobs` the model takes."""

    audio: bool = Field(description="`audio` switches sound on or off (wan2.6-i2v-flash only).")
    audio_url: bool = Field(description="`audio_url`, a soundtrack to follow, is taken.")
    shot_type: list[str] = Field(description="Values of `shot_type` (empty: the field is refused).")
    template: bool = Field(description="`template` effect names are taken (wanx2.1 models).")
    last_frame_image: Literal["required", "refused"] = Field(
        description="kf2v models need a `last_frame_image`; the others refuse it."
    )
    prompt_extend: bool = Field(description="`prompt_extend` (DashScope's prompt rewriting) is taken.")
    watermark: bool = Field(description="`watermark` is taken.")
    prompt_max: int = Field(description="Longest `prompt`, in characters.")
    negative_prompt_max: int = Field(description="Longest `negative_prompt`, in characters.")
    seed_max: int = Field(description="Largest `seed`.")
    fps: int = Field(description="The only frame rate the model renders.")


class ModelInfo(BaseModel):
    id: str = Field(description="The model name, as `model` of a job.", examples=["wan2.6-i2v-flash"])
    object: Literal["model"] = "model"
    owned_by: Literal["dashscope"] = "dashscope"
    family: str = Field(description="The upstream rate-limit group: wan2.6, wan2.5, wan2.2, wan2.1, kf2v.")
    kind: Literal["i2v", "kf2v"] = Field(description="`kf2v`: first and last frame; `i2v`: one image.")
    durations: list[int] = Field(description="The `duration`s (seconds) the model renders.")
    resolutions: list[str] = Field(description="The resolution tiers (`resolution`).")
    sizes: list[str] = Field(
        description="`WxH` frame sizes the model outputs, per tier, for 16:9, 9:16, 1:1, 4:3 and 3:4 images "
        "(the output keeps the image's aspect ratio at the tier's pixel count)."
    )
    audio: bool = Field(description="The video has sound by default.")
    default_duration: int
    default_resolution: str
    options: ModelOptions


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelInfo]


def describe(spec: ModelSpec) -> ModelInfo:
    """One registry entry as the API shows it."""
    sizes = dict.fromkeys(
        "{}x{}".format(*output_size(tier, w, h)) for tier in spec.resolutions for w, h in ASPECTS
    )
    return ModelInfo(
        id=spec.name,
        family=spec.family,
        kind="kf2v" if spec.is_kf2v else "i2v",
        durations=list(spec.durations),
        resolutions=list(spec.resolutions),
        sizes=list(sizes),
        audio=spec.has_audio(None),
        default_duration=spec.default_duration,
        default_resolution=spec.default_resolution,
        options=ModelOptions(
            audio=spec.sound is Sound.OPTIONAL,
            audio_url=spec.audio_url,
            shot_type=list(SHOT_TYPES) if spec.shot_type else [],
            template=spec.template,
            last_frame_image="required" if spec.is_kf2v else "refused",
            prompt_extend=True,
            watermark=True,
            prompt_max=spec.prompt_max,
            negative_prompt_max=NEGATIVE_PROMPT_MAX,
            seed_max=SEED_MAX,
            fps=OUTPUT_FPS,
        ),
    )


#: The registry does not change while the process runs.
_LISTING = ModelList(data=[describe(spec) for spec in MODELS.values()])


@router.get(
    "/models",
    response_model=ModelList,
    summary="The Wan models and what each accepts",
    responses=problem_responses(401, 422),
)
async def list_models(caller: PrincipalDep) -> ModelList:
    """Every image-to-video model `POST /v1/jobs` takes (`model`), with its durations, resolution tiers,
    output sizes, sound and options, from the registry the gateway validates requests with."""
    del caller  # authenticated like every /v1 route; the list is the same for every tenant
    return _LISTING
