"""Stage-1 CAM classifiers."""
