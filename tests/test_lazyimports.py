"""cnncourse defers rfc3987_syntax (an unused 1.2 s parser build in every process importing nbformat) without
changing what jsonschema's IRI format checks answer."""
import json
import subprocess
import sys

PROBE = """
import json, sys, time
{first}
start = time.perf_counter()
import nbformat
from jsonschema import FormatChecker
seconds = time.perf_counter() - start
loaded_at_import = getattr(sys.modules.get("rfc3987_syntax"), "__file__", None) is not None
checker = FormatChecker()
answers = [checker.conforms(v, f) for v in ("http://example.com/\u00fc", "not an iri", "/a/b?c#d", "ht tp://x")
           for f in ("iri", "iri-reference")]
print(json.dumps({{"seconds": seconds, "loaded_at_import": loaded_at_import, "answers": answers}}))
"""


def probe(first: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE.format(first=first)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


def test_rfc3987_syntax_is_imported_on_first_use_with_the_same_answers():
    plain = probe("")
    deferred = probe("import cnncourse")
    assert deferred["loaded_at_import"] is False, "importing nbformat after cnncourse built the RFC 3987 parser"
    assert deferred["answers"] == plain["answers"], "the IRI format checks changed"
    assert True in plain["answers"] and False in plain["answers"], "the probe values do not exercise the check"
    assert deferred["seconds"] < plain["seconds"], (deferred, plain)
