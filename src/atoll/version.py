"""atoll's version: a leaf module, so that code inside the package can name it without
importing the package's ``__init__`` (which imports most of atoll on first use)."""

__all__ = ["__version__"]

__version__ = "0.1.0"
