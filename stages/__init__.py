"""DVC stages (`python -m stages.<name>`) at the top level; what they share in the packages below."""
import warnings

# Libraries this project imports (spikingjelly, torch_geometric) call the deprecated torch.jit.script at import
# time: one FutureWarning per stage run that says nothing about the run.
warnings.filterwarnings("ignore", message=r".*torch\.jit\.script.*is deprecated", category=FutureWarning)
