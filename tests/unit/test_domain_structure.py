"""The domain's structure, checked on the source: one place per concern stays one place.

- a status change goes through `jobs/transitions.py` (the only caller of `repository.cas_update`);
- advisory locks are taken by `db/locks.py` only (one key scheme);
- the generation fields are defined once (`providers.base.VideoRequest`), and the API body has each;
- the provider seam imports nothing from the job domain.
"""

from __future__ import annotations

import ast
from dataclasses import fields
from pathlib import Path

from app.jobs.schemas import JobCreate
from app.providers.base import VideoRequest

APP = Path(__file__).resolve().parents[2] / "app"


def _sources() -> dict[str, ast.Module]:
    return {str(path.relative_to(APP.parent)): ast.parse(path.read_text()) for path in APP.rglob("*.py")}


def test_only_transitions_writes_jobs_by_compare_and_set() -> None:
    callers = {
        name
        for name, tree in _sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "cas_update"
    }
    assert callers == {"app/jobs/transitions.py"}


def test_advisory_locks_are_taken_in_one_place() -> None:
    takers = {
        name
        for name, tree in _sources().items()
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr.startswith("pg_advisory")
    }
    assert takers == {"app/db/locks.py"}


def test_the_api_body_has_every_generation_field() -> None:
    missing = {f.name for f in fields(VideoRequest)} - set(JobCreate.model_fields)
    assert not missing, f"VideoRequest fields without a JobCreate field: {missing}"


def test_the_provider_seam_imports_nothing_from_the_job_domain() -> None:
    tree = ast.parse((APP / "providers" / "base.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    imported |= {
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    assert not {name for name in imported if name.startswith("app.")}, imported
