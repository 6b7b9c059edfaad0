"""The OpenAI Videos projection under `/v1/videos`: `openai` SDK code works with `base_url=<gateway>/v1`.

`translate.py` (pure: OpenAI's create parameters → a `JobCreate`, a job → OpenAI's `Video`), `forms.py`
(the create body, JSON or multipart, as one dict), `errors.py` (OpenAI's `{"error": {...}}` envelope for
every error under the prefix), `schemas.py` (the answers' models, for OpenAPI), `routes.py` (the router).
"""
