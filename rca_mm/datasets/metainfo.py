"""Class names of the datasets rca_mm knows, background first, and the
reader of a ``classes.txt`` file of names.

Label maps use index ``i`` of these tuples as the pixel value (0 =
background, 255 = ignore). Image-level tags are over the foreground classes
only: tag ``j`` (0-based) is label-map class ``j + 1``.
"""

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat', 'bottle',
               'bus', 'car', 'cat', 'chair', 'cow', 'diningtable', 'dog',
               'horse', 'motorbike', 'person', 'pottedplant', 'sheep', 'sofa',
               'train', 'tvmonitor')

# SynthVOC's default 10 object classes (names only echo VOC's; the objects
# are procedural, see docs/synthvoc.md).
SYNTHVOC_CLASSES = ('background', 'aeroplane', 'bird', 'boat', 'car', 'cat',
                    'cow', 'dog', 'horse', 'person', 'train')

# MS COCO 2014's 80 object classes in the order of their category ids
# (1..90 with gaps), so label-map class i is the i-th smallest category id:
# the order EPS/RCA and other WSSS papers use. Written by
# tools/dataset_converters/coco2014.py.
COCO_CLASSES = ('background', 'person', 'bicycle', 'car', 'motorcycle',
                'airplane', 'bus', 'train', 'truck', 'boat', 'traffic light',
                'fire hydrant', 'stop sign', 'parking meter', 'bench', 'bird',
                'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear',
                'zebra', 'giraffe', 'backpack', 'umbrella', 'handbag', 'tie',
                'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball',
                'kite', 'baseball bat', 'baseball glove', 'skateboard',
                'surfboard', 'tennis racket', 'bottle', 'wine glass', 'cup',
                'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
                'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza',
                'donut', 'cake', 'chair', 'couch', 'potted plant', 'bed',
                'dining table', 'toilet', 'tv', 'laptop', 'mouse', 'remote',
                'keyboard', 'cell phone', 'microwave', 'oven', 'toaster',
                'sink', 'refrigerator', 'book', 'clock', 'vase', 'scissors',
                'teddy bear', 'hair drier', 'toothbrush')


def read_classes_file(path: str) -> tuple:
    """Class names from ``path``, one per line, background first.

    Raises:
        ValueError: the file lists fewer than two names, or one twice.
    """
    with open(path) as f:
        names = tuple(line.strip() for line in f if line.strip())
    if len(names) < 2:
        raise ValueError(f'{path!r} must list the background and at least '
                         f'one class, one name per line; got {names}')
    if len(set(names)) != len(names):
        raise ValueError(f'{path!r} lists a class name twice (class names '
                         f'must be all distinct): {names}')
    return names
