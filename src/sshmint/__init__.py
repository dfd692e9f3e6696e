"""sshmint: API tokens that users mint offline with their SSH keys (exe0/exe1 format)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
