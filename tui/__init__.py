"""Front ends: the typer CLI (cli.py, the composition root) and the Textual lab (app.py)."""
