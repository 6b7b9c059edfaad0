"""Drop-in surfaces: other APIs' shapes over the one job service (every job they make is an ordinary job)."""
