"""A task's run: its session (lock, log, connections), the workflow executed over it, and what the user reads."""
