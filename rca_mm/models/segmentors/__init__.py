"""Stage-2 segmentors."""
