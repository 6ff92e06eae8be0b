"""Curves of the scalars an mmengine run logs, for
``tools/analysis_tools/analyze_logs.py``.

Every rca_mm run (``tools/train.py``) writes its scalars twice, as mmengine
does, one JSON object per line:

.. code:: text

    work_dir/<timestamp>/vis_data/scalars.json        LocalVisBackend
    work_dir/<timestamp>/vis_data/<timestamp>.json    LoggerHook, same lines

    {"lr": .., "loss": .., "loss_rsc": .., "epoch": 3, "iter": 250,
     "step": 250}                         training, every LoggerHook interval
    {"multi-label/mAP": 81.2, "step": 3}  validation: step = the epoch for
                                          stage 1 (log_metric_by_epoch),
                                          the iteration for stage 2
    {"mIoU_full": 66.7, ...}              tools/test.py: no step (the run's
                                          summary, work_dir/<ts>/<ts>.json)

A training line is one with ``iter``; its scalars are plotted against the
iteration. The others are metric lines, plotted against their ``step``:
epochs when every metric line's step is the ``epoch`` of the training line
before it (stage 1), else iterations.
"""
import glob
import json
import math
import os.path as osp
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

#: Keys of a training line that are counters, not scalars to plot.
COUNTERS = ('step', 'iter', 'epoch')


class Series(NamedTuple):
    """One logged scalar: its values at their steps, the steps' unit
    (``'iter'`` or ``'epoch'``) and whether it is from training lines
    (else metric lines)."""
    steps: List[float]
    values: List[float]
    unit: str
    train: bool


class ScalarLog(NamedTuple):
    """A parsed log: ``series`` by key, and ``summaries``, the lines
    without a step (a test run's metrics)."""
    path: str
    series: Dict[str, Series]
    summaries: List[dict]


def _run_log(run_dir: str) -> Optional[str]:
    """The JSON log of a run's ``<timestamp>`` directory: a training run's
    ``vis_data/scalars.json``, else a test run's ``<timestamp>.json``."""
    for candidate in (osp.join(run_dir, 'vis_data', 'scalars.json'),
                      osp.join(run_dir,
                               osp.basename(osp.normpath(run_dir)) + '.json')):
        if osp.isfile(candidate):
            return candidate
    return None


def find_scalar_log(path: str) -> str:
    """The JSON log of ``path``: the file itself; a run's log given its
    ``<timestamp>`` directory (``vis_data/scalars.json``, or for a test run
    ``<timestamp>.json``) or ``vis_data`` directory; in a work_dir, the
    newest run's.

    Raises:
        FileNotFoundError: none found; the message names ``path``.
    """
    if osp.isfile(path):
        return path
    if osp.isfile(osp.join(path, 'scalars.json')):
        return osp.join(path, 'scalars.json')
    found = _run_log(path)
    if found is not None:
        return found
    runs = [
        log for log in map(_run_log, glob.glob(osp.join(path, '*', '')))
        if log is not None
    ]
    if not runs:
        raise FileNotFoundError(
            f'{path!r}: no JSON log (a file, or a work_dir with '
            '<timestamp>/vis_data/scalars.json or <timestamp>/'
            '<timestamp>.json)')
    return max(runs, key=lambda p: (osp.getmtime(p), p))


