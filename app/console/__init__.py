"""The web console (`/console`, and `/` redirects there): server-rendered page shells (Jinja2 templates)
filled by one hand-written ES module (`static/console.js`) from the public API. No CDN, no build step; see
docs/CONSOLE.md. `routes.py` holds the pages, the static files and the console's few JSON helpers."""
