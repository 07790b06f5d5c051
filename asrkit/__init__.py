"""asrkit: the library behind the `attnasr` command."""

__version__ = "0.1.0"
