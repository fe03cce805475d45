"""What every stage shares: the command-line harness, the params schema, artifact paths, model building."""
