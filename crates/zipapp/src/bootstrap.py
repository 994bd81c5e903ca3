# The bootstrap of a gradient zipapp. gradient writes the constants below when it builds
# the archive. On start it checks the interpreter against what the archive was built for,
# makes sure the archive is intact, puts what cannot run from inside a zip (compiled
# modules) in a cache folder on first run, and calls the console script. Python sources
# are imported straight from the archive; the code compiled from them is kept in the same
# cache folder, so only the first run of each module pays for compiling it.
import marshal
import os
import sys
import zipimport
from importlib.machinery import ModuleSpec

APP = None  # (name, version)
BUILT_FOR = None  # (implementation, (major, minor), abi tag, platform tag)
NATIVE = None  # top-level names under site/ to extract
EXTRACT = None  # the files under site/ that belong to them
COMPILED = None  # whether any of them holds compiled code (binding the archive to an ABI)
SCRIPTS = None  # console script name -> "module:function"
DEFAULT = None  # the script run when the invoked name is not one of SCRIPTS (None: list them)
LEGACY = None  # legacy (setuptools `scripts=`) script name -> whether it is Python; under scripts/
DIGEST = None  # content digest, names the extraction folder
DISTRIBUTIONS = None  # the *.dist-info folders under site/
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
    if here != (implementation, version) or (COMPILED and (this_abi, this_platform) != (abi, platform)):

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


