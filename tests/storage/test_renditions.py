"""`Renditions.ensure`: a poster frame and a sprite sheet rendered from a stored video once, stored beside
it; concurrent first calls render once and publish one whole JPEG; a missing video is `VideoMissing`."""

from __future__ import annotations

import asyncio
import io
import shutil

import pytest
from PIL import Image

from app.storage.local import LocalStorage
from app.storage.renditions import SPRITE_TILE_WIDTH, Renditions, VideoMissing, sprite_grid

from .support import Clip, stored_files


async def test_renditions_are_rendered_once_and_stored_beside_the_video(
    storage: LocalStorage, av_clip: Clip
) -> None:
    staged = storage.staging_dir() / "in.mp4"
    shutil.copyfile(av_clip.path, staged)
    await storage.put_file("job_a.mp4", staged, sha256=av_clip.sha256, content_type="video/mp4")
    renditions = Renditions(storage)

    first, second = await asyncio.gather(
        renditions.ensure("job_a.mp4", "thumbnail"), renditions.ensure("job_a.mp4", "thumbnail")
    )
    assert first == second and first.key == "job_a.mp4.thumbnail.jpg" and first.content_type == "image/jpeg"
    assert renditions.rendered == 1
    thumbnail = Image.open(io.BytesIO((storage.root / first.key).read_bytes()))
    assert thumbnail.format == "JPEG" and thumbnail.size == (av_clip.width, av_clip.height)

    sheet = await renditions.ensure("job_a.mp4", "spritesheet")
    columns, rows = sprite_grid()
    tile_height = round(av_clip.height * SPRITE_TILE_WIDTH / av_clip.width)
    image = Image.open(io.BytesIO((storage.root / sheet.key).read_bytes()))
    assert image.format == "JPEG" and image.size == (columns * SPRITE_TILE_WIDTH, rows * tile_height)
    assert await Renditions(storage).ensure("job_a.mp4", "spritesheet") == sheet  # found, not rendered
    assert stored_files(storage) == ["job_a.mp4", "job_a.mp4.spritesheet.jpg", "job_a.mp4.thumbnail.jpg"]

    await renditions.remove("job_a.mp4")
    assert stored_files(storage) == ["job_a.mp4"]
    with pytest.raises(VideoMissing):
        await renditions.ensure("job_gone.mp4", "thumbnail")
    assert stored_files(storage) == ["job_a.mp4"]  # nothing left in staging
