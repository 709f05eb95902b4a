"""Sphinx extension: every notebook figure gets the alt text computed when the lecture was executed.

myst-nb names each output image after the SHA-256 of its bytes; ``docs/build.py`` writes
``_alt_text.json`` (that hash -> alt text) beside the sources, and this extension copies the text into each
image node that has none. An image left without alt text is reported as a warning naming the page.
"""
from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.util import logging

ALT_FILE = "_alt_text.json"
logger = logging.getLogger(__name__)


def _load(app: Sphinx) -> dict[str, str]:
    path = Path(app.srcdir) / ALT_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_alt_text(app: Sphinx) -> None:
    """Read this build's hash -> alt map (builder-inited; kept on the app, never in the pickled env, so an
    incremental build never uses an older map)."""
    app.cnncourse_alt = _load(app)


def add_alt_text(app: Sphinx, doctree: nodes.document) -> None:
    """Set ``alt`` on image nodes from the hash -> alt map (doctree-read)."""
    alts = getattr(app, "cnncourse_alt", {})
    for image in doctree.findall(nodes.image):
        if image.get("alt"):
            continue
        stem = Path(str(image.get("uri", ""))).stem
        if stem in alts:
            image["alt"] = alts[stem]
        else:
            logger.warning("figure without alt text: %s", image.get("uri"), location=image)


def setup(app: Sphinx) -> dict:
    app.connect("builder-inited", load_alt_text)
    app.connect("doctree-read", add_alt_text)
    return {"parallel_read_safe": False, "parallel_write_safe": True}
