"""Parsers of the annotation files that video datasets ship, one module per format, each giving ``VideoRecord``s.

========================  ====================================================================================
module                    format
========================  ====================================================================================
:mod:`.kinetics`          Kinetics-400/600/700 CSVs
:mod:`.ucf101`            UCF-101 ``classInd.txt`` and train/test lists
:mod:`.hmdb51`            HMDB-51 split files
:mod:`.ssv2`              Something-Something v2 ``labels.json`` and annotation JSON
:mod:`.lists`             mmaction2-style ``<path> <label>`` lists, ``id,name`` label CSVs, our manifests' header
:mod:`.class_folders`     one folder per class (a user's own videos)
:mod:`.common`            the error type, file reading, case-insensitive paths, missing-file checks and reasons
========================  ====================================================================================

Every parser is a pure function of the files it reads (plus, for Kinetics, which video files exist).
Malformed input raises :class:`AnnotationError`, whose message names the file and line and says what
to do. Every record's ``meta["source"]`` is ``"<file>:<line>"`` so a bad sample can be traced back.

Labels are 0-based indices into the dataset's class-name list; ``-1`` means "no label" and only comes from
files that hold no ground truth at all (a Kinetics ``test.csv`` without labels, SSv2's ``test.json``); a file
whose rows are labelled except some is an error naming the first unlabelled row. Whether the labels fit the
run's class list (and whether an unlabelled split may be used: only for prediction) is checked once, by
:meth:`~alt_lightning.datamodules.base.VideoDataModule.dataset`.

Data files are data: none of the official formats read here (Kinetics CSVs, UCF-101 ``classInd.txt`` and lists,
HMDB-51 split files, SSv2 JSON, mmaction2-style ``path label`` lists, ``id,name`` CSVs) has a comment syntax,
and real names start with ``#`` (HMDB-51's ``#122_Cleaning_Up_The_Beach_In_Chiba__Japan_catch_...avi``), so no
line is skipped as a comment. Blank lines are skipped (they carry no record). The one ``#`` syntax is the
header of this package's own manifests (:data:`MANIFEST_MAGIC`, see :func:`split_manifest_header`).
"""

from alt_lightning.data.parsers.class_folders import parse_class_folders
from alt_lightning.data.parsers.common import (
    VIDEO_EXTENSIONS,
    AnnotationError,
    check_missing,
    missing_reason,
    os_error_reason,
)
from alt_lightning.data.parsers.hmdb51 import hmdb51_split_classes, parse_hmdb51_split
from alt_lightning.data.parsers.kinetics import KineticsParse, parse_kinetics_csv
from alt_lightning.data.parsers.lists import (
    MANIFEST_MAGIC,
    parse_path_label_list,
    read_label_names_csv,
    split_manifest_header,
)
from alt_lightning.data.parsers.ssv2 import parse_ssv2_json, read_ssv2_labels
from alt_lightning.data.parsers.ucf101 import parse_ucf101_split, read_ucf101_classes

__all__ = [
    "MANIFEST_MAGIC",
    "VIDEO_EXTENSIONS",
    "AnnotationError",
    "KineticsParse",
    "check_missing",
    "hmdb51_split_classes",
    "missing_reason",
    "os_error_reason",
    "parse_class_folders",
    "parse_hmdb51_split",
    "parse_kinetics_csv",
    "parse_path_label_list",
    "parse_ssv2_json",
    "parse_ucf101_split",
    "read_label_names_csv",
    "read_ssv2_labels",
    "read_ucf101_classes",
    "split_manifest_header",
]
