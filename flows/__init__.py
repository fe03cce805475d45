"""Prefect orchestration over the DVC DAG (DESIGN.md section 6): orchestration only.

Importing the package sets Prefect's environment defaults (flows/env.py) before Prefect is imported.
"""
from flows.env import apply_defaults

apply_defaults()
