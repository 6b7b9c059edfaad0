"""video.generate → DashScope body: what is sent, what is refused (naming the field), what is warned."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.providers.base import ImageInput, InvalidInput, VideoRequest
from app.providers.dashscope.mapping import build_submission

IMAGE = ImageInput(uri="data:image/png;base64,AAAA", width=640, height=360, sha256="x", mime="image/png")
BASE = VideoRequest(model="wan2.6-i2v-flash", reference_image=IMAGE, prompt="a cat running")

#: Every `parameters` key the protocol document lists (§2.4). Nothing else may be sent.
DOCUMENTED_PARAMETERS = {"resolution", "duration", "prompt_extend", "shot_type", "audio", "watermark", "seed"}
DOCUMENTED_INPUT = {
    "prompt",
    "negative_prompt",
    "img_url",
    "first_frame_url",
    "last_frame_url",
    "audio_url",
    "template",
}


def refused(req: VideoRequest) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        build_submission(req)
    return info.value


def test_flash_body_is_exactly_the_documented_shape() -> None:
    sub = build_submission(
        replace(
            BASE,
            negative_prompt="blurry",
            duration=5,
            seed=7,
            size=(1280, 720),
            audio=False,
            shot_type="multi",
            prompt_extend=True,
            watermark=False,
            fps=30,
        )
    )
    assert sub.body == {
        "model": "wan2.6-i2v-flash",
        "input": {"prompt": "a cat running", "negative_prompt": "blurry", "img_url": IMAGE.uri},
        "parameters": {
            "resolution": "720P",
            "duration": 5,
            "prompt_extend": True,
            "shot_type": "multi",
            "audio": False,
            "watermark": False,
            "seed": 7,
        },
    }
    assert (sub.limit_group, sub.fps, sub.has_audio, sub.expected_size) == ("wan2.6", 30, False, (1280, 720))


def test_defaults_come_from_the_model() -> None:
    sub = build_submission(BASE)
    assert sub.body["parameters"] == {"resolution": "1080P", "duration": 5}
    assert sub.has_audio  # wan2.6-i2v-flash has sound unless audio=false


def test_motion_strength_fps_and_size_are_never_sent() -> None:
    sub = build_submission(replace(BASE, motion_strength=0.7, fps=30, size=(1280, 720)))
    assert set(sub.body["parameters"]) <= DOCUMENTED_PARAMETERS
    assert set(sub.body["input"]) <= DOCUMENTED_INPUT
    assert "motion_strength" not in str(sub.body)
    assert any("motion_strength" in w for w in sub.warnings)


def test_kf2v_uses_first_and_last_frame() -> None:
    last = ImageInput(uri="https://example.com/last.png")
    sub = build_submission(replace(BASE, model="wan2.2-kf2v-flash", last_frame_image=last))
    assert sub.body["input"]["first_frame_url"] == IMAGE.uri
    assert sub.body["input"]["last_frame_url"] == last.uri
    assert "img_url" not in sub.body["input"]
    assert sub.limit_group == "kf2v"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"duration": 20}, "duration"),
        ({"duration": 4.5}, "duration"),
        ({"model": "wan2.5-i2v-preview", "duration": 7}, "duration"),
        ({"model": "wan2.2-i2v-flash", "duration": 10}, "duration"),
        ({"model": "wan9-i2v"}, "model"),
        ({"size": (640, 360)}, "size"),
        ({"size": (832, 480)}, "size"),  # a 480P size; wan2.6 has no 480P
        ({"resolution": "480P"}, "resolution"),
        ({"fps": 24}, "fps"),
        ({"prompt": "x" * 1501}, "prompt"),
        ({"model": "wan2.2-i2v-flash", "prompt": "x" * 801}, "prompt"),
        ({"prompt": None}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"negative_prompt": "x" * 501}, "negative_prompt"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**31}, "seed"),
        ({"model": "wan2.6-i2v", "audio": False}, "audio"),
        ({"model": "wan2.2-i2v-flash", "audio_url": "https://example.com/a.mp3"}, "audio_url"),
        ({"audio_url": "ftp://example.com/a.mp3"}, "audio_url"),
        ({"model": "wan2.5-i2v-preview", "shot_type": "multi"}, "shot_type"),
        ({"template": "flying"}, "template"),
        ({"model": "wan2.2-kf2v-flash"}, "last_frame_image"),
        ({"last_frame_image": ImageInput(uri="https://example.com/l.png")}, "last_frame_image"),
    ],
)
def test_refusals_name_the_field(change: dict[str, object], field: str) -> None:
    assert refused(replace(BASE, **change)).field == field  # type: ignore[arg-type]


def test_resolution_wins_over_size() -> None:
    sub = build_submission(replace(BASE, size=(1280, 720), resolution="1080P"))
    assert sub.body["parameters"]["resolution"] == "1080P"


def test_portrait_size_picks_the_tier_and_warns_about_the_image_aspect() -> None:
    sub = build_submission(replace(BASE, size=(720, 1280)))
    assert sub.resolution == "720P"
    assert any("aspect ratio" in w and "1280*720" in w for w in sub.warnings)


def test_templates_on_wanx21_need_no_prompt() -> None:
    sub = build_submission(
        replace(BASE, model="wanx2.1-i2v-turbo", prompt=None, template="flying", duration=3)
    )
    assert sub.body["input"]["template"] == "flying"
    assert "prompt" not in sub.body["input"]
    assert sub.body["parameters"]["duration"] == 3


def test_kf2v_template_needs_no_last_frame() -> None:
    sub = build_submission(replace(BASE, model="wanx2.1-kf2v-plus", prompt=None, template="mech1"))
    assert sub.body["input"] == {"first_frame_url": IMAGE.uri, "template": "mech1"}


def test_sound_by_model() -> None:
    assert build_submission(replace(BASE, model="wan2.6-i2v")).has_audio
    assert build_submission(replace(BASE, model="wan2.5-i2v-preview")).has_audio
    assert not build_submission(replace(BASE, model="wan2.2-i2v-plus")).has_audio
