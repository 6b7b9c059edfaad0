"""probe_video on real encoded files, and on files that are not playable videos."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.sandbox.clips import ClipSpec, encode_clip
from app.storage.probe import ProbeError, VideoProbe, content_type_for, probe_video, probe_video_async

from .support import Clip, encode_mp4


def test_probe_reads_what_was_encoded(av_clip: Clip) -> None:
    probe = probe_video(av_clip.path)

    assert probe == VideoProbe(
        duration_s=pytest.approx(2.0, abs=0.05),  # type: ignore[arg-type]
        fps=30.0,
        width=160,
        height=96,
        video_codec="h264",
        has_audio=True,
        audio_codec="aac",
        container="mp4",
    )
    assert probe.content_type == "video/mp4"


async def test_async_probe_of_silent_clip(silent_clip: Clip) -> None:
    probe = await probe_video_async(silent_clip.path)

    assert probe.duration_s == pytest.approx(1.0, abs=0.05)
    assert (probe.fps, probe.width, probe.height) == (30.0, 64, 64)
    assert (probe.has_audio, probe.audio_codec) == (False, None)


def test_probe_without_faststart(tmp_path: Path) -> None:
    path = encode_mp4(tmp_path / "moov-at-end.mp4", width=32, height=32, seconds=1, faststart=False)

    probe = probe_video(path)

    assert (probe.width, probe.height, probe.fps) == (32, 32, 30.0)
    assert probe.duration_s == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "not a readable video"),
        (os.urandom(4096), "not a readable video"),
        (b"<html>oops</html>" * 100, "not a readable video"),
    ],
)
def test_garbage_is_not_a_video(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "dl-1234.part"
    path.write_bytes(content)

    with pytest.raises(ProbeError, match=match) as caught:
        probe_video(path)
    # The message reaches clients (a job's error): FFmpeg's own text would end with the file's path.
    assert str(tmp_path) not in str(caught.value) and ".part" not in str(caught.value)


@pytest.mark.parametrize("fill", [b"\0", b"\xa5"], ids=["zeroed", "overwritten"])
def test_damage_in_the_middle_is_refused(tmp_path: Path, av_clip: Clip, fill: bytes) -> None:
    """A complete file whose middle is gone still opens, demuxes and decodes its first frame; only decoding
    every packet shows that some are no longer video."""
    data = av_clip.data
    start, length = len(data) // 2, len(data) // 6  # whole packets are hit, as 400 KB of a 20 MB file
    path = tmp_path / "damaged.mp4"
    path.write_bytes(data[:start] + fill * length + data[start + length :])

    with pytest.raises(ProbeError, match=r"damaged: \d+ of 60 video packets .*cannot be decoded"):
        probe_video(path)


def test_sandbox_clips_with_sound_are_playable(tmp_path: Path) -> None:
    """What the sandbox serves (H.264 without B-frames, AAC stereo with its priming packet) passes."""
    path = tmp_path / "sandbox.mp4"
    encode_clip(ClipSpec(width=160, height=96, duration=1, audio=True), path)

    probe = probe_video(path)

    assert (probe.width, probe.height, probe.has_audio, probe.audio_codec) == (160, 96, True, "aac")


def test_audio_only_file_has_no_video_stream(tmp_path: Path) -> None:
    path = encode_mp4(tmp_path / "audio.m4a", width=0, height=0, seconds=1, audio=True, video=False)

    with pytest.raises(ProbeError, match="no video stream"):
        probe_video(path)


@pytest.mark.parametrize("faststart", [True, False])
def test_truncated_file_is_refused(tmp_path: Path, av_clip: Clip, faststart: bool) -> None:
    source = encode_mp4(
        tmp_path / "src.mp4", width=160, height=96, seconds=2, audio=True, faststart=faststart
    )
    data = source.read_bytes()
    path = tmp_path / "cut.mp4"
    path.write_bytes(data[: len(data) * 2 // 3])

    with pytest.raises(ProbeError):
        probe_video(path)


def test_missing_file_is_an_os_error_not_a_verdict(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "absent.mp4")


def test_content_types() -> None:
    assert content_type_for("mp4") == "video/mp4"
    assert content_type_for("mov") == "video/quicktime"
    assert content_type_for("something-else") == "application/octet-stream"
