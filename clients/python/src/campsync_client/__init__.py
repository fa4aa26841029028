"""campsync_client: the reference offline client of campsync."""

__version__ = "0.1.0"

__all__ = ["__version__"]
