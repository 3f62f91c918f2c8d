"""Training: objectives, optimizer and schedule, auto defaults, checkpoints, and the one loop."""
