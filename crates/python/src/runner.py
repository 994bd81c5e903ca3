"""gradient's PEP 517 hook runner.

Started by gradient inside an isolated build environment, with the source tree as its
working directory. It imports the build backend once, then serves hook calls read as JSON
lines from stdin. Replies go to the process's original stdout; everything the backend
prints (and anything its subprocesses print) is sent to stderr, which gradient captures.
"""
import importlib
import json
import os
import sys
import traceback


def main():
    replies = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # backend output, even from subprocesses, goes to stderr

    def reply(**message):
        sys.stdout.flush()
        sys.stderr.flush()
        replies.write(json.dumps(message) + "\n")

    def failure(kind):
        error = sys.exc_info()[1]
        traceback.print_exc()
        summary = "".join(traceback.format_exception_only(type(error), error)).strip()
        reply(error={"kind": kind, "message": summary})

    # The source tree must not be importable unless the project says so (backend-path).
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path.pop(0)
    spec, backend_path = sys.argv[1], json.loads(sys.argv[2])
    for entry in reversed(backend_path):
        sys.path.insert(0, os.path.abspath(entry))
    module_name, _, attributes = spec.partition(":")
    try:
        backend = importlib.import_module(module_name)
        for attribute in filter(None, attributes.split(".")):
            backend = getattr(backend, attribute)
    except BaseException:
        failure("unavailable")
        return
    reply(ready=True)

    for line in sys.stdin:
        request = json.loads(line)
        name = request["hook"]
        if name == "chdir":
            os.chdir(request["path"])
            reply(ok=None)
            continue
        hook = getattr(backend, name, None)
        if hook is None:
            if name.startswith("get_requires_for_build_"):
                reply(ok=[])
            else:
                reply(error={"kind": "missing", "message": "the backend has no hook `%s`" % name})
            continue
        try:
            result = hook(*request.get("args", []), **request.get("kwargs", {}))
        except BaseException:
            failure("failed")
            continue
        reply(ok=result)


main()
