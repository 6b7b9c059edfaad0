"""Upstream video services: the neutral seam (base.py), DashScope, and the DashScope sandbox emulator."""
