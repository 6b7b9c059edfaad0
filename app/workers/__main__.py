"""`python -m app.workers`: run the background loops alone (see app/workers/process.py)."""

from app.workers.process import main

main()
