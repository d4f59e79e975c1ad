"""The `pld` command line: one entry point, subcommands in the style of `ros2 <verb>`."""
