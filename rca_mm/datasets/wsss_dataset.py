"""The dataset family of weakly supervised segmentation, both stages:
images with image-level tags and optionally label maps and saliency maps
(stage 1), or images with pseudo-label maps (stage 2)."""
import logging
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset

from rca_mm.fileio import (label_map_classes, list_stems, read_list_file,
                           read_tag_file, voc_palette)
from rca_mm.registry import DATASETS
from .metainfo import read_classes_file

_EMPTY_TAG_POLICIES = ('skip', 'keep', 'error')


@DATASETS.register_module()
class WSSSDataset(BaseSegDataset):
    """Images listed in ``ann_file`` with image-level tags, or with label
    maps alone.

    The tags of an image are over the ``L = len(classes) - 1`` foreground
    classes (tag ``j`` is label-map class ``j + 1``). They come from
    ``cls_label_file`` when it is given, in the OAA/RCA ``train_cls.txt``
    format (``name c1 c2 ...``, 0-based ids), and then label maps may be
    absent altogether; otherwise from the label maps, as the classes present
    other than 0 and ``ignore_index`` (read once, at initialisation, with a
    few threads; nothing is cached on disk).

    .. code:: text

        data_root/
          <img_path>/<name><img_suffix>           e.g. JPEGImages/x.jpg
          <seg_map_path>/<name><seg_map_suffix>   optional label maps
          <sal_path>/<name><sal_suffix>           optional saliency maps
          <ann_file>                              one name per line

    A ``data_prefix`` entry that is ``None``, or whose directory does not
    exist (label maps only when tags come from ``cls_label_file``), gives
    ``None`` paths; a directory that exists must hold a file for every
    listed image. Files are checked at initialisation with one directory
    listing each; decoding errors are raised by the loading transforms.

    Each data info holds ``img_path``, ``seg_map_path`` (or None),
    ``sal_path`` (or None), ``img_name`` (the stem), ``img_labels`` (list of
    0-based foreground ids) and ``seg_fields: []``; ``get_data_info`` adds
    ``sample_idx`` and ``num_fg_classes`` (read by ``PackWSSSInputs``).

    Stage 2 trains a segmentation model on the pseudo labels exported by
    stage 1: the same class with ``with_tags=False`` and the pseudo-label
    directory as ``data_prefix.seg_map_path`` (absolute, or relative to
    ``data_root``; ``--cfg-options
    train_dataloader.dataset.data_prefix.seg_map_path=DIR``). Then no tag is
    collected (no label map is read at initialisation, every listed image is
    kept, data infos have no ``img_labels``), and the label directory must
    hold a label for every listed image: an error counts the missing ones,
    with examples and the key to fix. Each label is checked when its sample
    is loaded, by ``LoadWSSSAnnotations`` (size and values).

    The classes are those of :meth:`resolve_classes`. Unlike mmseg's
    ``BaseSegDataset``, ``metainfo=dict(classes=...)`` replaces the class
    list (no subset remapping: the tags would have to be remapped too); a
    palette is made from the VOC colour map when none is given.

    Args:
        ann_file (str): the image list, relative to ``data_root``.
        cls_label_file (str, optional): a tag file, relative to
            ``data_root``. Default: None (tags from the label maps).
        data_prefix (dict): ``img_path``, ``seg_map_path``, ``sal_path``
            directories relative to ``data_root``. Default:
            ``dict(img_path='', seg_map_path='', sal_path=None)``.
        img_suffix (str): Default: '.jpg'.
        seg_map_suffix (str): Default: '.png'.
        sal_suffix (str): Default: '.png'.
        empty_tags (str): what to do with an image that has no foreground
            tag (a classifier cannot learn from it): ``'skip'`` it with a
            logged warning, ``'keep'`` it, or raise an ``'error'``.
            Default: 'skip'.
        scan_threads (int): threads that read label maps for tags.
            Default: 8.
        with_tags (bool): whether to collect image-level tags (stage 1);
            False for stage 2, which trains on the label maps of
            ``data_prefix.seg_map_path`` alone (then ``cls_label_file``
            must be None). Default: True.
        **kwargs: the other arguments of ``BaseSegDataset``.
    """
    METAINFO: dict = dict()
    #: A file of class names under ``data_root`` that, when it exists,
    #: replaces the classes of ``METAINFO`` (see :meth:`resolve_classes`).
    CLASSES_FILE: Optional[str] = None

    def __init__(self,
                 ann_file: str = '',
                 *,
                 cls_label_file: Optional[str] = None,
                 data_prefix: Optional[Dict[str, Optional[str]]] = None,
                 img_suffix: str = '.jpg',
                 seg_map_suffix: str = '.png',
                 sal_suffix: str = '.png',
                 empty_tags: str = 'skip',
                 scan_threads: int = 8,
                 with_tags: bool = True,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if empty_tags not in _EMPTY_TAG_POLICIES:
            raise ValueError(f'{type(self).__name__}: empty_tags must be one '
                             f'of {_EMPTY_TAG_POLICIES}, got {empty_tags!r}')
        if not ann_file:
            raise ValueError(f'{type(self).__name__}: `ann_file` (the image '
                             f'list) must be given')
        if data_prefix is None:
            data_prefix = dict(img_path='', seg_map_path='', sal_path=None)
        if data_prefix.get('img_path') is None:
            raise ValueError(f'{type(self).__name__}: data_prefix.img_path '
                             f'must be given, got {data_prefix}')
        if not with_tags and not data_prefix.get('seg_map_path'):
            raise ValueError(
                f'{type(self).__name__}: with_tags=False trains on label '
                f'maps: data_prefix.seg_map_path (the pseudo-label '
                f'directory) must be given, got {data_prefix}')
        if not with_tags and cls_label_file:
            raise ValueError(
                f'{type(self).__name__}: cls_label_file {cls_label_file!r} '
                f'is a tag file, and with_tags=False reads no tags: set '
                f'cls_label_file=None')
        # mmengine joins every prefix with data_root and refuses None: keep
        # only the given ones.
        prefix = {k: v for k, v in data_prefix.items() if v is not None}
        self.sal_suffix = sal_suffix
        self.empty_tags = empty_tags
        self.scan_threads = scan_threads
        self.cls_label_file = cls_label_file
        self.with_tags = with_tags
        classes = self.resolve_classes(
            data_root=kwargs.get('data_root') or '', metainfo=metainfo)
        if classes is not None:
            metainfo = dict(metainfo or {}, classes=classes)
        metainfo = self._with_palette(metainfo)
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=prefix,
            metainfo=metainfo,
            **kwargs)

    @classmethod
    def resolve_classes(cls,
                        *,
                        data_root: str = '',
                        metainfo: Optional[dict] = None) -> Optional[tuple]:
        """The class names, background first: ``metainfo['classes']`` when
        given, else the names in ``<data_root>/<CLASSES_FILE>`` (one a
        line) when the class has such a file and it exists, else the
        classes of ``METAINFO``.

        Needs no data beyond that file, so a config's classes can be known
        without building its dataset.

        Args:
            data_root (str): the dataset root. Default: ''.
            metainfo (dict, optional): the dataset's ``metainfo`` argument.
                Default: None.

        Returns:
            tuple[str] | None: the names, or None when none is known.

        Raises:
            ValueError: the names are fewer than two (background and a
                class) or not all distinct.
        """
        classes = (metainfo or {}).get('classes')
        if classes is not None:
            names = tuple(classes)
            if len(names) < 2 or len(set(names)) != len(names):
                raise ValueError(
                    f'{cls.__name__}: metainfo.classes must list the '
                    f'background and at least one class, all distinct; got '
                    f'{names}')
            return names
        if cls.CLASSES_FILE is not None:
            path = osp.join(data_root or '', cls.CLASSES_FILE)
            if osp.isfile(path):
                return read_classes_file(path)
        names = cls.METAINFO.get('classes')
        return None if names is None else tuple(names)

    def _with_palette(self, metainfo: Optional[dict]) -> Optional[dict]:
        """Give user classes without a palette the VOC colour map."""
        if metainfo is None or 'classes' not in metainfo:
            return metainfo
        metainfo = dict(metainfo)
        if 'palette' not in metainfo:
            metainfo['palette'] = voc_palette(len(
                metainfo['classes'])).tolist()
        return metainfo

    @classmethod
    def get_label_map(cls, new_classes=None) -> None:
        """No class remapping: ``metainfo.classes`` replaces the classes."""
        return None

    @property
    def num_fg_classes(self) -> int:
        """``L``, the foreground classes (the length of the tag vectors)."""
        classes = self._metainfo.get('classes')
        if not classes or len(classes) < 2:
            raise ValueError(
                f'{type(self).__name__}: metainfo.classes must list the '
                f'background and at least one class, got {classes}')
        return len(classes) - 1

    def _join_prefix(self) -> None:
        super()._join_prefix()
        if self.cls_label_file and self.data_root and not osp.isabs(
                self.cls_label_file):
            self.cls_label_file = osp.join(self.data_root, self.cls_label_file)

    def _optional_dir(self, key: str, suffix: str, names: List[str],
                      required: bool) -> Optional[str]:
        """The directory of ``data_prefix[key]`` if it is in use, after
        checking it holds a file for every name."""
        directory = self.data_prefix.get(key)
        if directory is None:
            return None
        stems, exists = list_stems(directory, suffix)
        if key == 'seg_map_path' and not self.with_tags:
            self._check_pseudo_labels(directory, exists, names, stems)
            return directory
        if not exists:
            if required:
                raise FileNotFoundError(
                    f'{type(self).__name__}: data_prefix.{key} directory '
                    f'{directory!r} does not exist, and without a '
                    f'cls_label_file the image tags come from the label '
                    f'maps. Give `cls_label_file`, or fix data_root '
                    f'(--cfg-options ...dataset.data_root=DIR)')
            print_log(
                f'{type(self).__name__}: {directory!r} '
                f'(data_prefix.{key}) does not exist; continuing without it',
                logger='current')
            return None
        missing = [n for n in names if n not in stems]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of the {len(names)} '
                f'images listed in {self.ann_file!r} have no file in '
                f'{directory!r} (data_prefix.{key}), e.g. '
                f'{[n + suffix for n in missing[:5]]}. Set '
                f'data_prefix.{key}=None to go without them')
        return directory

    def _check_pseudo_labels(self, directory: str, exists: bool,
                             names: List[str], stems: set) -> None:
        """Raise if the label directory of a dataset without tags (stage 2)
        is absent or lacks a label for a listed image."""
        loader = ('val_dataloader/test_dataloader'
                  if self.test_mode else 'train_dataloader')
        fix = (f'point {loader}.dataset.data_prefix.seg_map_path at the '
               f'directory that holds them')
        if not exists:
            raise FileNotFoundError(
                f'{type(self).__name__}: data_prefix.seg_map_path '
                f'{directory!r} is not a directory: export the pseudo labels '
                f'first (tools/test.py --out), or {fix}')
        missing = [n + self.seg_map_suffix for n in names if n not in stems]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of the {len(names)} '
                f'images listed in {self.ann_file!r} have no label in '
                f'{directory!r} (e.g. {missing[:3]}). Export the missing '
                f'pseudo labels (tools/test.py --out), or {fix}')

    def _tags_from_file(self, names: List[str]) -> Dict[str, List[int]]:
        tags = read_tag_file(self.cls_label_file, self.num_fg_classes)
        missing = [n for n in names if n not in tags]
        if missing:
            raise ValueError(
                f'{type(self).__name__}: {len(missing)} image(s) listed in '
                f'{self.ann_file!r} have no line in the tag file '
                f'{self.cls_label_file!r}, e.g. {missing[:5]}')
        extra = len(tags) - len(names)
        if extra > 0:
            print_log(
                f'{type(self).__name__}: the tag file '
                f'{self.cls_label_file!r} also tags {extra} image(s) not in '
                f'{self.ann_file!r}; they are not used',
                logger='current')
        return tags

    def _tags_from_masks(self, names: List[str],
                         seg_dir: str) -> Dict[str, List[int]]:
        num_classes = self.num_fg_classes + 1
        paths = [osp.join(seg_dir, n + self.seg_map_suffix) for n in names]
        with ThreadPoolExecutor(max(1, self.scan_threads)) as pool:
            tags = list(
                pool.map(
                    lambda p: label_map_classes(p, num_classes, self.
                                                ignore_index), paths))
        return dict(zip(names, tags))

    def load_data_list(self) -> List[dict]:
        """Read the list, check the files and collect the tags.

        Returns:
            list[dict]: one data info per listed image with tags (see the
            class docstring).
        """
        names = read_list_file(self.ann_file, 'image list (ann_file)')
        img_dir = self.data_prefix['img_path']
        stems, exists = list_stems(img_dir, self.img_suffix)
        if not exists:
            raise FileNotFoundError(
                f'{type(self).__name__}: image directory {img_dir!r} '
                f'(data_root + data_prefix.img_path) does not exist')
        missing = [
            osp.join(img_dir, n + self.img_suffix) for n in names
            if n not in stems
        ]
        if missing:
            raise FileNotFoundError(
                f'{type(self).__name__}: {len(missing)} of the {len(names)} '
                f'images listed in {self.ann_file!r} are missing, e.g. '
                f'{missing[:5]}')
        seg_dir = self._optional_dir(
            'seg_map_path',
            self.seg_map_suffix,
            names,
            required=not self.cls_label_file)
        sal_dir = self._optional_dir('sal_path', self.sal_suffix, names, False)
        if not self.with_tags:
            tags = None
        elif self.cls_label_file:
            tags = self._tags_from_file(names)
        else:
            tags = self._tags_from_masks(names, seg_dir)

        empty = [n for n in names if tags is not None and not tags[n]]
        if empty and self.empty_tags == 'error':
            raise ValueError(
                f'{type(self).__name__}: {len(empty)} image(s) of '
                f'{self.ann_file!r} have no foreground tag, e.g. '
                f'{empty[:5]} (set empty_tags="skip" to leave them out)')
        if empty and self.empty_tags == 'skip':
            print_log(
                f'{type(self).__name__}: skipping {len(empty)} image(s) of '
                f'{self.ann_file!r} without any foreground tag, e.g. '
                f'{empty[:5]}',
                logger='current',
                level=logging.WARNING)
            names = [n for n in names if tags[n]]

        def path_or_none(directory, name, suffix):
            return None if directory is None else osp.join(
                directory, name + suffix)

        def data_info(name):
            info = dict(
                img_path=osp.join(img_dir, name + self.img_suffix),
                seg_map_path=path_or_none(seg_dir, name, self.seg_map_suffix),
                sal_path=path_or_none(sal_dir, name, self.sal_suffix),
                img_name=name)
            if tags is not None:
                info['img_labels'] = list(tags[name])
            info.update(
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[])
            return info

        return [data_info(n) for n in names]

    def get_data_info(self, idx: int) -> dict:
        """The data info of ``idx`` with ``sample_idx`` and
        ``num_fg_classes``."""
        info = super().get_data_info(idx)
        info['num_fg_classes'] = self.num_fg_classes
        return info

    def get_cat_ids(self, idx: int) -> List[int]:
        """The 0-based foreground tags of sample ``idx``."""
        if not self.with_tags:
            raise ValueError(f'{type(self).__name__}: with_tags=False '
                             f'collects no tags; set with_tags=True')
        return list(self.get_data_info(idx)['img_labels'])
