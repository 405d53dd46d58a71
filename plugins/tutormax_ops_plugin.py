"""Entry point that Airflow's plugin loader imports.

Airflow imports every .py file under the plugins folder as a top-level module named after the
file's stem: `tutormax_ops/collectors/redis.py` would be registered as `sys.modules["redis"]`.
`plugins/.airflowignore` therefore hides the package from the loader; this file alone exposes the
plugin class, and the package is imported normally (the plugins folder is on sys.path).
"""

from tutormax_ops.web.plugin import TutorMaxOpsPlugin

__all__ = ["TutorMaxOpsPlugin"]
