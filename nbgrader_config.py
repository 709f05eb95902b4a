"""nbgrader configuration of the course: the repository root is the course directory.

Source notebooks (with reference solutions and hidden tests) live in ``solutions/<assignment>/``;
``cnncourse release`` writes the student versions to ``assignments/<assignment>/``. Submissions go in
``submitted/<student>/<assignment>/`` and grades in ``gradebook.db`` at the root unless the
``CNNCOURSE_DB`` environment variable gives another SQLAlchemy URL (e.g. PostgreSQL for a class).
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets when nbgrader loads this file)

ROOT = Path(__file__).resolve().parent

c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "cnncourse"
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "assignments"
c.CourseDirectory.db_url = os.environ.get("CNNCOURSE_DB", f"sqlite:///{ROOT / 'gradebook.db'}")
# Release every notebook found in solutions/<assignment>/ (no gradebook entry needed beforehand).
c.GenerateAssignment.create_assignment = True

# Student stubs: a clear marker and an exception, so unattempted cells fail loudly and score 0.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Grading limits: a cell gets 60 s (nbgrader's default is 30 s, too tight on a shared 2-core grader);
# `cnncourse grade` adds whole-notebook and memory limits on top.
c.ExecutePreprocessor.timeout = 60
c.Execute.timeout = 60
