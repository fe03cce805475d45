"""The stages that read and write small files start without the heavy libraries: each costs whole seconds of
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
