"""The command-line tools, importable for tests as ``tools.<name>``."""
