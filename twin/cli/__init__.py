"""The `twin` command line (Typer): thin commands, one module per group, composed in twin.cli.main."""
