"""The training loop with exact resume, checkpoints, distributed setup and lr schedules."""
