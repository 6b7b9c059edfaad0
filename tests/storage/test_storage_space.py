"""StorageSpace: free space under the minimum, and a copy that ran out of space, make storage not ready."""

from __future__ import annotations

from pathlib import Path

from app.storage.space import StorageSpace
from tests.helpers import fill_filesystem, small_filesystem

KIB = 1024


def test_less_free_space_than_the_minimum_is_a_problem(tmp_path: Path) -> None:
    assert StorageSpace(lambda: tmp_path, min_free_bytes=0).problem() is None
    problem = StorageSpace(lambda: tmp_path, min_free_bytes=1 << 62).problem()
    assert problem is not None and problem.startswith("low disk space:")
    assert str(tmp_path) not in problem


def test_a_copy_that_ran_out_of_space_holds_until_there_is_room_or_a_copy_succeeds(tmp_path: Path) -> None:
    with small_filesystem(tmp_path / "disk", 512 * KIB) as disk:
        filler = fill_filesystem(disk, leave=64 * KIB)
        space = StorageSpace(lambda: disk, min_free_bytes=16 * KIB)
        assert space.problem() is None  # above the minimum: a 2-byte probe write would pass too

        space.record_full("cannot write the staging file: No space left on device", 100 * KIB)
        problem = space.problem()
        assert problem is not None and "No space left on device" in problem and "needs 0.1 MiB" in problem

        space.record_success()
        assert space.problem() is None

        space.record_full("cannot write the staging file: No space left on device", 100 * KIB)
        filler.unlink()  # room for the video (and the minimum) again
        assert space.problem() is None
        assert space.failure is None
