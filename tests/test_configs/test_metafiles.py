"""configs/*/metafile.yaml and model-index.yml, in mmsegmentation's format:
every config is listed once, every listed file exists, the index imports
every metafile, and the SynthVOC numbers are the measured ones of
docs/results_synthvoc.md.

``configs/_base_/`` holds config fragments, not models, and ``configs/smoke/``
a 40-iteration check of the entry points; neither is a model to list. The
ablation configs (``configs/rca/ablations/``, ``configs/synthvoc/ablations/``)
are models of the paper's Sec. 4.2 and are listed.
"""
import glob
import os.path as osp

import pytest
import yaml

from ..conftest import REPO

NOT_MODELS = ('_base_', 'smoke')
METAFILES = sorted(glob.glob(osp.join(REPO, 'configs', '*', 'metafile.yaml')))


def _rel(path):
    return osp.relpath(path, REPO).replace(osp.sep, '/')


def _load(path):
    with open(path) as f:
        return yaml.safe_load(f)


def _models():
    """(metafile, model entry) of every metafile."""
    return [(_rel(path), model) for path in METAFILES
            for model in _load(path)['Models']]


def _configs():
    found = glob.glob(osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    return sorted(
        _rel(p) for p in found if _rel(p).split('/')[1] not in NOT_MODELS)


def test_every_config_is_listed_once_and_every_listed_config_exists():
    listed = [model['Config'] for _, model in _models()]
    assert len(listed) == len(set(listed)), 'a config is listed twice'
    missing = sorted(set(_configs()) - set(listed))
    assert not missing, f'configs in no metafile.yaml: {missing}'
    gone = sorted(c for c in listed if not osp.isfile(osp.join(REPO, c)))
    assert not gone, f'metafiles list configs that do not exist: {gone}'


def test_each_model_sits_in_its_folder_and_is_named_after_its_config():
    names = set()
    for metafile, model in _models():
        folder = metafile.rsplit('/', 1)[0] + '/'
        assert model['Config'].startswith(folder), (metafile, model['Config'])
        stem = osp.splitext(osp.basename(model['Config']))[0]
        assert model['Name'] == stem, (metafile, model['Name'])
        assert model['Name'] not in names, f'{model["Name"]} twice'
        names.add(model['Name'])


def test_collections_readmes_and_code_exist():
    for path in METAFILES:
        meta = _load(path)
        collections = {c['Name']: c for c in meta['Collections']}
        for collection in collections.values():
            for key in ('README', 'Code'):
                assert osp.exists(osp.join(REPO, collection[key])), (
                    f'{_rel(path)}: {key} {collection[key]!r} does not exist')
            assert collection['Paper']['Title'] and collection['Paper']['URL']
        for model in meta['Models']:
            assert model['In Collection'] in collections, (
                f'{_rel(path)}: {model["Name"]} is in the collection '
                f'{model["In Collection"]!r}, which the file does not define')
            assert model['Metadata']['Batch Size'] > 0
            assert model['Metadata']['Architecture']


def test_model_index_imports_every_metafile():
    index = _load(osp.join(REPO, 'model-index.yml'))
    imports = index['Import']
    assert len(imports) == len(set(imports))
    assert sorted(imports) == [_rel(p) for p in METAFILES]
    # The folders of the target layout each have one (docs: ARCHITECTURE).
    folders = {i.split('/')[1] for i in imports}
    assert folders == {
        'cam', 'oaa', 'eps', 'rca', 'deeplabv2', 'synthvoc', 'pretrain'
    }


@pytest.mark.parametrize('metafile', METAFILES, ids=_rel)
def test_each_results_page_names_its_configs(metafile):
    """The folder's README.md is its results page: it names every config
    its metafile lists, and the paper it reproduces."""
    with open(osp.join(osp.dirname(metafile), 'README.md')) as f:
        readme = f.read()
    for model in _load(metafile)['Models']:
        assert osp.basename(model['Config']) in readme, (
            f'{_rel(metafile)}: README.md does not name {model["Config"]}')
    assert '## Citation' in readme and '@' in readme


def test_synthvoc_results_are_the_measured_ones():
    """Each SynthVOC number of the metafile is a 3-seed mean of
    docs/results_synthvoc.md's tables (written there as ``mean ± std``)."""
    with open(osp.join(REPO, 'docs', 'results_synthvoc.md')) as f:
        doc = f.read()
    meta = _load(osp.join(REPO, 'configs', 'synthvoc', 'metafile.yaml'))
    checked = 0
    for model in meta['Models']:
        for result in model.get('Results', []):
            for metric, value in result['Metrics'].items():
                assert f'{value:.2f} ± ' in doc, (model['Name'], metric, value)
                checked += 1
    # 8 methods with both stages, 2 ablations with both stages, 9 with
    # pseudo labels only.
    assert checked == 8 * 4 + 2 * 4 + 9 * 2
