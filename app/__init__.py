"""wan-gateway: a self-hosted async HTTP gateway for Wan image-to-video on DashScope."""

__version__ = "0.1.0"
