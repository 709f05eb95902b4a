"""nbgrader settings added for instructors (JUPYTER_CONFIG_PATH puts this folder before the student one).

The instructor keeps a clone of the course repository in the home volume (default ~/cnncourse, or
$CNNCOURSE_ROOT); its own nbgrader_config.py makes that clone the course directory, so the formgrader and
`cnncourse grade` work from any folder. The gradebook URL comes from $CNNCOURSE_DB (PostgreSQL, set from
the `cnncourse-gradebook` secret by the instructor profile of the Helm values).
"""
import os
from pathlib import Path

c = get_config()  # noqa: F821 (provided by traitlets)

_course = Path(os.environ.get("CNNCOURSE_ROOT", Path.home() / "cnncourse"))
if (_course / "nbgrader_config.py").is_file():
    load_subconfig(str(_course / "nbgrader_config.py"))  # noqa: F821 (provided by traitlets)
