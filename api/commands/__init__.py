"""Subcommands of the ``attune`` CLI, one module each (see ``api.cli.COMMANDS``)."""
