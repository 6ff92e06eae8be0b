"""Class names of the datasets rca_mm knows, background first.

Label maps use index ``i`` of these tuples as the pixel value (0 =
background, 255 = ignore). Image-level tags are over the foreground classes
only: tag ``j`` (0-based) is label-map class ``j + 1``.
"""

VOC_CLASSES = ('background', 'aeroplane', 'bicycle', 'bird', 'boat',
               'bottle', 'bus', 'car', 'cat', 'chair', 'cow', 'diningtable',
               'dog', 'horse', 'motorbike', 'person', 'pottedplant', 'sheep',
               'sofa', 'train', 'tvmonitor')

# SynthVOC's default 10 object classes (names only echo VOC's; the objects
# are procedural, see docs/synthvoc.md).
SYNTHVOC_CLASSES = ('background', 'aeroplane', 'bird', 'boat', 'car', 'cat',
                    'cow', 'dog', 'horse', 'person', 'train')
