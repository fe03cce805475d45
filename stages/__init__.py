"""DVC stages (`python -m stages.<name>`) at the top level; what they share in the packages below."""
