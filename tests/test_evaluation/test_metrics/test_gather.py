"""compute_on_main: one part per rank reduced once, the prefix on every
name, the metric's results cleared."""
from typing import Dict, List

from mmengine.evaluator import BaseMetric

from rca_mm.evaluation.metrics.gather import compute_on_main


class SumMetric(BaseMetric):
    """Sums the numbers of each rank's part."""

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(data_samples)

    def compute_metrics(self, results: List[list]) -> Dict[str, int]:
        return dict(
            total=sum(sum(part) for part in results), parts=len(results))


def test_one_part_per_rank_with_the_prefix():
    metric = SumMetric(prefix='sum')
    metric.process(None, [2, 3, 4])
    out = compute_on_main(metric, list(metric.results))
    assert out == {'sum/total': 9, 'sum/parts': 1}
    assert metric.results == []


def test_no_prefix_keeps_the_names():
    metric = SumMetric()
    assert compute_on_main(metric, [5]) == dict(total=5, parts=1)
