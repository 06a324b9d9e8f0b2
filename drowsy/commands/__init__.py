"""The `drowsy` command line: one module per sub-command, each with `HELP` (one line),
`add_arguments(parser)` and `run(args)` (see drowsy/cli.py).
"""
