"""`python -m app.config_docs` prints docs/CONFIGURATION.md: every setting, its default, what it does.

A test keeps the committed file in step with `Settings` (and the sandbox's `SandboxSettings`).
"""

from __future__ import annotations

from typing import Any

from pydantic import SecretStr

from app.config import environment

HEADER = """# Configuration

Every setting is an environment variable (a `.env` file in the working directory is read too). This page
is generated from `app/config.py` by `make config-docs`; a test fails when it is stale.

| Variable | Default | What it does |
|---|---|---|
"""


def _default(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, SecretStr):
        return "(secret)"
    if isinstance(value, dict):
        pairs = (f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in value.items())
        return "`" + ",".join(pairs) + "`"
    return f"`{value}`"


def render() -> str:
    rows = []
    for name, field in environment().items():
        default = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{name}` | {_default(default)} | {description} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
