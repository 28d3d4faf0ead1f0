"""One module per command: check, plan, then print (dry run) or apply."""
