"""Class-aware heads of the stage-1 classifiers: CAM, EPS and RCA."""
