# The bootstrap of a gradient zipapp. gradient writes the constants below when it builds
# the archive. On start it checks the interpreter against what the archive was built for,
# makes sure the archive is intact, puts what cannot run from inside a zip (compiled
# modules) in a cache folder on first run, and calls the console script.
import os
import sys

APP = None  # (name, version)
BUILT_FOR = None  # (implementation, (major, minor), abi tag, platform tag)
NATIVE = None  # top-level names under site/ to extract
SCRIPTS = None  # console script name -> "module:function"
DEFAULT = None  # the script run when the invoked name is not one of SCRIPTS
DIGEST = None  # content digest, names the extraction folder
KEEP = 3  # extractions of one app kept in the cache


def fail(message, hint):
    sys.stderr.write("%s-%s.pyz: %s\n  hint: %s\n" % (APP[0], APP[1], message, hint))
    sys.exit(1)


def check_interpreter():
    implementation, version, abi, platform = BUILT_FOR
    here = sys.implementation.name, tuple(sys.version_info[:2])
    this_abi = "cp%d%d%s" % (sys.version_info[0], sys.version_info[1], "t" if "t" in getattr(sys, "abiflags", "") else "")
    this_platform = "%s_%s" % (sys.platform, os.uname().machine)
    wanted = "%s %d.%d (%s, %s)" % (implementation, version[0], version[1], abi, platform)
    found = "%s %d.%d (%s, %s) at %s" % (here[0], here[1][0], here[1][1], this_abi, this_platform, sys.executable)
    if here != (implementation, version) or (NATIVE and (this_abi, this_platform) != (abi, platform)):
        fail(
            "this archive was built for %s and cannot run on %s" % (wanted, found),
            "run it with python%d.%d, or rebuild it for this interpreter with "
            "`gradient build --to zipapp --python %d.%d`" % (version[0], version[1], here[1][0], here[1][1]),
        )


def cache_root():
    configured = os.environ.get("GRADIENT_PYZ_CACHE")
    if configured:
        return configured
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "gradient", "pyz")


def stamp(archive):
    info = os.stat(archive)
    return "%d %d %d\n" % (info.st_size, info.st_mtime_ns, info.st_ino)


def verify(archive):
    import hashlib

    with open(archive, "rb") as handle:
        data = handle.read()
    body, recorded = data[:-64], data[-64:]
    if hashlib.sha256(body).hexdigest().encode() != recorded:
        fail(
            "the archive is damaged: its bytes do not match the digest it was built with "
            "(truncated, or modified after the build)",
            "download or build it again; do not edit a .pyz in place",
        )


def write_marker(folder, text):
    temporary = os.path.join(folder, ".complete.%d" % os.getpid())
    with open(temporary, "w") as handle:
        handle.write(text)
    os.replace(temporary, os.path.join(folder, ".complete"))


def extract(archive, root, folder):
    """Unpack the native packages into `folder` atomically; return the folder used."""
    import shutil
    import tempfile
    import zipfile

    os.makedirs(root, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=".%s-" % os.path.basename(folder), dir=root)
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member in bundle.namelist():
                if not member.startswith("site/") or member.endswith("/"):
                    continue
                relative = member[len("site/"):]
                if relative.split("/", 1)[0] not in NATIVE:
                    continue
                if relative.startswith("/") or ".." in relative.split("/"):
                    fail("the archive holds an unsafe path %r" % member, "build it again")
                target = os.path.join(staging, relative)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
        write_marker(staging, stamp(archive))
        try:
            os.rename(staging, folder)
        except OSError:
            pass  # another process finished the same extraction first: use theirs
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    prune(root, folder)


def prune(root, current):
    """Keep the newest KEEP extractions of this app, so the cache never grows without bound."""
    import shutil

    found = []
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        if entry.rsplit("-", 1)[0] == APP[0] and path != current:
            try:
                found.append((os.stat(os.path.join(path, ".complete")).st_mtime_ns, path))
            except OSError:
                continue
    for _, path in sorted(found, reverse=True)[KEEP - 1:]:
        shutil.rmtree(path, ignore_errors=True)


def prepare(archive):
    """Return the extraction folder, made and checked; verify the archive when it changed."""
    root = cache_root()
    folder = os.path.join(root, "%s-%s" % (APP[0], DIGEST[:16]))
    try:
        with open(os.path.join(folder, ".complete")) as handle:
            recorded = handle.read()
    except OSError:
        recorded = None
    if recorded is not None:
        current = stamp(archive)
        if recorded != current:
            verify(archive)  # another copy, or the file changed since: check before use
            try:
                write_marker(folder, current)
            except OSError:
                pass
        return folder
    verify(archive)
    try:
        extract(archive, root, folder)
    except OSError as error:
        import tempfile

        fallback = os.path.join(tempfile.gettempdir(), "gradient-pyz-%d" % os.getuid())
        sys.stderr.write(
            "%s-%s.pyz: cannot write to the cache %s (%s); using %s\n"
            % (APP[0], APP[1], root, error.strerror or error, fallback)
        )
        folder = os.path.join(fallback, os.path.basename(folder))
        if not os.path.isfile(os.path.join(folder, ".complete")):
            extract(archive, fallback, folder)
    return folder


def main():
    archive = os.path.dirname(os.path.abspath(__file__))
    check_interpreter()
    folder = prepare(archive)
    site = os.path.join(archive, "site")
    if sys.path and os.path.abspath(sys.path[0]) == archive:
        sys.path[0:1] = []
    sys.path[0:0] = [folder, site] if NATIVE else [site]

    invoked = os.path.basename(sys.argv[0])
    if invoked.endswith(".pyz"):
        invoked = invoked[:-4]
    script = invoked if invoked in SCRIPTS else DEFAULT
    if script != invoked:
        sys.argv[0] = script
    module, _, attributes = SCRIPTS[script].partition(":")
    target = __import__(module.strip(), fromlist=["__name__"])
    for attribute in attributes.split("[")[0].strip().split("."):
        if attribute:
            target = getattr(target, attribute)
    sys.exit(target())


main()