def _is_number(value) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def parse_scalar_lines(lines: Sequence[str], path: str = '<log>') -> ScalarLog:
    """Parse the lines of an mmengine JSON log.

    A last line that is not complete JSON (a run killed while writing) is
    left out; an unreadable line before it is an error. Values that are
    not finite numbers (lists of per-class values, NaN) are left out.

    Args:
        lines (Sequence[str]): the file's lines.
        path (str): the file, for messages. Default: '<log>'.

    Returns:
        ScalarLog: the series and the summaries.

    Raises:
        ValueError: a line before the last is not a JSON object.
    """
    records = []
    lines = [ln for ln in lines if ln.strip()]
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            if number == len(lines):
                break  # cut off mid-write
            raise ValueError(f'{path}:{number}: not JSON ({err})') from None
        if not isinstance(record, dict):
            raise ValueError(f'{path}:{number}: not a JSON object')
        records.append(record)

    # Metric steps are epochs when each is the epoch of the training line
    # before it (and not all of them are also its iteration).
    last_train: Optional[dict] = None
    pairs = []
    for record in records:
        if 'iter' in record:
            last_train = record
        elif 'step' in record:
            pairs.append((record['step'], last_train))
    by_epoch = bool(pairs) and all(
        train is not None and train.get('epoch') == step
        for step, train in pairs) and any(
            train.get('iter') != step for step, train in pairs)
    metric_unit = 'epoch' if by_epoch else 'iter'

    # A name on both kinds of line ('time', 'data_time') is the training
    # lines'; the metric lines' copy is '<key>/val'.
    train_keys = {k for r in records if 'iter' in r for k in r}
    series: Dict[str, Series] = {}
    summaries = []
    for record in records:
        if 'step' not in record:
            summaries.append(record)
            continue
        train = 'iter' in record
        unit = 'iter' if train else metric_unit
        for key, value in record.items():
            if key in COUNTERS or not _is_number(value):
                continue
            if not train and key in train_keys:
                key = f'{key}/val'
            entry = series.setdefault(key, Series([], [], unit, train))
            entry.steps.append(record['step'])
            entry.values.append(float(value))
    return ScalarLog(path, series, summaries)


def load_scalar_log(path: str) -> ScalarLog:
    """:func:`parse_scalar_lines` of the log :func:`find_scalar_log` finds
    at ``path``."""
    path = find_scalar_log(path)
    with open(path) as f:
        return parse_scalar_lines(f.read().splitlines(), path)


def plot_scalar_curves(logs: Sequence[ScalarLog],
                       keys: Sequence[str],
                       *,
                       legend: Optional[Sequence[str]] = None,
                       title: Optional[str] = None,
                       names: Optional[Sequence[str]] = None) -> Figure:
    """Draw ``keys`` of every log, one line per (log, key).

    Scalars against iterations and scalars against epochs go to two axes,
    one above the other; metric lines are drawn with markers. The legend of
    a line is ``<name>_<key>`` (mmseg's; the key alone for one log without
    names), or the given ``legend``.

    Args:
        logs (Sequence[ScalarLog]): parsed logs.
        keys (Sequence[str]): scalars to draw, e.g. ``['loss', 'loss_rsc']``.
        legend (Sequence[str], optional): one label per (log, key), logs
            outer. Default: None.
        title (str, optional): the figure's title. Default: None.
        names (Sequence[str], optional): a name per log for the default
            legend. Default: None (the logs' paths; none for one log).

    Returns:
        matplotlib.figure.Figure: the figure, not attached to pyplot; its
        axes' lines hold exactly the logged steps and values.

    Raises:
        KeyError: a key is in none of the logs (the message lists those
            that are).
        ValueError: ``legend`` has the wrong length.
    """
    keys = list(keys)
    if names is None:
        names = [log.path for log in logs] if len(logs) > 1 else [None]
    for key in keys:
        if not any(key in log.series for log in logs):
            available = sorted({k for log in logs for k in log.series})
            summary = any(key in line for log in logs
                          for line in log.summaries)
            raise KeyError(
                f'{key!r} is in none of the logs; they have {available}' +
                (f'. {key!r} is in a test run\'s summary (no step to plot '
                 'against; --list prints it)' if summary else ''))
    if legend is not None and len(legend) != len(logs) * len(keys):
        raise ValueError(
            f'--legend: {len(legend)} labels for {len(logs)} logs x '
            f'{len(keys)} keys; give {len(logs) * len(keys)}')
    lines: List[Tuple[str, str, Series]] = []
    for i, log in enumerate(logs):
        for j, key in enumerate(keys):
            if key not in log.series:
                continue
            if legend is not None:
                label = legend[i * len(keys) + j]
            else:
                label = key if names[i] is None else f'{names[i]}_{key}'
            lines.append((log.series[key].unit, label, log.series[key]))
    units = [u for u in ('iter', 'epoch') if any(u == x[0] for x in lines)]
    fig = Figure(figsize=(8, 3.2 * len(units) + 0.6), dpi=100)
    axes = fig.subplots(len(units), 1, squeeze=False)[:, 0]
    for ax, unit in zip(axes, units):
        for line_unit, label, series in lines:
            if line_unit != unit:
                continue
            ax.plot(
                series.steps,
                series.values,
                label=label,
                marker=None if series.train else 'o',
                linewidth=1.0)
        ax.set_xlabel(unit)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if title is not None:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
