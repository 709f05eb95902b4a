"""cnncourse: the Python package behind a Jupyter course on convolutional neural networks.

Each module has one job (see DESIGN.md): ``arithmetic`` (sizes, parameters, FLOPs), ``layers`` (input checks
for NumPy layers; the answers are not shipped), ``models``, ``data``, ``train``, ``pretrained`` (the small digits
checkpoint of the transfer-learning assignment, rebuilt offline), ``plotting/`` (figures), ``widgets``
(interactive explorers), ``visualize`` (what a trained CNN has learned), ``testcells/`` (what test cells run in
the student's kernel), ``course`` (finding the course, release), ``grader/`` (validating and grading a class,
every student kernel sandboxed) and ``cli`` (the ``cnncourse`` command). Import the module you need, e.g.
``from cnncourse.arithmetic import conv_output_size``.
"""

from cnncourse.lazyimports import defer_rfc3987_syntax

__version__ = "0.1.0"

defer_rfc3987_syntax()  # nbformat's jsonschema would build an unused RFC 3987 parser: 1.2 s per process
