"""Generate SynthVOC, the procedural WSSS benchmark, in PASCAL VOC layout.

Example::

    python tools/dataset_converters/synthvoc.py --out data/synthvoc

See docs/synthvoc.md for what the images contain and why.
"""
from rca_mm.datasets.synthetic import generate_synthvoc
from rca_mm.datasets.synthetic.cli import generator_main


def main(argv=None) -> None:
    generator_main(
        generate_synthvoc,
        prog='synthvoc.py',
        description='Generate SynthVOC in PASCAL VOC layout.',
        counts=[('--num-train', 2000, 'images in train_aug'),
                ('--num-val', 300, 'images in val'),
                ('--num-train-subset', 300,
                 'the first train_aug images that also form train.txt'),
                ('--num-classes', 10, 'foreground classes')],
        size=(128, 128),
        summary='SynthVOC in {out}: {train_aug} train_aug ({train} in '
        'train), {val} val, {num_classes} classes',
        argv=argv)


if __name__ == '__main__':
    main()
