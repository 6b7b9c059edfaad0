"""The DashScope-compatible facade under `/api/v1`: the official `dashscope` SDK, the Vercel AI SDK's
Alibaba provider and other DashScope-native clients work against the gateway by changing their base URL.

`routes.py` (the endpoints), `wire.py` (DashScope's bodies in, its envelopes out), `errors.py` (every error
as `{request_id, code, message}` with DashScope's codes), `uploads.py` (the temporary-upload flow that
backs the SDK's `file://` inputs). Every task is an ordinary job of `app/jobs`.
"""
