"""The base dataset of weakly supervised segmentation: images with
image-level tags, and optionally label maps and saliency maps."""
import logging
import os.path as osp
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional

from mmengine.logging import print_log
from mmseg.datasets import BaseSegDataset

from rca_mm.fileio import (label_map_classes, list_stems, read_list_file,
                           read_tag_file, voc_palette)
from rca_mm.registry import DATASETS

_EMPTY_TAG_POLICIES = ('skip', 'keep', 'error')


@DATASETS.register_module()
class WSSSDataset(BaseSegDataset):
    """Images listed in ``ann_file`` with image-level tags.

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

    Unlike mmseg's ``BaseSegDataset``, ``metainfo=dict(classes=...)``
    replaces the class list (no subset remapping: the tags would have to be
    remapped too); a palette is made from the VOC colour map when none is
    given.

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
        **kwargs: the other arguments of ``BaseSegDataset``.
    """
    METAINFO: dict = dict()

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
        # mmengine joins every prefix with data_root and refuses None: keep
        # only the given ones.
        prefix = {k: v for k, v in data_prefix.items() if v is not None}
        self.sal_suffix = sal_suffix
        self.empty_tags = empty_tags
        self.scan_threads = scan_threads
        self.cls_label_file = cls_label_file
        metainfo = self._with_palette(metainfo)
        super().__init__(
            ann_file=ann_file,
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            data_prefix=prefix,
            metainfo=metainfo,
            **kwargs)

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
        if self.cls_label_file:
            tags = self._tags_from_file(names)
        else:
            tags = self._tags_from_masks(names, seg_dir)

        empty = [n for n in names if not tags[n]]
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

        return [
            dict(
                img_path=osp.join(img_dir, n + self.img_suffix),
                seg_map_path=path_or_none(seg_dir, n, self.seg_map_suffix),
                sal_path=path_or_none(sal_dir, n, self.sal_suffix),
                img_name=n,
                img_labels=list(tags[n]),
                label_map=self.label_map,
                reduce_zero_label=self.reduce_zero_label,
                seg_fields=[]) for n in names
        ]

    def get_data_info(self, idx: int) -> dict:
        """The data info of ``idx`` with ``sample_idx`` and
        ``num_fg_classes``."""
        info = super().get_data_info(idx)
        info['num_fg_classes'] = self.num_fg_classes
        return info

    def get_cat_ids(self, idx: int) -> List[int]:
        """The 0-based foreground tags of sample ``idx``."""
        return list(self.get_data_info(idx)['img_labels'])
