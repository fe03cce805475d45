"""Metrics, VQA answer scoring and ITM scoring shared by the stages that evaluate."""
