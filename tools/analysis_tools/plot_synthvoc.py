"""Draw SynthVOC samples: image, label, saliency and discriminative parts.

Example (the picture in docs/synthvoc.md)::

    python tools/analysis_tools/plot_synthvoc.py \
        --out docs/images/synthvoc_samples.png
"""
import argparse

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from rca_mm.datasets.synthetic import build_world, render_sample  # noqa: E402
from rca_mm.fileio import voc_palette  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Plot SynthVOC samples.')
    parser.add_argument('--out', required=True, help='PNG file to write')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument('--num', type=int, default=6, help='samples')
    parser.add_argument(
        '--size', type=int, nargs=2, default=(128, 128), metavar=('H', 'W'))
    parser.add_argument('--num-classes', type=int, default=10)
    parser.add_argument('--dpi', type=int, default=80)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    world = build_world(args.num_classes)
    palette = voc_palette()
    cols = ('image', 'label (white: ignore)', 'saliency',
            'discriminative parts')
    fig, axes = plt.subplots(
        args.num, 4, figsize=(8, 2.05 * args.num), dpi=args.dpi, squeeze=False)
    for row in range(args.num):
        # Same generator as image ``row`` of a dataset made with this seed.
        sample = render_sample(world, np.random.default_rng([args.seed, row]),
                               tuple(args.size))
        label = palette[sample['label']]
        label[sample['label'] == 255] = 255
        parts = sample['image'] // 3
        parts[sample['part_mask']] = sample['image'][sample['part_mask']]
        names = ', '.join(world.names[o['cls']] for o in sample['objects'])
        panels = (sample['image'], label, sample['saliency'], parts)
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel, cmap='gray', vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(cols[col], fontsize=9)
        axes[row, 0].set_ylabel(
            f'{names}\non {sample["background"]}', fontsize=8)
    fig.tight_layout()
    fig.canvas.draw()
    # A 256-colour palette keeps the committed PNG small (< 300 KB).
    rgb = Image.fromarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
    rgb.quantize(
        256, method=Image.Quantize.MEDIANCUT).save(
            args.out, optimize=True)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
