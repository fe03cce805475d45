"""Worker functions for the executor tests: importable without torch, so spawned processes start fast."""


def square(x: int) -> int:
    return x * x


def fail_on_three(x: int) -> int:
    if x == 3:
        raise ValueError("shard 3 is bad")
    return x
