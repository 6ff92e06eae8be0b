"""How the metrics here reduce the ranks' results: once, on the main
process."""
from mmengine.dist import (broadcast_object_list, collect_results,
                           get_world_size, is_main_process)
from mmengine.evaluator import BaseMetric


def compute_on_main(metric: BaseMetric, part: object) -> dict:
    """Gather one ``part`` from each rank, compute the metrics from them on
    the main process and give the result to every rank.

    Clears ``metric.results``, as ``BaseMetric.evaluate`` does.

    Args:
        metric (BaseMetric): the metric, whose ``compute_metrics`` takes
            the list of the ranks' parts; its ``prefix``, when set, starts
            every name it returns.
        part (object): this rank's part (picklable).

    Returns:
        dict: the metrics, on every rank.
    """
    parts = collect_results([part],
                            get_world_size(),
                            metric.collect_device,
                            tmpdir=metric.collect_dir)
    if is_main_process():
        metrics = metric.compute_metrics(parts)
        if metric.prefix:
            metrics = {f'{metric.prefix}/{k}': v for k, v in metrics.items()}
        outputs = [metrics]
    else:
        outputs = [None]
    broadcast_object_list(outputs)
    metric.results.clear()
    return outputs[0]
