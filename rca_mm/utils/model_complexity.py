"""FLOPs and parameters of a config's model, by mmengine's ``FlopAnalyzer``.

.. code:: text

    complexity_model(cfg)       the model of cfg.model, weights not loaded,
                                eval mode; an RCA head gets K valid random
                                prototypes per class, so that Eq. 7-8 run
    model_complexity(model, (H, W))
      FlopAnalyzer(model, zeros(1, 3, H, W))     model(x) in 'tensor' mode:
                                CAMClassifier._forward (the final CAMs; for
                                RCA, O of Eq. 10) or EncoderDecoder._forward
                                (the decode head's logits)
      -> flops (total and per module), params

mmengine's analyzer (fvcore's) traces one forward pass and counts one
multiply-add as one flop: convolutions, linear layers, ``matmul``/``bmm``/
``einsum`` and batch norm, plus a few flops per element for bilinear
resizing and adaptive average pooling. ReLU is ignored; other element-wise
operators (softmax, multiplications, additions) and max pooling count 0
and are listed as unsupported. The counts are of the inference forward
pass at batch 1, not of a training step.
"""
import copy
from typing import Dict, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.print_helper import complexity_stats_table
from mmengine.config import Config, ConfigDict

from rca_mm.registry import MODELS


def _without_pretrained(cfg: Union[dict, ConfigDict]) -> None:
    """Drop every ``init_cfg`` of type Pretrained and ``pretrained`` key
    (in place): counting needs no weights."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        if cfg.get('pretrained') is not None:
            cfg['pretrained'] = None
        for value in cfg.values():
            _without_pretrained(value)
    elif isinstance(cfg, (list, tuple)):
        for value in cfg:
            _without_pretrained(value)


def complexity_model(cfg: Config) -> nn.Module:
    """The model of a config, ready to be counted.

    Pretrained weights are not read (every ``init_cfg`` of type
    ``Pretrained`` is dropped) and the model is in eval mode. An RCA head's
    aggregation (``head.aggregation``, Eq. 7-8) gets ``K`` valid random
    prototypes per class (``num_prototypes``; 10 when it is None), the
    state of a trained model; without prototypes ``F' = 0`` and the
    products of Eq. 7-8 would not run.

    Args:
        cfg (Config): the config (``cfg.model`` is built from ``MODELS``
            with ``rca_mm`` as the default scope).

    Returns:
        nn.Module: the model, on the CPU.
    """
    model_cfg = copy.deepcopy(cfg.model)
    _without_pretrained(model_cfg)
    model = MODELS.build(model_cfg)
    model.eval()
    aggregation = getattr(getattr(model, 'head', None), 'aggregation', None)
    if aggregation is not None and hasattr(aggregation, 'set_prototypes'):
        head = model.head
        k = aggregation.num_prototypes or 10
        channels = head.feat_channels  # D
        generator = torch.Generator().manual_seed(0)
        aggregation.set_prototypes(
            torch.randn(head.num_classes, k, channels, generator=generator),
            torch.ones(head.num_classes, k, dtype=torch.bool))
    return model


def input_shape_of(shape: Sequence[int]) -> Tuple[int, int, int]:
    """``(H,)``/``(H, W)``/``(C, H, W)`` -> ``(C, H, W)``, 3 channels by
    default (mmseg's ``--shape``)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) == 1:
        shape = (3, shape[0], shape[0])
    elif len(shape) == 2:
        shape = (3, ) + shape
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f'--shape: expected H, H W or C H W (positive), got '
                         f'{shape}')
    return shape


def _analyzer(model: nn.Module, shape: Tuple[int, int, int]) -> FlopAnalyzer:
    """mmengine's analyzer of ``model`` on one zero image, quiet."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device('cpu')
    analyzer = FlopAnalyzer(model, (torch.zeros(
        (1, ) + shape, device=device), ))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    analyzer.tracer_warnings('none')
    return analyzer


def complexity_table(model: nn.Module,
                     shape: Sequence[int],
                     max_depth: int = 3) -> str:
    """mmengine's per-module table of parameters and flops (Markdown).

    Args:
        model (nn.Module): the model, as for :func:`model_complexity`.
        shape (Sequence[int]): the input, as for :func:`model_complexity`.
        max_depth (int): the deepest modules listed. Default: 3.

    Returns:
        str: the table.
    """
    with torch.no_grad():
        return complexity_stats_table(
            _analyzer(model, input_shape_of(shape)), max_depth=max_depth)


def model_complexity(model: nn.Module,
                     shape: Sequence[int],
                     max_depth: int = 1) -> Dict[str, object]:
    """Count the flops (multiply-adds) and parameters of ``model(x)``.

    Args:
        model (nn.Module): the model; called as ``model(x)`` (an mmseg
            ``BaseSegmentor`` runs its ``_forward``, ``mode='tensor'``).
        shape (Sequence[int]): ``(H,)``, ``(H, W)`` or ``(C, H, W)`` of the
            one input image (batch 1).
        max_depth (int): depth of the per-module breakdown. Default: 1
            (``backbone``, ``head`` / ``decode_head``).

    Returns:
        dict: ``input_shape`` (C, H, W), ``flops`` (int, the total),
        ``params`` (int), ``flops_by_module`` and ``params_by_module``
        (module name -> int, to ``max_depth``, the model itself under
        ``''``; modules without flops are left out of the first) and
        ``unsupported`` (operator -> calls, counted as 0).
    """
    shape = input_shape_of(shape)
    analyzer = _analyzer(model, shape)
    with torch.no_grad():
        total = int(analyzer.total())
        by_module = analyzer.by_module()
        unsupported = dict(analyzer.unsupported_ops())
    params = parameter_count(model)

    def depth(name: str) -> int:
        return 0 if name == '' else name.count('.') + 1

    return dict(
        input_shape=shape,
        flops=total,
        params=int(params['']),
        flops_by_module={
            k: int(v)
            for k, v in by_module.items()
            if depth(k) <= max_depth and (v or k == '')
        },
        params_by_module={
            k: int(v)
            for k, v in params.items() if depth(k) <= max_depth
        },
        unsupported={
            str(k): int(v)
            for k, v in unsupported.items()
        })


def format_count(value: float) -> str:
    """``1234567`` -> ``'1.235 M'`` (powers of 1000, G for 1e9)."""
    for unit, scale in (('T', 1e12), ('G', 1e9), ('M', 1e6), ('K', 1e3)):
        if abs(value) >= scale:
            return f'{value / scale:.3f} {unit}'
    return f'{int(value)}'
