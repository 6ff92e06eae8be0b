"""Post-processing: dense CRF."""
