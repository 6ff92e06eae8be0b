import json
import os

import numpy as np
import pytest

from rca_mm.fileio.confusion_json import (load_confusion_matrix,
                                          save_confusion_matrix)

CLASSES = ['background', 'cat', 'dog']


def test_round_trip_one_row_per_line(tmp_path):
    matrix = np.arange(12, dtype=np.int64).reshape(3, 4) * 1000003
    path = str(tmp_path / 'sub' / 'confusion_matrix.json')
    save_confusion_matrix(path, matrix, CLASSES)
    loaded, classes = load_confusion_matrix(path)
    assert classes == CLASSES
    assert loaded.dtype == np.int64
    np.testing.assert_array_equal(loaded, matrix)
    with open(path) as f:
        text = f.read()
    data = json.loads(text)
    assert data['rows'] == 'ground truth'
    assert data['matrix'][1] == [4000012, 5000015, 6000018, 7000021]
    # Each row on a line of its own, nothing else left in the directory.
    assert sum(line.strip().startswith('[') for line in text.splitlines()) == 3
    assert os.listdir(tmp_path / 'sub') == ['confusion_matrix.json']


def test_shape_and_file_errors_name_the_file(tmp_path):
    path = str(tmp_path / 'cm.json')
    with pytest.raises(ValueError, match=r'expected a \(3, 4\) matrix'):
        save_confusion_matrix(path, np.zeros((3, 3)), CLASSES)
    assert not os.path.exists(path)
    with open(path, 'w') as f:
        json.dump(dict(classes=CLASSES, matrix=[[1, 2, 3, 4]]), f)
    with pytest.raises(ValueError, match='cm.json.*shape'):
        load_confusion_matrix(path)
    with open(path, 'w') as f:
        json.dump(dict(mIoU=3), f)
    with pytest.raises(ValueError, match='cm.json.*not a confusion-matrix'):
        load_confusion_matrix(path)
    with open(path, 'w') as f:
        f.write('{"classes": [')
    with pytest.raises(ValueError, match='cm.json.*not JSON'):
        load_confusion_matrix(path)
