"""Files and interop: networks and training checkpoints in safetensors files named as PyTorch
names a module's tensors (files.py, layout.py, safetensors_file.py), and networks to and from
``torch.nn.Sequential`` (torch.py)."""
from .files import Saved, load, load_checkpoint, save
from .torch import from_torch, to_torch

__all__ = ["Saved", "load", "load_checkpoint", "save", "from_torch", "to_torch"]
