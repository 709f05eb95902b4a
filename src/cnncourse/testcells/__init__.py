"""What runs inside the student's kernel during grading.

* :mod:`~cnncourse.testcells.compare` -- comparisons that teach (:func:`assert_close` names the wrong
  entries), centred-difference gradient checks.
* :mod:`~cnncourse.testcells.hints` -- recognisers of the classic conv/pool mistakes for visible tests.
* :mod:`~cnncourse.testcells.hidden` -- :func:`hidden.check` runs a hidden test: it calls the student's
  function on the inputs the grader placed and hands the results to the grader, which computes the
  expected values itself. No expected value ever exists in the kernel.
* :mod:`~cnncourse.testcells.wire` -- the JSON encoding shared by the kernel and the grader.

Nothing here prints on success: any stderr output in a test cell scores 0 in nbgrader.
"""
