"""The DashScope emulator ("sandbox"): a dev/test tool beside the gateway, not part of it. It stands in for
the Wan image-to-video API over real loopback HTTP, with real MP4 results and fault injection; the gateway
starts one when it has no upstream key (`DASHSCOPE_SANDBOX`), and `wan-gateway sandbox` runs one alone.

See docs/SANDBOX.md. It needs the `sandbox` extra (`pip install 'wan-gateway[sandbox]'`; `extra.py`).
Entry points: `settings.SandboxSettings` (its `SANDBOX_*` environment), `config.SandboxConfig`,
`server.SandboxServer` (embedded, in the current event loop), `server.serve_forever` (standalone),
`app.create_sandbox_app` (the bare ASGI app). This file imports nothing, so that reading the settings
never loads the emulator (or numpy).
"""
