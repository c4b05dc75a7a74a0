"""The ``redress`` operator command-line tool."""
