"""PyTorch modules (no I/O, no database): encoders and scorers used by graphrec's tasks."""
