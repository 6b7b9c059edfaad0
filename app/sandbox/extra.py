"""The sandbox's own dependencies, the `sandbox` extra, and the message when they are missing.

numpy (the frames of the result clips) is needed by the emulator only, so it is an extra (`pip install
'wan-gateway[sandbox]'`; `make install` and the image include it; python-multipart, for its upload form, is
a runtime dependency of the gateway itself). Whoever is about to start a sandbox calls `require_extra()`
first: without it the gateway would start and then fail on the first clip.
"""

from __future__ import annotations

import importlib

#: Import name -> distribution name.
EXTRA_MODULES = {"numpy": "numpy"}


class SandboxUnavailable(RuntimeError):
    """The sandbox cannot run in this installation."""


def missing_modules() -> list[str]:
    """The distributions of the extra that cannot be imported."""
    missing = []
    for module, distribution in EXTRA_MODULES.items():
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(distribution)
    return missing


def require_extra(why: str) -> None:
    """Raise `SandboxUnavailable`, saying `why` a sandbox was wanted and how to get one, if the extra is
    not installed."""
    missing = missing_modules()
    if missing:
        raise SandboxUnavailable(
            f"{why}, but the built-in DashScope sandbox is not installed (missing: {', '.join(missing)}). "
            "Install it with `pip install 'wan-gateway[sandbox]'` (`make install` does), or set "
            "DASHSCOPE_API_KEY to use DashScope"
        )
