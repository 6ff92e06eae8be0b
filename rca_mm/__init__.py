import mmseg
from mmengine.utils import digit_version

from .utils import register_safe_globals
from .version import __version__

MMSEG_MIN, MMSEG_MAX = '1.2.0', '1.3.0'
assert digit_version(MMSEG_MIN) <= digit_version(mmseg.__version__) < \
    digit_version(MMSEG_MAX), (
        f'rca_mm needs mmsegmentation >={MMSEG_MIN},<{MMSEG_MAX}, found '
        f'{mmseg.__version__}; run tools/install.sh')

# Checkpoints load with torch.load(weights_only=True) and this allow-list.
register_safe_globals()

__all__ = ['__version__']
