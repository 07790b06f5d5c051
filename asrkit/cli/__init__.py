"""The `attnasr` command line: thin Typer commands over library functions."""
