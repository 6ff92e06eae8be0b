"""How much each loss term of a trained classifier moves its backbone.

Over the first ``--batches`` training batches (the config's loader and
augmentation, seeded), the gradient of every ``loss*`` term that
``model(mode='loss')`` returns is taken with respect to the backbone's
parameters, one term at a time. Per term it prints the mean value, the mean
gradient norm, that norm's share of the terms' summed norms and the cosine
between the term's gradient and the sum of the other terms' gradients.
For RCA this says whether the contrast term (alpha_1 L_RM of Eq. 11) shapes
the features next to the classification terms. An RCA checkpoint's memory
bank and prototypes load with its weights, and the contrast is on (as after
the warm-up); its bank is also summarised: the mean cosine similarity of
written entries of one class and of different classes, and the Eq. 4 loss
of each entry against the others (no mixup, at the model's contrast
temperature, or the loss's default for a model without contrast) next to
its chance level, log(1 + negatives).

Usage::

    python tools/analysis_tools/loss_gradients.py CONFIG CHECKPOINT \\
        [--batches 20] [--seed 0] [--cfg-options KEY=VALUE ...]
"""
import argparse
import math
import os.path as osp
from typing import Dict, List, Tuple

import torch
from mmengine.config import DictAction
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from torch import Tensor

from rca_mm.apis import init_model
from rca_mm.engine.runner_builder import load_config
from rca_mm.models.losses.region_contrast_loss import (RegionContrastLoss,
                                                       bank_cosine_logits,
                                                       nce_per_query)


def term_gradients(losses: Dict[str, Tensor],
                   params: List[Tensor]) -> Dict[str, Tuple[float, Tensor]]:
    """Each ``loss*`` term's value and flattened gradient on ``params``.

    Terms that do not reach ``params`` give a zero vector; ``'total'`` is
    their sum.
    """
    terms = {k: v for k, v in losses.items() if k.startswith('loss')}
    terms['total'] = sum(terms.values())
    out = {}
    for name, value in terms.items():
        parts = torch.autograd.grad(
            value, params, retain_graph=True,
            allow_unused=True) if value.requires_grad else [None] * len(params)
        out[name] = (value.item(),
                     torch.cat([
                         (torch.zeros_like(p) if g is None else g).flatten()
                         for p, g in zip(params, parts)
                     ]))
    return out


def bank_separation(feats: Tensor, classes: Tensor,
                    temperature: float) -> Dict[str, float]:
    """Class separation of the written bank entries ``feats (S, D)``.

    Returns the mean cosine of pairs of one class and of pairs of different
    classes, and the mean Eq. 4 loss (at ``temperature``) of every entry
    against the others (its own slot excluded) with its chance level, the
    mean of ``log(1 + negatives)`` (all similarities equal).
    """
    feats = feats.float()
    normed = torch.nn.functional.normalize(feats, dim=1)
    cos = normed @ normed.t()
    same = classes[:, None] == classes[None, :]
    off_diag = ~torch.eye(len(classes), dtype=torch.bool)
    loss = []
    chance = []
    for i in range(len(classes)):
        keep = torch.arange(len(classes)) != i
        logits = bank_cosine_logits(feats[i:i + 1], feats[keep], temperature)
        value, valid = nce_per_query(logits, classes[i:i + 1], classes[keep])
        if valid.item():
            loss.append(value.item())
            negatives = int((classes[keep] != classes[i]).sum())
            chance.append(math.log1p(negatives))
    return dict(
        cos_same=cos[same & off_diag].mean().item(),
        cos_other=cos[~same].mean().item(),
        nce=sum(loss) / len(loss) if loss else float('nan'),
        nce_chance=sum(chance) / len(chance) if chance else float('nan'))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Each loss term's gradient on a trained classifier's "
        'backbone')
    parser.add_argument('config', help='the stage-1 config')
    parser.add_argument('checkpoint', help='its trained checkpoint')
    parser.add_argument(
        '--batches',
        type=int,
        default=20,
        help='training batches to average over (default: 20)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, as in tools/train.py')
    args = parser.parse_args()
    if args.batches < 1:
        parser.error(f'--batches must be >= 1, got {args.batches}')
    if not osp.isfile(args.checkpoint):
        parser.error(f'checkpoint {args.checkpoint!r} does not exist')
    return args


def main() -> None:
    args = parse_args()
    torch.manual_seed(args.seed)
    cfg = load_config(args.config, args.cfg_options)
    model = init_model(cfg, args.checkpoint)
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=args.seed)
    head = model.head
    if hasattr(head, 'memory_bank') and not head.memory_bank.written.any():
        raise SystemExit(
            f'{args.checkpoint}: its memory bank is empty, as in a file '
            'written by publish_model.py, and the contrast term and the bank '
            "summary need its entries; give the training checkpoint (the "
            "work dir's epoch_N.pth)")
    if hasattr(head, 'set_contrast'):
        head.set_contrast(True)
    model.train()
    params = [p for p in model.backbone.parameters() if p.requires_grad]

    sums: Dict[str, Dict[str, float]] = {}
    bar = ProgressBar(args.batches)
    for i, batch in enumerate(loader):
        if i == args.batches:
            break
        data = model.data_preprocessor(batch, True)
        losses = model(**data, mode='loss')
        grads = term_gradients(losses, params)
        total = grads['total'][1]
        for name, (value, grad) in grads.items():
            row = sums.setdefault(name, dict(value=0., norm=0., cos=0.))
            row['value'] += value
            row['norm'] += grad.norm().item()
            if name != 'total':
                row['cos'] += torch.nn.functional.cosine_similarity(
                    grad, total - grad, dim=0, eps=1e-30).item()
        bar.update()
    print()
    n = min(args.batches, len(loader))
    terms = [k for k in sums if k != 'total']
    summed = sum(sums[k]['norm'] for k in terms)
    print(f'{args.checkpoint}: {n} batches, backbone gradients')
    print('| term | mean value | mean gradient norm | share of the norms '
          '| cosine with the other terms |')
    print('| --- | --- | --- | --- | --- |')
    for name in terms + ['total']:
        row = sums[name]
        share, cos = '—', '—'
        if name != 'total':
            share = f"{100 * row['norm'] / summed:.1f} %" if summed else '—'
            cos = f"{row['cos'] / n:.3f}"
        print(f"| {name} | {row['value'] / n:.4f} | {row['norm'] / n:.4g} "
              f'| {share} | {cos} |')
    if hasattr(head, 'memory_bank'):
        bank = head.memory_bank
        feats, classes = bank.entries()
        written = classes >= 0
        contrast = head.contrast_loss or RegionContrastLoss()
        stats = bank_separation(feats[written], classes[written],
                                contrast.temperature)
        print(f'bank: {int(written.sum())} written entries; mean cosine '
              f"within a class {stats['cos_same']:.3f}, between classes "
              f"{stats['cos_other']:.3f}; Eq. 4 loss (tau "
              f'{contrast.temperature:g}) per entry against the others '
              f"{stats['nce']:.3f} (chance "
              f"{stats['nce_chance']:.3f})")


if __name__ == '__main__':
    main()
