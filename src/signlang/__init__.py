"""signlang: isolated sign-language recognition."""
__version__ = "0.1.0"
