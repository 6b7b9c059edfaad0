"""Drop-in surfaces: other APIs' wire shapes, each a thin translator over the job service (`app/jobs`)."""
