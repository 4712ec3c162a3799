"""Meta-learned INR initialisation (the extension): task distribution, torch.func
meta-learners, accelerate training loop, safetensors initialisers."""
from .init import MetaInit, default_init_path, default_mode, load_default_init

__all__ = ["MetaInit", "default_init_path", "default_mode", "load_default_init"]
