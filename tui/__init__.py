"""Front ends: the typer CLI (cli.py, the composition root) and, later, the Textual app."""
