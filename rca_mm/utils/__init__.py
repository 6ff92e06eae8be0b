from .dist_utils import init_cpu_distributed
from .safe_checkpoint import (UnsafeCheckpointError, register_safe_globals,
                              safe_torch_load)
from .setup_env import register_all_modules

__all__ = [
    'init_cpu_distributed', 'register_all_modules', 'register_safe_globals',
    'safe_torch_load', 'UnsafeCheckpointError'
]
