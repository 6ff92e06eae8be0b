"""The CAMs, tags and pseudo label of an image (or a folder of images).

    python demo/image_demo.py IMG CONFIG CHECKPOINT [--tags cat dog]
        [--out-dir outputs] [--device cpu] [--saliency SAL.png]

Without ``--tags`` the tags are the classes the classifier scores above
``model.test_cfg.score_thr`` (0.5). Writes, under ``--out-dir``,
``pseudo_labels/<name>.png`` (label PNG, 255 = ignore),
``cams/<name>.npz`` (``class_ids``, ``cams``, RCA's ``cams_p``, EPS's
``bg``, ``scores``) and ``vis/<name>.png`` (the panels), and prints each
image's tags with their scores.
"""
from argparse import ArgumentParser

from mmengine.config import DictAction

from rca_mm.apis import CAMInferencer


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('img', help='image file or folder of images')
    parser.add_argument('config', help='stage-1 config file')
    parser.add_argument('checkpoint', help='its checkpoint')
    parser.add_argument(
        '--tags',
        nargs='+',
        help='class names of the image (default: predicted)')
    parser.add_argument(
        '--out-dir', default='outputs', help='where to write the outputs')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--saliency',
        help='saliency map (grey PNG of the image size), or a folder of '
        '<name>.png; needed by a saliency recipe')
    parser.add_argument(
        '--score-thr',
        type=float,
        help='score of a predicted tag (default: model.test_cfg.score_thr)')
    parser.add_argument(
        '--batch-size', type=int, default=1, help='images per forward pass')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings, key=value')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    inferencer = CAMInferencer(
        args.config,
        args.checkpoint,
        device=args.device,
        cfg_options=args.cfg_options,
        score_thr=args.score_thr)
    result = inferencer(
        args.img,
        tags=args.tags,
        saliency=args.saliency,
        batch_size=args.batch_size,
        out_dir=args.out_dir)
    predictions = result['predictions']
    if isinstance(predictions, dict):
        predictions = [predictions]
    for pred in predictions:
        how = 'given' if pred['tags_given'] else \
            f'score > {inferencer.score_thr:g}'
        tags = ', '.join(
            f'{name} {pred["scores"][cid - 1]:.2f}'
            for name, cid in zip(pred['tags'], pred['class_ids'])) or 'none'
        print(f'{pred["name"]}: tags ({how}): {tags}')
    print(f'outputs: {args.out_dir}/{{pseudo_labels,cams,vis}}/')


if __name__ == '__main__':
    main()
