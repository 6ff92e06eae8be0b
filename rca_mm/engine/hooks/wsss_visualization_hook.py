"""mmseg's visualization hook, with the pseudo-label recipe handed over."""
from mmseg.engine.hooks import SegVisualizationHook

from rca_mm.models.classifiers import CAMClassifier
from rca_mm.registry import HOOKS
from rca_mm.utils.dist_utils import unwrap_model
from rca_mm.visualization import WSSSLocalVisualizer


@HOOKS.register_module()
class WSSSVisualizationHook(SegVisualizationHook):
    """``SegVisualizationHook`` for the stage-1 classifiers.

    It draws as mmseg's hook does (every ``interval`` batches, when
    ``draw``; ``tools/test.py --show/--show-dir`` switch it on). Before a
    test run that draws, it gives ``WSSSLocalVisualizer`` the recipe of the
    test evaluator's ``PseudoLabelMetric`` when the visualizer has none of
    its own, so the pseudo-label panel shows the labels the metric writes.
    The arguments are those of ``SegVisualizationHook``.

    Raises:
        TypeError: before drawing a CAM classifier's test outputs, when the
            visualizer is not a ``WSSSLocalVisualizer`` (set
            ``visualizer.type``).
    """

    def before_test(self, runner) -> None:
        if not self.draw:
            return
        visualizer = self._visualizer
        if not isinstance(visualizer, WSSSLocalVisualizer):
            if isinstance(unwrap_model(runner.model), CAMClassifier):
                raise TypeError('drawing a CAM classifier needs '
                                "visualizer.type='WSSSLocalVisualizer', got "
                                f'{type(visualizer).__name__}')
            return
        if visualizer.recipe is not None:
            return
        for metric in runner.test_evaluator.metrics:
            if getattr(metric, 'recipe', None) is not None:
                visualizer.recipe = metric.recipe
                return
