# The differential smoke test's probe. gradient runs it in a plain venv holding the app's
# wheel and its locked dependencies (the reference), then with each artifact's own Python,
# as the artifact's app runs. It reports which modules import, which distributions
# importlib.metadata lists, and which entry points load; gradient compares the two.
#
# gradient appends a call to main() with its request: {"discover": [names]} in the
# reference, where the probe also chooses what to check (every top-level module and every
# entry point of those distributions), or {"plan": {...}} in an artifact. The answer is one
# JSON document on the standard output; whatever the imported modules print goes to the
# standard error. Runs on Python 3.8 and newer.
import base64
import json
import os
import re
import sys
import zlib

# Top-level names that are not the app's code, though some projects ship them.
NOT_MODULES = {"setup", "conftest", "__main__", "test", "tests"}

# Standard modules that few apps load: after the app's modules and entry points are loaded
# (some drop sys.path[0], as console scripts do), two of them not loaded yet must still
# import, or the app would lose the standard library the first time it needs more of it.
STDLIB_LATER = ["colorsys", "wave", "difflib", "fractions", "statistics", "csv", "sched"]


def normal(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def why(error):
    text = str(error).splitlines()[0] if str(error) else ""
    return ("%s: %s" % (type(error).__name__, text))[:300]


def top_level_modules(dist):
    """The importable names a distribution installs: its top-level modules and packages,
    and for a folder without __init__.py (a namespace package) the names one level down."""
    files = [f.parts for f in (dist.files or ()) if f.parts]
    present = {"/".join(parts) for parts in files}
    names = set()
    for parts in files:
        top = parts[0]
        if top in ("..", "__pycache__") or top.endswith((".dist-info", ".egg-info", ".data")):
            continue
        if len(parts) > 1 and not top.isidentifier():
            continue  # a folder of libraries (NAME.libs) or data, not a package
        if len(parts) == 1:
            if top.endswith(".py"):
                names.add(top[:-3])
            elif top.endswith(".so"):
                names.add(top.split(".")[0])
            continue
        if top + "/__init__.py" in present or len(parts) < 2:
            names.add(top)
            continue
        inner = parts[1]
        if inner == "__pycache__":
            continue
        if len(parts) == 2:
            if inner.endswith(".py"):
                names.add(top + "." + inner[:-3])
            elif inner.endswith(".so"):
                names.add(top + "." + inner.split(".")[0])
        else:
            names.add(top + "." + inner)
    return sorted(
        n for n in names
        if all(part.isidentifier() for part in n.split(".")) and n.split(".")[0] not in NOT_MODULES
    )


def discover(wanted):
    from importlib import metadata

    wanted = {normal(name) for name in wanted}
    plan = {"modules": [], "distributions": [], "entry_points": []}
    seen = set()
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or ""
        key = normal(name)
        if key not in wanted or key in seen:
            continue
        seen.add(key)
        plan["distributions"].append([name, dist.version])
        plan["modules"].extend(top_level_modules(dist))
        for entry_point in dist.entry_points:
            plan["entry_points"].append(
                {"distribution": name, "group": entry_point.group, "name": entry_point.name, "value": entry_point.value}
            )
    plan["modules"] = sorted(set(plan["modules"]))
    return plan


def later_standard_modules():
    """The first two of STDLIB_LATER not loaded yet."""
    return [name for name in STDLIB_LATER if name not in sys.modules][:2]


def shown(entry_point):
    return "entry point %s %s = %s (%s)" % (
        entry_point["group"], entry_point["name"], entry_point["value"], entry_point["distribution"]
    )


def check(plan):
    import importlib
    from importlib import metadata

    result = {"imports": {}, "distributions": {}, "entry_points": {}}
    for module in plan["modules"]:
        try:
            importlib.import_module(module)
            result["imports"][module] = None
        except BaseException as error:  # an import may exit, or raise anything
            result["imports"][module] = why(error)
    for entry_point in plan["entry_points"]:
        try:
            metadata.EntryPoint(entry_point["name"], entry_point["value"], entry_point["group"]).load()
            result["entry_points"][shown(entry_point)] = None
        except BaseException as error:
            result["entry_points"][shown(entry_point)] = why(error)
    if plan.get("stdlib_later") is None:
        plan["stdlib_later"] = later_standard_modules()
    for module in plan["stdlib_later"]:
        try:
            importlib.import_module(module)
            result["imports"][module] = None
        except BaseException as error:
            result["imports"][module] = why(error)
    for dist in metadata.distributions():
        try:  # a damaged distribution is one the app cannot find either
            key = normal(dist.metadata["Name"] or "")
            version = dist.version
        except Exception:
            continue
        if key:
            result["distributions"].setdefault(key, version)
    return result


def main(request):
    answer = os.dup(1)
    os.dup2(2, 1)  # what imported modules print must not mix with the answer
    request = json.loads(zlib.decompress(base64.b64decode(request)))
    if "discover" in request:
        plan = discover(request["discover"])
        reply = {"plan": plan, "result": check(plan)}
    else:
        reply = {"result": check(request["plan"])}
    sys.stdout.flush()
    sys.stderr.flush()
    data = json.dumps(reply).encode()
    while data:
        data = data[os.write(answer, data):]
    os._exit(0)  # threads an imported module started must not keep the probe alive
