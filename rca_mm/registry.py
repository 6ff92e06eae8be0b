"""rca_mm's registries: children of mmsegmentation's, in scope ``rca_mm``.

With ``default_scope = 'rca_mm'`` a config's ``type='X'`` is looked up here
first, then in mmseg's registry and then in mmengine's root, so every mmseg
module is reachable by its plain name. Modules of other OpenMMLab packages are
named with their scope, e.g. ``type='mmpretrain.ResNet'``; mmengine imports
``mmpretrain.registry`` on first use of that prefix.

``locations`` make a registry import its package when it is first searched,
so a config needs no ``custom_imports`` for rca_mm modules.

One registry has no parent: ``PSEUDO_LABEL_RECIPES``, the rules that turn
CAMs into pseudo labels (``CAMClassifier``'s ``model.test_cfg.pseudo_label``
and the threshold sweep build them). mmseg and mmengine have no registry of
that kind to be a child of. ``TASK_UTILS`` was the other candidate, but in the
OpenMMLab libraries it holds the models' helpers (assigners, samplers,
coders), its ``locations`` import ``rca_mm.models``, which the sweep does not
need, and its error messages would not say "pseudo-label recipe". A
parentless registry for a concept of the library's own follows mmpretrain's
``BATCH_AUGMENTS`` and ``TOKENIZER``; it is searched in scope ``rca_mm`` (or
with no default scope set, as in the sweep).
"""
from mmengine.registry import Registry
from mmseg.registry import DATA_SAMPLERS as MMSEG_DATA_SAMPLERS
from mmseg.registry import DATASETS as MMSEG_DATASETS
from mmseg.registry import EVALUATOR as MMSEG_EVALUATOR
from mmseg.registry import HOOKS as MMSEG_HOOKS
from mmseg.registry import LOG_PROCESSORS as MMSEG_LOG_PROCESSORS
from mmseg.registry import LOOPS as MMSEG_LOOPS
from mmseg.registry import METRICS as MMSEG_METRICS
from mmseg.registry import MODEL_WRAPPERS as MMSEG_MODEL_WRAPPERS
from mmseg.registry import MODELS as MMSEG_MODELS
from mmseg.registry import \
    OPTIM_WRAPPER_CONSTRUCTORS as MMSEG_OPTIM_WRAPPER_CONSTRUCTORS
from mmseg.registry import OPTIM_WRAPPERS as MMSEG_OPTIM_WRAPPERS
from mmseg.registry import OPTIMIZERS as MMSEG_OPTIMIZERS
from mmseg.registry import PARAM_SCHEDULERS as MMSEG_PARAM_SCHEDULERS
from mmseg.registry import RUNNER_CONSTRUCTORS as MMSEG_RUNNER_CONSTRUCTORS
from mmseg.registry import RUNNERS as MMSEG_RUNNERS
from mmseg.registry import TASK_UTILS as MMSEG_TASK_UTILS
from mmseg.registry import TRANSFORMS as MMSEG_TRANSFORMS
from mmseg.registry import VISBACKENDS as MMSEG_VISBACKENDS
from mmseg.registry import VISUALIZERS as MMSEG_VISUALIZERS
from mmseg.registry import WEIGHT_INITIALIZERS as MMSEG_WEIGHT_INITIALIZERS

SCOPE = 'rca_mm'


def _child(name: str, parent: Registry, location: str) -> Registry:
    return Registry(
        name, parent=parent, scope=SCOPE, locations=[f'{SCOPE}.{location}'])


# Runners and their parts.
RUNNERS = _child('runner', MMSEG_RUNNERS, 'engine')
RUNNER_CONSTRUCTORS = _child('runner constructor', MMSEG_RUNNER_CONSTRUCTORS,
                             'engine')
LOOPS = _child('loop', MMSEG_LOOPS, 'engine')
HOOKS = _child('hook', MMSEG_HOOKS, 'engine')
LOG_PROCESSORS = _child('log_processor', MMSEG_LOG_PROCESSORS, 'engine')
OPTIMIZERS = _child('optimizer', MMSEG_OPTIMIZERS, 'engine')
OPTIM_WRAPPERS = _child('optim_wrapper', MMSEG_OPTIM_WRAPPERS, 'engine')
OPTIM_WRAPPER_CONSTRUCTORS = _child('optimizer wrapper constructor',
                                    MMSEG_OPTIM_WRAPPER_CONSTRUCTORS, 'engine')
PARAM_SCHEDULERS = _child('parameter scheduler', MMSEG_PARAM_SCHEDULERS,
                          'engine')

# Data.
DATASETS = _child('dataset', MMSEG_DATASETS, 'datasets')
DATA_SAMPLERS = _child('data sampler', MMSEG_DATA_SAMPLERS, 'datasets')
TRANSFORMS = _child('transform', MMSEG_TRANSFORMS, 'datasets')

# Models.
MODELS = _child('model', MMSEG_MODELS, 'models')
MODEL_WRAPPERS = _child('model_wrapper', MMSEG_MODEL_WRAPPERS, 'models')
WEIGHT_INITIALIZERS = _child('weight initializer', MMSEG_WEIGHT_INITIALIZERS,
                             'models')
TASK_UTILS = _child('task util', MMSEG_TASK_UTILS, 'models')

# Evaluation.
METRICS = _child('metric', MMSEG_METRICS, 'evaluation')
EVALUATOR = _child('evaluator', MMSEG_EVALUATOR, 'evaluation')
# How CAMs become a pseudo label (rca_mm.evaluation.recipes); no parent, see
# the module's docstring.
PSEUDO_LABEL_RECIPES = Registry(
    'pseudo-label recipe', scope=SCOPE, locations=[f'{SCOPE}.evaluation'])

# Visualisation.
VISUALIZERS = _child('visualizer', MMSEG_VISUALIZERS, 'visualization')
VISBACKENDS = _child('vis_backend', MMSEG_VISBACKENDS, 'visualization')
