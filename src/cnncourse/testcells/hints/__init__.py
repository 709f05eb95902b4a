"""Likely causes for visible test messages: recognise the classic mistakes in convolution and pooling layers.

Each ``*_hint`` function takes the student's (wrong) answer and the test's inputs and returns one sentence naming
the mistake, or ``""`` when none is recognised. A test cell passes it to ``assert_close(..., hint=lambda: ...)``
so that the hint is computed only on failure.

The recognisers never implement the graded layers in NumPy: they rebuild each *mistaken* answer from torch
(``conv2d`` with a flipped kernel, ``unfold``/``fold`` to look at every window) and compare. Nothing here prints.

Recognised: a flipped or transposed kernel, a missing bias, ``+1`` or stride in the output size, windows that step
by the wrong amount; ``=`` instead of ``+=`` where windows or filters overlap (``dx`` and ``dw``), ``dw`` not summed
over the batch, ``db`` summed over the wrong axes, padding not cropped from ``dx``; max-pool gradients sent to every
tied maximum, to every input or to the wrong position; average-pool gradients not divided by the window size.

One module per layer family, all re-exported here: ``conv`` (:func:`conv_forward_hint`,
:func:`conv_backward_hint`), ``pool`` (:func:`pool_backward_hint`), ``batchnorm`` (:func:`batchnorm_hint`,
:func:`batchnorm_backward_hint`).
"""
from cnncourse.testcells.hints.batchnorm import batchnorm_backward_hint, batchnorm_hint
from cnncourse.testcells.hints.conv import conv_backward_hint, conv_forward_hint
from cnncourse.testcells.hints.pool import pool_backward_hint

__all__ = ["conv_forward_hint", "conv_backward_hint", "pool_backward_hint", "batchnorm_hint", "batchnorm_backward_hint"]
