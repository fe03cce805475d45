"""Samples and batches for training and evaluation: pretraining pairs, task samples, batch grouping."""
