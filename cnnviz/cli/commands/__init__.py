"""Every module here registers ``cnnviz`` subcommands; ``cli.main`` imports them all."""
