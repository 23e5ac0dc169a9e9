"""``CheckedCocoDataset``: mmdet's ``CocoDataset`` that says what it did to
the annotations of its file.

mmdet 3.3's ``CocoDataset.parse_data_info`` drops, without a word, every
annotation whose box lies wholly outside the image, whose width or height is
below 1 px, whose ``area`` is not positive or whose ``category_id`` is not
one of the data set's classes, and keeps a box that reaches beyond the image
as it is. ``load_data_list`` then deletes its COCO object, so what was
dropped can only be seen while the file is parsed. This subclass:

* keeps mmdet's decisions of which annotations become instances (and checks
  that its own reading of them agrees with mmdet's, instance by instance);
* clips a box partly outside the image to the image. mmdet's ``Resize``
  (``clip_object_border=True``, its default) clips every box to the resized
  image right after scaling it, so clipping at parse time gives the boxes the
  training pipeline gives; a pipeline without ``Resize`` now sees them
  clipped too. ``CocoMetric`` with ``ann_file`` set (every config here)
  reads the ground truth from that file, not from the data set, so metrics
  do not change;
* counts every dropped or clipped annotation, and every image left without
  annotations, by kind, and logs one line per data set (rank 0 only) with the
  counts and the first ids of each kind; nothing when there is nothing to
  say;
* with ``strict_annotations=True`` raises :class:`AnnotationError` instead,
  one line naming ``ann_file`` and the first offending ids.

Crowd annotations (``iscrowd=1``) keep mmdet's treatment: checked like the
others, kept ones become instances with ``ignore_flag=1``.
"""
import logging
import os
from collections import OrderedDict

from mmdet.datasets import CocoDataset
from mmengine.dist import get_rank
from mmengine.logging import print_log

# How many ids of each kind the log line and the error name.
SHOWN_IDS = 5

# The kinds, in the order an annotation is checked (an annotation is counted
# once, under the first kind that applies) and reported: key -> (what the
# log says, whether ``strict_annotations=True`` refuses it).
KINDS = OrderedDict([
    # annotations mmdet drops
    ('ignore', ("dropped, 'ignore' set", False)),
    ('nonpositive_size', ('dropped, width or height <= 0', True)),
    ('outside', ('dropped, box wholly outside the image', True)),
    ('zero_area', ("dropped, 'area' <= 0", True)),
    ('subpixel_size', ('dropped, width or height below 1 px', True)),
    ('unknown_category',
     ("dropped, category_id not in the file's categories", True)),
    ('other_category', ("dropped, category not in metainfo's classes",
                        False)),
    # annotations kept, changed
    ('clipped', ('clipped, box partly outside the image', True)),
    # images; one whose boxes were all dropped stays in training as a
    # background image (mmdet's filter_empty_gt looks at the raw file)
    ('no_box_kept', ('images whose every box was dropped', True)),
    ('no_annotations', ('images without annotations of the classes',
                        False)),
    ('filtered', ('images removed by filter_cfg', False)),
])
ANNOTATION_KINDS = tuple(KINDS)[:8]


class AnnotationError(ValueError):
    """An annotation file fails the checks of :class:`CheckedCocoDataset`
    (``strict_annotations=True``), or cannot be read as mmdet reads it."""


class AnnotationAudit:
    """Counts and first ids of each kind of :data:`KINDS` for one file."""

    def __init__(self):
        self.counts = OrderedDict((kind, 0) for kind in KINDS)
        self.ids = {kind: [] for kind in KINDS}
        self.images = 0
        self.annotations = 0

    def add(self, kind: str, id_) -> None:
        self.counts[kind] += 1
        if len(self.ids[kind]) < SHOWN_IDS:
            self.ids[kind].append(id_)

    def faults(self) -> int:
        return sum(n for kind, n in self.counts.items() if KINDS[kind][1])

    def summary(self, only_faults: bool = False) -> str:
        """``<kind>: N (ann 3, 7, ...); ...`` for every kind counted."""
        parts = []
        for kind, n in self.counts.items():
            if n == 0 or (only_faults and not KINDS[kind][1]):
                continue
            shown = ', '.join(str(i) for i in self.ids[kind])
            more = ', ...' if n > len(self.ids[kind]) else ''
            what = 'ann' if kind in ANNOTATION_KINDS else 'image'
            parts.append(f'{KINDS[kind][0]}: {n} ({what} {shown}{more})')
        return '; '.join(parts)


