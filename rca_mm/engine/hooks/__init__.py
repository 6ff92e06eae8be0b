"""Hooks: RCA's epoch events, OAA accumulation, reliability."""
from .atomic_checkpoint_hook import AtomicCheckpointHook  # noqa: F401
from .nan_guard_hook import NaNGuardHook, NonFiniteLossError  # noqa: F401
from .num_classes_check_hook import NumClassesCheckHook  # noqa: F401
from .oaa_accumulation_hook import OAAAccumulationHook  # noqa: F401
from .rca_hook import RCAHook  # noqa: F401
from .rng_state_hook import RNGStateHook  # noqa: F401
