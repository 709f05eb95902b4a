"""Sphinx configuration of the course site (built by ``docs/build.py``: ``make site``).

The sources are generated into ``docs/_build/src`` (executed lectures, released assignments, the landing
page); this folder only holds the configuration, so nothing here is executed again by Sphinx.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the alt_text extension

project = "cnncourse — convolutional neural networks"
author = "cnncourse"
# MathJax from the sphinx-mathjax-offline package (copied into _static/): formulas render with no network.
extensions = ["myst_nb", "alt_text", "sphinx-mathjax-offline"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
root_doc = "index"

# Notebooks arrive executed (lectures) or are shown as handed out (assignments): Sphinx never runs them.
nb_execution_mode = "off"
nb_output_stderr = "remove"  # warnings a kernel printed are not course content
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "html_image"]
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header", "misc.highlighting_failure"]

html_theme = "alabaster"
html_title = "cnncourse"
html_theme_options = {
    "description": "A Jupyter course on convolutional neural networks",
    "page_width": "1180px",
    "sidebar_width": "250px",
    "fixed_sidebar": True,
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}
html_show_sourcelink = False
