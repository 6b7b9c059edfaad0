"""Client commands of `wan-gateway`: they call a running gateway over HTTP (`--url`, `--key`) and import
nothing of the server."""
