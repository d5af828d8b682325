"""`bigbird train`: data, the training loop, evaluation metrics, run state for --resume, torchrun glue."""
