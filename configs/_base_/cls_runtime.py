# Runtime of the stage-1 classifiers: rca_mm's default runtime, with logs
# counted in epochs (the classifiers train with EpochBasedTrainLoop).
_base_ = ['./default_runtime.py']
log_processor = dict(by_epoch=True)