def private_folder(path):
    """Trust a folder in the shared temp dir only if it is ours and nobody else can write
    into it: otherwise another user could lay out an extraction that we would run."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not (os.path.isdir(path) and not os.path.islink(path) and info.st_uid == os.getuid() and not info.st_mode & 0o022):
        fail("the fallback cache %s is not a private folder of this user" % path, "set GRADIENT_PYZ_CACHE to a folder of your own")


def remove_tree(path):
    """shutil.rmtree without importing shutil (start-up time matters here)."""
    for parent, folders, files in os.walk(path, topdown=False):
        for name in files:
            try:
                os.unlink(os.path.join(parent, name))
            except OSError:
                pass
        for name in folders:
            target = os.path.join(parent, name)
            try:
                os.unlink(target) if os.path.islink(target) else os.rmdir(target)
            except OSError:
                pass
    try:
        os.rmdir(path)
    except OSError:
        pass


def extract(archive, root, folder):
    """Unpack EXTRACT into `folder` through a staging folder and a rename, so that a folder
    under its final name is always complete, however many processes race to make it."""
    os.makedirs(root, exist_ok=True)
    staging = os.path.join(root, ".%s.%d" % (os.path.basename(folder), os.getpid()))
    reader = zipimport.zipimporter(archive)
    try:
        os.makedirs(staging, exist_ok=True)
        for relative in EXTRACT:
            if relative.startswith("/") or ".." in relative.split("/"):
                fail("the archive holds an unsafe path %r" % relative, "build it again")
            target = os.path.join(staging, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as sink:
                sink.write(reader.get_data(os.path.join(archive, "site", relative)))
        write_marker(staging, stamp(archive))
        try:
            os.rename(staging, folder)
        except OSError:
            pass  # another process finished the same extraction first: use theirs
    finally:
        remove_tree(staging)
    prune(root, folder)


def prune(root, current):
    """Keep the newest KEEP extractions of this app, so the cache never grows without bound."""
    found = []
    for entry in os.listdir(root):
        path = os.path.join(root, entry)
        if entry.rsplit("-", 1)[0] == APP[0] and path != current:
            try:
                found.append((os.stat(os.path.join(path, ".complete")).st_mtime_ns, path))
            except OSError:
                continue
    for _, path in sorted(found, reverse=True)[KEEP - 1:]:
        remove_tree(path)


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
        private_folder(fallback)
        sys.stderr.write(
            "%s-%s.pyz: cannot write to the cache %s (%s); using %s\n"
            % (APP[0], APP[1], root, error.strerror or error, fallback)
        )
        folder = os.path.join(fallback, os.path.basename(folder))
        if not os.path.isfile(os.path.join(folder, ".complete")):
            try:
                extract(archive, fallback, folder)
            except OSError as error:
                fail(
                    "cannot write to %s either (%s)" % (fallback, error.strerror or error),
                    "set GRADIENT_PYZ_CACHE to a writable folder",
                )
    return folder


class CachingImporter:
    """zipimport for one folder of the archive, with compiled code cached on disk."""

    def __init__(self, path, archive, cache):
        self.zip = zipimport.zipimporter(path)
        self.archive = archive
        self.cache = cache

    def locate(self, fullname):
        """(file name, is package) of the module's source in this folder, or None."""
        files = getattr(self.zip, "_files", None)
        if files is None:  # zipimport without its listing: ask it (slower: it compiles)
            try:
                return self.zip.get_filename(fullname), self.zip.is_package(fullname)
            except ImportError:
                return None
        base = self.zip.prefix + fullname.rpartition(".")[2]
        for relative, package in ((base + os.sep + "__init__.py", True), (base + ".py", False)):
            if relative in files:
                return os.path.join(self.zip.archive, relative), package
        return None

    def find_spec(self, fullname, target=None):
        found = self.locate(fullname)
        if found is None:
            # Not a source module here; perhaps a namespace package portion (3.10+).
            finder = getattr(self.zip, "find_spec", None)
            return finder(fullname, target) if finder else None
        filename, package = found
        spec = ModuleSpec(fullname, self, origin=filename, is_package=package)
        spec.has_location = True
        if package:
            spec.submodule_search_locations = [os.path.dirname(filename)]
        return spec

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.get_code(module.__name__), module.__dict__)

    def get_code(self, fullname):
        found = self.locate(fullname)
        if found is None:
            return self.zip.get_code(fullname)
        filename = found[0]
        cached = os.path.join(self.cache, "code", filename[len(self.archive) + 1:] + "c")
        try:
            with open(cached, "rb") as handle:
                return marshal.loads(handle.read())
        except (OSError, ValueError, EOFError):
            pass
        code = compile(self.zip.get_source(fullname), filename, "exec", dont_inherit=True)
        try:
            os.makedirs(os.path.dirname(cached), exist_ok=True)
            temporary = "%s.%d" % (cached, os.getpid())
            with open(temporary, "wb") as handle:
                handle.write(marshal.dumps(code))
            os.replace(temporary, cached)
        except OSError:
            pass  # a read-only cache only costs compiling again next time
        return code

    def __getattr__(self, name):
        # get_source, get_filename, is_package, get_data, get_resource_reader, ...
        return getattr(self.zip, name)


class ArchiveDistributions:
    """Lets importlib.metadata find the distributions under the archive's site/ folder.

    CPython's own finder reads metadata only from folders and from the top of a zip file on
    sys.path, not from a folder inside one: without this, `version()`, `entry_points()` and
    plugin discovery see nothing of what the archive carries."""

    def __init__(self, site):
        self.site = site

    def find_spec(self, fullname, path=None, target=None):
        return None  # metadata only: imports are the path hooks' business

    def find_distributions(self, context=None):
        import re
        import zipfile
        from importlib.metadata import PathDistribution

        searched = getattr(context, "path", None)
        if searched is not None and self.site not in searched:
            return
        wanted = getattr(context, "name", None)

        def normal(name):
            return re.sub(r"[-_.]+", "_", name).lower()

        archive, _, folder = self.site.rpartition(os.sep)
        for dist_info in DISTRIBUTIONS:
            if wanted is None or normal(dist_info.split("-")[0]) == normal(wanted):
                yield PathDistribution(zipfile.Path(archive, "%s/%s/" % (folder, dist_info)))


