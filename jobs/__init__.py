"""One entry point per job; each module wires extract -> transform -> load and nothing else."""
