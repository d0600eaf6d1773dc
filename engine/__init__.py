"""denpo: an async SMS dispatch engine for the Japanese carriers."""

__version__ = "0.1.0"
