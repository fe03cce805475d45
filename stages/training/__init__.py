"""The training loop (`trainer.fit`) with exact resume, checkpoints, distributed setup and lr schedules."""