def run_legacy(archive, folder, name):
    """A setuptools `scripts=` file, kept under scripts/ in the archive. Python code runs as
    __main__ in this interpreter (what pip's rewritten `#!` line would run it with); any
    other file runs as the program it is, from the extraction folder."""
    path = os.path.join(archive, "scripts", name)
    data = zipimport.zipimporter(archive).get_data(path)
    if LEGACY[name]:
        import types

        main = types.ModuleType("__main__")
        main.__file__ = path
        sys.modules["__main__"] = main
        exec(compile(data, path, "exec", dont_inherit=True), main.__dict__)
        sys.exit(0)
    target = os.path.join(folder, "scripts", name)
    if not os.path.isfile(target):
        os.makedirs(os.path.dirname(target), exist_ok=True)
        temporary = "%s.%d" % (target, os.getpid())
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    os.execv(target, [name] + sys.argv[1:])


def install_importer(archive, cache):
    prefix = archive + os.sep

    def hook(path):
        if path.startswith(prefix):
            return CachingImporter(path, archive, cache)
        raise ImportError("not inside %s" % archive)

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


def setup(archive):
    """Make the archive's packages and their metadata importable, as the app sees them."""
    check_interpreter()
    folder = prepare(archive)
    site = os.path.join(archive, "site")
    if sys.path and os.path.abspath(sys.path[0]) == archive:
        sys.path[0:1] = []
    # Right after the standard library, before any site-packages: standard modules are
    # found first and never pass through the archive's importer, and the locked
    # dependencies win over other versions the target interpreter has installed.
    ours = [folder, site] if NATIVE else [site]
    first_site = next(
        (
            i
            for i, entry in enumerate(sys.path)
            if os.path.basename(entry) in ("site-packages", "dist-packages")
        ),
        len(sys.path),
    )
    sys.path[first_site:first_site] = ours
    # In a venv, sys.executable sees the app: so do the Pythons the app starts here (-c, -m,
    # subprocesses), through PYTHONPATH, which they inherit.
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    os.environ["PYTHONPATH"] = os.pathsep.join(ours + inherited)
    install_importer(archive, folder)
    if DISTRIBUTIONS:
        # Before the path finder, as the archive's site/ is before site-packages on sys.path:
        # importlib.metadata takes the first distribution of a name it finds, so the
        # metadata (version(), entry points, plugins) is that of the locked dependency the
        # app imports, not of another version the target interpreter has installed.
        from importlib.machinery import PathFinder

        at = next((i for i, finder in enumerate(sys.meta_path) if finder is PathFinder), len(sys.meta_path))
        sys.meta_path.insert(at, ArchiveDistributions(site))
    return folder


def main():
    archive = os.path.dirname(os.path.abspath(__file__))
    folder = setup(archive)
    invoked = os.path.basename(sys.argv[0])
    if invoked.endswith(".pyz"):
        invoked = invoked[:-4]
    script = invoked if invoked in SCRIPTS or invoked in LEGACY else DEFAULT
    if script is None:
        names = list(SCRIPTS) + list(LEGACY)
        # A multi-call file with no default: like busybox, say what it can be run as.
        sys.stderr.write(
            "%s-%s.pyz: run this archive as one of its scripts: %s\n"
            "  hint: make a link named like the script (`ln -s %s %s`), or build with "
            "`entry = \"NAME\"` in [tool.gradient] to choose a default\n"
            % (APP[0], APP[1], ", ".join(sorted(names)), sys.argv[0], sorted(names)[0])
        )
        sys.exit(2)
    if script != invoked:
        sys.argv[0] = script
    if script in LEGACY:
        run_legacy(archive, folder, script)
    module, _, attributes = SCRIPTS[script].partition(":")
    target = __import__(module.strip(), fromlist=["__name__"])
    for attribute in attributes.split("[")[0].strip().split("."):
        if attribute:
            target = getattr(target, attribute)
    sys.exit(target())


# Run as the archive's __main__; gradient's smoke test loads it under another name to
# call setup() alone.
if __name__ == "__main__":
    main()
