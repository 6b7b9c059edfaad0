"""Background loops: started by the lifespan, or alone with `python -m app.workers`."""
