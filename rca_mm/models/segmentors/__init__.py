"""Stage-2 segmentors."""
from .crf_encoder_decoder import CRFEncoderDecoder  # noqa: F401
