"""NumClassesCheckHook on a segmentor (decode head counts the background)
and on a model it does not check. The CAM classifier's case runs end to
end in tests/test_tools/test_bad_input.py."""
from types import SimpleNamespace

import pytest
import torch.nn as nn

from rca_mm.engine.hooks import NumClassesCheckHook
from ...test_models.test_segmentors.test_crf_encoder_decoder import build


def runner_with(model, classes, data_root):
    loop = SimpleNamespace(
        dataloader=SimpleNamespace(
            dataset=SimpleNamespace(
                metainfo=dict(classes=classes), data_root=data_root)))
    return SimpleNamespace(
        model=model, train_loop=loop, _val_loop=None, test_loop=loop)


def test_decode_head_num_classes_counts_the_background(tmp_path):
    model = build()  # CRFEncoderDecoder, decode_head.num_classes=3
    (tmp_path / 'classes.txt').write_text('background\na\nb\nc\n')
    hook = NumClassesCheckHook()
    hook.before_train(runner_with(model, ('background', 'a', 'b'), ''))
    runner = runner_with(model, ('background', 'a', 'b', 'c'), str(tmp_path))
    with pytest.raises(ValueError) as err:
        hook.before_test(runner)
    msg = str(err.value)
    assert 'model.decode_head.num_classes=3 but the dataset has 4 classes ' \
        'with the background' in msg
    assert f"class file '{tmp_path}/classes.txt'" in msg
    assert 'Set model.decode_head.num_classes=4' in msg


def test_other_models_are_not_checked():
    model = nn.Module()
    model.head = SimpleNamespace(num_classes=5)  # e.g. an ImageClassifier
    NumClassesCheckHook().before_train(
        runner_with(model, ('background', 'a'), ''))
