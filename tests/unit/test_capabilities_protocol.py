"""The capability registry (app/providers/dashscope/capabilities.py) against its source: the capability
matrix of docs/PROTOCOL.md §2.5, parsed from the document.

The gateway validates requests with the registry and the sandbox enforces the same registry, so a wrong
entry would be mirrored and no sandbox test could catch it: this is the oracle. The document is the
repository's docs/PROTOCOL.md (written from `../shared/dashscope-protocol.md`, which is read when the page
is missing: for a git worktree nested deeper, the nearest ancestor's `shared/`); without either the test
fails, saying where it looked: it never skips silently.
The per-family limits (the last column) are pinned too, on both sides: the gateway's defaults
(`UPSTREAM_SUBMIT_RPS`, `UPSTREAM_MAX_INFLIGHT`) and the sandbox's own table (app/sandbox/limits.py).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.config import DEFAULT_MAX_INFLIGHT, DEFAULT_SUBMIT_RPS
from app.providers.dashscope.capabilities import (
    MODELS,
    NEGATIVE_PROMPT_MAX,
    OUTPUT_FPS,
    SEED_MAX,
    Endpoint,
    ModelSpec,
    Sound,
)
from app.sandbox import limits

REPO = Path(__file__).resolve().parents[2]
DOCUMENT = "dashscope-protocol.md"


def protocol_document() -> str:
    searched = [REPO / "docs" / "PROTOCOL.md", *(parent / "shared" / DOCUMENT for parent in REPO.parents)]
    for path in searched:
        if path.is_file():
            return path.read_text()
    pytest.fail(
        f"{DOCUMENT} not found beside the repository (looked at {', '.join(map(str, searched))}); "
        "this test pins the capability registry to it: put the shared documents in ../shared"
    )


@dataclass(frozen=True)
class DocumentedModel:
    names: tuple[str, ...]
    endpoint: Endpoint
    resolutions: tuple[str, ...]
    default_resolution: str
    durations: tuple[int, ...]
    default_duration: int
    sound: Sound
    audio_url: bool
    audio_parameter: bool
    shot_type: bool
    template: bool
    prompt_max: int
    submit_rps: int
    concurrent: int


def _yes(cell: str) -> bool:
    word = cell.replace("*", "").split()[0].lower()
    assert word in ("yes", "no"), cell
    return word == "yes"


def _resolutions(cell: str) -> tuple[tuple[str, ...], str]:
    listed = tuple(re.findall(r"\d+P", cell.split("(")[0]))
    default = re.search(r"\(\**(\d+P)\**\)", cell)
    assert default or len(listed) == 1, cell  # "720P only"
    return listed, default.group(1) if default else listed[0]


def _durations(cell: str) -> tuple[tuple[int, ...], int]:
    first = re.sub(r"^[A-Z/-]+:\s*", "", cell.split(";")[0].strip())  # "BJ/SG: integer 2–15 (5)"
    if (fixed := re.fullmatch(r"fixed (\d+)", first)) is not None:
        return (int(fixed.group(1)),), int(fixed.group(1))
    default = int(re.search(r"\((\d+)\)", first).group(1))  # type: ignore[union-attr]
    if (span := re.match(r"integer (\d+)–(\d+)", first)) is not None:
        return tuple(range(int(span.group(1)), int(span.group(2)) + 1)), default
    return tuple(int(d) for d in re.findall(r"\d+", first.split("(")[0])), default


def _sound(cell: str) -> Sound:
    if cell.startswith("with or without"):
        return Sound.OPTIONAL
    if cell.startswith("always"):
        return Sound.ALWAYS
    assert cell == "silent", cell
    return Sound.SILENT


def documented_models() -> list[DocumentedModel]:
    section = protocol_document().split("### 2.5", 1)[1].split("\n### ", 1)[0]
    models = []
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 12, line
        name, ep, _regions, res, duration, sound, audio_url, audio, shot, template, prompt, rates = cells
        resolutions, default_resolution = _resolutions(res)
        durations, default_duration = _durations(duration)
        rps, concurrent = re.findall(r"(\d+) / (\d+)", rates)[0]  # Beijing first: "BJ 2 / 2; SG 1 / 2"
        models.append(
            DocumentedModel(
                names=tuple(re.findall(r"`([^`]+)`", name)),
                endpoint={"V": Endpoint.I2V, "K": Endpoint.KF2V}[ep],
                resolutions=resolutions,
                default_resolution=default_resolution,
                durations=durations,
                default_duration=default_duration,
                sound=_sound(sound),
                audio_url=_yes(audio_url),
                audio_parameter=_yes(audio),
                shot_type=_yes(shot),
                template=_yes(template),
                prompt_max=int(prompt),
                submit_rps=int(rps),
                concurrent=int(concurrent),
            )
        )
    return models


def test_the_registry_has_exactly_the_documented_models() -> None:
    documented = {name for model in documented_models() for name in model.names}
    assert len(documented) >= 10, "the §2.5 table was not read"
    assert set(MODELS) == documented


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_model_is_as_documented(name: str) -> None:
    model = next(m for m in documented_models() if name in m.names)
    spec: ModelSpec = MODELS[name]
    assert (spec.endpoint, spec.resolutions, spec.default_resolution) == (
        model.endpoint,
        model.resolutions,
        model.default_resolution,
    )
    assert (spec.durations, spec.default_duration) == (model.durations, model.default_duration)
    assert (spec.sound, spec.sound is Sound.OPTIONAL) == (model.sound, model.audio_parameter)
    assert (spec.audio_url, spec.shot_type, spec.template) == (
        model.audio_url,
        model.shot_type,
        model.template,
    )
    assert spec.prompt_max == model.prompt_max
    rates = (model.submit_rps, model.concurrent)
    assert (DEFAULT_SUBMIT_RPS[spec.family], DEFAULT_MAX_INFLIGHT[spec.family]) == rates, "gateway defaults"
    assert (limits.SUBMIT_RPS[spec.family], limits.MAX_RUNNING[spec.family]) == rates, "the sandbox's limits"


def test_what_every_model_shares_is_as_documented() -> None:
    section = protocol_document().split("### 2.5", 1)[1].split("\n### ", 1)[0]
    common = section.split("Common to all:", 1)[1].split("\n\n", 1)[0]
    assert f"negative prompt ≤{NEGATIVE_PROMPT_MAX}" in common
    assert f"`[0, {SEED_MAX}]`" in common
    assert f"at {OUTPUT_FPS} fps" in common
    task_apis = protocol_document().split("## 7.", 1)[1]
    assert f"Task APIs (query, list, cancel): {limits.TASK_API_QPS:g} QPS" in task_apis


def test_without_the_document_the_test_fails_saying_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path / "clone")
    with pytest.raises(pytest.fail.Exception, match=re.escape(str(tmp_path / "shared" / DOCUMENT))):
        protocol_document()
