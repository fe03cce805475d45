"""DVC stages (`python -m stages.<name>`), the shared run harness and the params schema."""
