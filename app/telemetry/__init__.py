"""What the gateway tells operators besides its logs: Prometheus counters and histograms (`metrics.py`)
and, when OTEL_EXPORTER_OTLP_ENDPOINT is set, OpenTelemetry traces (`tracing.py`). Imports nothing of the
gateway, so every layer can record into it."""
