"""The `hypersearch` command-line tool: `--param` grammar, YAML study files and the commands."""
