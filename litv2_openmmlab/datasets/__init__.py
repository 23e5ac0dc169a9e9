"""Data sets made here: ``toy_shapes.py``, the quickstart's synthetic shapes
in COCO and ADE20K formats (needs numpy, Pillow and pycocotools). Importing
this package imports none of its modules and registers nothing."""
