"""nbgrader settings of every single-user server of the class image (students and instructors).

The exchange is the shared volume mounted by the Helm values (singleuser.storage.extraVolumeMounts) at the
same path; course_id matches the course's nbgrader_config.py.
"""
c = get_config()  # noqa: F821 (provided by traitlets)

c.CourseDirectory.course_id = "cnncourse"
c.Exchange.root = "/srv/nbgrader/exchange"
c.Exchange.timezone = "UTC"
