"""SynthVOC's renderer: labels, parts and co-occurrence of single images."""
import numpy as np

from rca_mm.datasets.metainfo import SYNTHVOC_CLASSES
from rca_mm.datasets.synthetic.synthvoc_render import (BACKGROUNDS,
                                                       PREFERRED_BG_PROB,
                                                       _sample_classes,
                                                       build_world,
                                                       render_sample)

C = 10


def test_metadata_matches_masks_and_parts_are_a_minority():
    world = build_world(C)
    fracs = []
    for i in range(40):
        s = render_sample(world, np.random.default_rng([5, i]), (64, 64))
        tags = set(np.unique(s['label']).tolist()) - {0, 255}
        assert tags == {o['cls'] for o in s['objects']}
        assert 1 <= len(s['objects']) <= 3
        assert s['background'] in BACKGROUNDS
        # The part mask lies on the objects' labelled pixels.
        assert np.all(np.isin(s['label'][s['part_mask']], list(tags)))
        assert s['part_mask'].sum() == sum(o['visible_part']
                                           for o in s['objects'])
        for o in s['objects']:
            assert o['visible'] > 0 and o['visible'] <= o['area']
            fracs.append(o['part_area'] / o['area'])
            # The discriminative part is a minority of the visible object.
            assert o['visible_part'] < 0.5 * o['visible']
    assert max(fracs) < 0.35
    assert 0.08 < np.mean(fracs) < 0.2


def test_cooccurrence_and_frequencies():
    world = build_world(C)
    person = SYNTHVOC_CLASSES.index('person') - 1
    assert world.freq.argmax() == person
    assert 2 < world.freq.max() / world.freq.min() < 6  # mildly long-tailed
    # Each body group is shared by several classes.
    assert np.bincount(world.group).min() >= 3
    rng = np.random.default_rng(0)
    hits, extra, at_home = 0, 0, 0
    for _ in range(3000):
        classes, bg = _sample_classes(rng, world)
        hits += world.preferred_bg[classes[0]] == bg
        extra += len(classes) - 1
        at_home += sum(world.preferred_bg[c] == bg for c in classes[1:])
    # p(preferred) = 0.7 + 0.3 / 5 (a uniform draw may hit it too).
    expected = PREFERRED_BG_PROB + (1 - PREFERRED_BG_PROB) / len(BACKGROUNDS)
    assert abs(hits / 3000 - expected) < 0.03
    # Extra objects come from the scene's classes half of the time; a class
    # drawn by frequency alone prefers it about a quarter of the time.
    base = sum(world.freq[world.preferred_bg == b].sum()**2
               for b in range(len(BACKGROUNDS)))
    assert base < 0.3 and at_home / extra > 0.5


def test_rendering_is_pinned():
    """A seed renders the same pixels as when SynthVOC's tables were
    measured (bump FORMAT_VERSION and re-measure if this must change)."""
    import hashlib
    digest = hashlib.sha256()
    for i in range(4):
        s = render_sample(
            build_world(C), np.random.default_rng([0, i]), (64, 64))
        for key in ('image', 'label', 'saliency'):
            digest.update(s[key].tobytes())
    assert digest.hexdigest() == (
        'ae5cefaf34c6bd8ba26943ec9ee6f7862e145d6ed5a8ebd8b8433866a3355e3f')
