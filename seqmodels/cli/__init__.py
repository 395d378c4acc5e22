"""The command line: ``seqmodels <command> ...`` (see :mod:`seqmodels.cli.main`)."""