def _is_rank0() -> bool:
    return get_rank() == 0 and os.environ.get('RANK', '0') == '0'


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class CheckedCocoDataset(CocoDataset):
    """mmdet's ``CocoDataset`` whose annotations are checked and reported as
    the data set is built (see the module's docstring).

    Args:
        strict_annotations (bool): raise :class:`AnnotationError` when an
            annotation is dropped for a fault of the file (unknown category,
            width or height below 1 px, ``area`` <= 0, box wholly outside the
            image), a box is clipped or an image loses all its annotations,
            instead of logging it. Annotations with ``ignore`` set, of a
            category left out of ``metainfo``'s classes, images without
            annotations and images removed by ``filter_cfg`` are deliberate:
            logged, never refused. Defaults to False.
        *args, **kwargs: those of mmdet's ``CocoDataset``.
    """

    def __init__(self, *args, strict_annotations: bool = False, **kwargs):
        if not isinstance(strict_annotations, bool):
            raise TypeError('CheckedCocoDataset: strict_annotations must be '
                            f'True or False, not {strict_annotations!r}')
        self.strict_annotations = strict_annotations
        self.annotation_audit = None
        super().__init__(*args, **kwargs)

    # ------------------------------------------------------------ build --
    def full_init(self) -> None:
        if self._fully_initialized:
            return
        self.annotation_audit = AnnotationAudit()
        super().full_init()  # load_data_list -> parse_data_info, filter_data
        self._report(self.annotation_audit)

    def _report(self, audit: AnnotationAudit) -> None:
        if self.strict_annotations and audit.faults():
            raise AnnotationError(
                f'{self.ann_file}: {audit.faults()} annotations / images fail '
                'the checks of CheckedCocoDataset (strict_annotations=True): '
                f'{audit.summary(only_faults=True)}')
        if not any(audit.counts.values()) or not _is_rank0():
            return
        print_log(
            f'annotations of {self.ann_file} ({audit.images} images, '
            f'{audit.annotations} annotations): {audit.summary()}',
            logger='current',
            level=logging.WARNING if audit.faults() else logging.INFO)

    def parse_data_info(self, raw_data_info: dict):
        img = raw_data_info['raw_img_info']
        anns = raw_data_info['raw_ann_info']
        try:
            data_info = super().parse_data_info(raw_data_info)
        except (KeyError, TypeError, ValueError) as err:
            self._name_malformed(anns, img, err)
            raise
        audit = self.annotation_audit
        if audit is None:  # parsed outside full_init (by a subclass, a tool)
            return data_info
        audit.images += 1
        audit.annotations += len(anns)
        kept, faulty = [], False
        for ann in anns:
            kind = self._drop_kind(ann, img)
            if kind is None:
                kept.append(ann)
            else:
                audit.add(kind, ann.get('id'))
                faulty = faulty or KINDS[kind][1]
        instances = data_info['instances']
        if len(kept) != len(instances) or any(
                inst['bbox'] != _xyxy(ann['bbox'])
                for ann, inst in zip(kept, instances)):
            raise RuntimeError(
                "CheckedCocoDataset: its checks disagree with mmdet's "
                f"CocoDataset.parse_data_info on image {img.get('id')} of "
                f'{self.ann_file} ({len(kept)} annotations kept here, '
                f'{len(instances)} by mmdet): update '
                'litv2_openmmlab/datasets/checked_coco.py for this mmdet')
        for ann, inst in zip(kept, instances):
            clipped = _clip(inst['bbox'], img['width'], img['height'])
            if clipped != inst['bbox']:
                inst['bbox'] = clipped
                audit.add('clipped', ann.get('id'))
        if not instances:  # all dropped for a fault, or none to keep
            audit.add('no_box_kept' if faulty else 'no_annotations',
                      img.get('id'))
        return data_info

    def _drop_kind(self, ann: dict, img: dict):
        """None if mmdet keeps ``ann``, else the kind it is counted under.
        Reads the keys in mmdet's order, so it fails nowhere mmdet does not
        (negative and zero sizes first: mmdet drops them as "outside" or as
        below 1 px, whichever it meets first)."""
        if ann.get('ignore', False):
            return 'ignore'
        x1, y1, w, h = ann['bbox']
        if w <= 0 or h <= 0:
            return 'nonpositive_size'
        inter_w = max(0, min(x1 + w, img['width']) - max(x1, 0))
        inter_h = max(0, min(y1 + h, img['height']) - max(y1, 0))
        if inter_w * inter_h == 0:
            return 'outside'
        if ann['area'] <= 0:
            return 'zero_area'
        if w < 1 or h < 1:
            return 'subpixel_size'
        if ann['category_id'] not in self.cat_ids:
            return ('other_category' if ann['category_id'] in self.coco.cats
                    else 'unknown_category')
        return None

    def _name_malformed(self, anns, img: dict, err: Exception) -> None:
        """After mmdet failed on an image: raise one line naming the first
        image or annotation key it could not read (mmdet: a bare
        ``KeyError``); return if none is found."""
        for key in ('width', 'height'):
            if not _number(img.get(key)):
                raise AnnotationError(
                    f"{self.ann_file}: image {img.get('id')} has no number "
                    f'{key!r} ({img.get(key)!r})') from err
        for ann in anns:
            if ann.get('ignore', False):
                continue
            where = f"{self.ann_file}: annotation {ann.get('id')}"
            bbox = ann.get('bbox')
            if not (isinstance(bbox, (list, tuple)) and len(bbox) == 4
                    and all(_number(v) for v in bbox)):
                raise AnnotationError(
                    f"{where} has no 'bbox' [x, y, w, h] ({bbox!r})") from err
            for key in ('area', 'category_id'):
                if key not in ann:
                    raise AnnotationError(
                        f'{where} has no {key!r}') from err

    def filter_data(self):
        kept = super().filter_data()
        if self.annotation_audit is not None and len(kept) < len(
                self.data_list):
            left = {info['img_id'] for info in kept}
            for info in self.data_list:
                if info['img_id'] not in left:
                    self.annotation_audit.add('filtered', info['img_id'])
        return kept


def _xyxy(bbox) -> list:
    x1, y1, w, h = bbox
    return [x1, y1, x1 + w, y1 + h]


def _clip(bbox, width, height) -> list:
    x1, y1, x2, y2 = bbox
    return [max(x1, 0), max(y1, 0), min(x2, width), min(y2, height)]
