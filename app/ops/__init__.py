"""Operations: readiness, queue figures and Prometheus metrics, shared by the API and worker processes."""
