"""Stages start without the libraries they do not need: each costs whole seconds of
start-up (README "Stage start-up"), paid by every such stage of the default run."""
import subprocess
import sys

LIGHT = ("inputs", "prepare", "digest", "select")
HEAVY = ("torch", "torchvision", "transformers", "scipy", "skimage")


def test_light_stages_import_no_heavy_library():
    code = (f"import sys\nfor m in {LIGHT!r}: __import__('stages.' + m)\n"
            f"print(','.join(h for h in {HEAVY!r} if h in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


MODEL_STAGES = ("pretrain", "reorder", "finetune", "evaluate")
MODEL_HEAVY = ("transformers", "torch_geometric", "torchvision", "sympy", "torch._dynamo", "scipy")


def test_model_stages_import_torch_and_no_model_library():
    """models/bert.py and models/gat.py replace transformers and torch_geometric (with torch._dynamo and sympy,
    which they pulled in): the model stages start in torch's own import time."""
    code = (f"import sys\nfor m in {MODEL_STAGES!r}: __import__('stages.' + m)\n"
            f"print(','.join(h for h in {MODEL_HEAVY!r} if h in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
