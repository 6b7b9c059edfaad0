"""The built-in DashScope emulator ("sandbox"): a faithful stand-in for the Wan image-to-video API that
the gateway reaches over real loopback HTTP, with real MP4 results and fault injection.

See docs/SANDBOX.md. Entry points: `SandboxConfig`, `SandboxServer` (embedded, in the current event
loop), `serve_forever` (standalone), `create_sandbox_app` (the bare ASGI app).
"""

from app.providers.sandbox.app import create_sandbox_app
from app.providers.sandbox.config import SandboxConfig
from app.providers.sandbox.faults import FaultRule, FaultSet, parse_faults
from app.providers.sandbox.server import SandboxServer, serve_forever
from app.providers.sandbox.stats import SandboxStats

__all__ = [
    "FaultRule",
    "FaultSet",
    "SandboxConfig",
    "SandboxServer",
    "SandboxStats",
    "create_sandbox_app",
    "parse_faults",
    "serve_forever",
]
