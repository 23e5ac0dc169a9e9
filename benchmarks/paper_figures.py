"""Kept for old imports: the paper's figures live in litv2/paper_figures.py."""
from litv2.paper_figures import PAPER_TABLES  # noqa: F401
