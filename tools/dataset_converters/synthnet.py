"""Generate SynthNet, SynthVOC's ImageNet, in mmpretrain's layout.

Example::

    python tools/dataset_converters/synthnet.py --out data/synthnet

See docs/synthnet.md for what the images contain and why.
"""
from rca_mm.datasets.synthetic import generate_synthnet
from rca_mm.datasets.synthetic.cli import generator_main


def main(argv=None) -> None:
    generator_main(
        generate_synthnet,
        prog='synthnet.py',
        description='Generate SynthNet in mmpretrain CustomDataset layout.',
        counts=[('--num-classes', 100, 'classes (50..1050)'),
                ('--num-train-per-class', 80, 'training images per class'),
                ('--num-val-per-class', 10, 'validation images per class')],
        size=(112, 112),
        summary='SynthNet in {out}: {train} train, {val} val, '
        '{num_classes} classes',
        argv=argv)


if __name__ == '__main__':
    main()
