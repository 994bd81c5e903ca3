//! Putting the archive together: the file list, the bootstrap's constants, the digest.

use crate::{io, ZipappError};
use gradient_archive::{write_zip_with, Entry, EntryKind};
use gradient_core::{normalize_name, AppScripts, AppWheel, InterpreterFacts, Project, SourceDate};
use gradient_wheel::install_wheel_files;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const BOOTSTRAP: &str = include_str!("bootstrap.py");
/// The archive comment holds the sha256 (hex) of every byte before it.
const DIGEST_LEN: usize = 64;

/// `NAME-VERSION.pyz`, from the normalised name: what the build writes and the plan lists.
pub fn file_name(name: &str, version: &str) -> String {
    format!("{name}-{version}.pyz")
}

/// A built zipapp.
#[derive(Clone, Debug)]
pub struct Zipapp {
    pub path: PathBuf,
    /// Top-level names extracted on first run.
    pub native: Vec<String>,
    pub scripts: BTreeMap<String, String>,
    /// None for a multi-call file with no default (several scripts, none chosen).
    pub default_script: Option<String>,
    /// Whether the app or a dependency carries compiled code (binds it to one ABI/platform).
    pub has_native_code: bool,
}

/// Build `NAME-VERSION.pyz` in `work_dir` from the app's wheel and the wheelhouse's `site`.
pub async fn assemble(
    project: &Project,
    python: &InterpreterFacts,
    app: &AppWheel,
    site: &Path,
    work_dir: &Path,
    source_date: SourceDate,
) -> Result<Zipapp, ZipappError> {
    let info = &app.info;
    let name = normalize_name(&info.metadata.name);
    let version = info.metadata.version.clone();
    let AppScripts {
        scripts,
        default: default_script,
    } = app.scripts()?.clone();

    // The app, installed from its wheel by hand (root, purelib and platlib).
    let app_dir = work_dir.join("app");
    install_wheel_files(&app.path, &app_dir)?;

    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for tree in [site, app_dir.as_path()] {
        collect(tree, &mut files)?;
    }
    let compiled = files.keys().any(|path| is_native(path));
    // Compiled modules load only from real files; packages with data files often open them
    // by a path made from `__file__`, which no file system resolves inside the archive.
    let mut native: Vec<String> = files
        .keys()
        .filter(|path| is_native(path) || is_package_data(path))
        .filter_map(|path| path.split('/').next().map(str::to_string))
        .collect();
    native.extend(project.config.zipapp.extract.iter().cloned());
    native.sort();
    native.dedup();

    let mut hasher = Sha256::new();
    for (path, data) in &files {
        hasher.update(path.as_bytes());
        hasher.update([0]);
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
    }
    let content_digest = hex::encode(hasher.finalize());
    let extract: Vec<&str> = files
        .keys()
        .filter(|path| {
            path.split('/')
                .next()
                .is_some_and(|top| native.iter().any(|n| n == top))
        })
        .map(String::as_str)
        .collect();

    // The installed distributions, for importlib.metadata (see the bootstrap's finder).
    let distributions: Vec<String> = files
        .keys()
        .filter_map(|path| path.split_once('/').map(|(top, _)| top))
        .filter(|top| top.ends_with(".dist-info"))
        .map(str::to_string)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let legacy: BTreeMap<String, bool> = info
        .legacy_scripts
        .iter()
        .map(|(name, data)| (name.clone(), gradient_wheel::is_python_script(data)))
        .collect();
    let bootstrap = bootstrap_source(BootstrapConstants {
        name: &name,
        version: &version,
        python,
        native: &native,
        extract: &extract,
        compiled,
        scripts: &scripts,
        default_script: default_script.as_deref(),
        legacy: &legacy,
        digest: &content_digest,
        distributions: &distributions,
    });
    let compiled_bootstrap =
        compile_bootstrap(python, &bootstrap, work_dir, &name, &version).await?;
    let mut entries = vec![
        Entry {
            path: "__main__.py".into(),
            kind: EntryKind::File(bootstrap.into_bytes()),
            mode: 0o644,
        },
        Entry {
            path: "__main__.pyc".into(),
            kind: EntryKind::File(compiled_bootstrap),
            mode: 0o644,
        },
    ];
    // Every folder gets an entry of its own, before its files: zipimport finds a namespace
    // package (a folder without `__init__.py`) only through it.
    let folders: std::collections::BTreeSet<String> = files
        .keys()
        .flat_map(|path| {
            path.match_indices('/')
                .map(|(at, _)| format!("site/{}/", &path[..at]))
                .collect::<Vec<_>>()
        })
        .chain(["site/".to_string()])
        .collect();
    let mut site_entries: Vec<Entry> = folders
        .into_iter()
        .map(|path| Entry {
            path,
            kind: EntryKind::Dir,
            mode: 0o755,
        })
        .chain(files.into_iter().map(|(path, data)| Entry {
            mode: if path.ends_with(".so") { 0o755 } else { 0o644 },
            path: format!("site/{path}"),
            kind: EntryKind::File(data),
        }))
        .collect();
    site_entries.sort_by(|a, b| a.path.cmp(&b.path));
    entries.extend(site_entries);
    // Legacy scripts as the wheel has them, run by the bootstrap (see `run_legacy`).
    if !info.legacy_scripts.is_empty() {
        entries.push(Entry {
            path: "scripts/".into(),
            kind: EntryKind::Dir,
            mode: 0o755,
        });
    }
    for (script, data) in &info.legacy_scripts {
        entries.push(Entry {
            path: format!("scripts/{script}"),
            kind: EntryKind::File(data.clone()),
            mode: 0o755,
        });
    }

    let shebang = project
        .config
        .zipapp
        .shebang
        .as_ref()
        .map(|s| s.get_ref().clone())
        .unwrap_or_else(|| format!("/usr/bin/env python{}", python.short_version()));
    let path = work_dir.join(file_name(&name, &version));
    write_zip_with(
        &path,
        &entries,
        source_date.zip_seconds(),
        format!("#!{shebang}\n").as_bytes(),
        &"0".repeat(DIGEST_LEN),
    )?;
    seal(&path)?;
    Ok(Zipapp {
        path,
        has_native_code: compiled || !info.is_universal(),
        native,
        scripts,
        default_script,
    })
}

/// Every file of `tree` as it goes into the archive. Compiled `.pyc` files stay out: the
/// bootstrap caches code compiled from the sources on the target, which keeps the archive
/// small. Console-script folders stay out too.
fn collect(tree: &Path, files: &mut BTreeMap<String, Vec<u8>>) -> Result<(), ZipappError> {
    if !tree.exists() {
        return Ok(());
    }
    for entry in walkdir::WalkDir::new(tree).sort_by_file_name() {
        let entry = entry.map_err(|e| ZipappError::Io {
            action: "read",
            path: tree.to_path_buf(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let relative = entry
            .path()
            .strip_prefix(tree)
            .expect("walk stays in its tree")
            .to_string_lossy()
            .replace('\\', "/");
        // Console scripts carry build-machine paths; dot files at the top are installer
        // bookkeeping (uv's `.lock`).
        if relative.starts_with("bin/")
            || relative.starts_with('.')
            || relative.contains("__pycache__/")
            || relative.ends_with(".pyc")
        {
            continue;
        }
        let data = std::fs::read(entry.path()).map_err(|source| ZipappError::Io {
            action: "read",
            path: entry.path().to_path_buf(),
            source,
        })?;
        files.insert(relative, data);
    }
    Ok(())
}

/// A data file inside a package (not Python source, bytecode, stubs or the `py.typed`
/// marker, and not metadata).
fn is_package_data(path: &str) -> bool {
    let Some((top, _)) = path.split_once('/') else {
        return false;
    };
    let leaf = path.rsplit('/').next().unwrap_or(path);
    let code = [".py", ".pyc", ".pyi"]
        .iter()
        .any(|ext| leaf.ends_with(ext));
    !(code
        || leaf == "py.typed"
        || top.ends_with(".dist-info")
        || top.ends_with(".data")
        || path.contains("/__pycache__/"))
}

/// Compiled code the interpreter can only load from a real file.
fn is_native(path: &str) -> bool {
    let leaf = path.rsplit('/').next().unwrap_or(path);
    leaf.ends_with(".so") || leaf.contains(".so.")
}

struct BootstrapConstants<'a> {
    name: &'a str,
    version: &'a str,
    python: &'a InterpreterFacts,
    native: &'a [String],
    extract: &'a [&'a str],
    compiled: bool,
    scripts: &'a BTreeMap<String, String>,
    default_script: Option<&'a str>,
    legacy: &'a BTreeMap<String, bool>,
    digest: &'a str,
    distributions: &'a [String],
}

/// The bootstrap with its constants filled in. JSON strings, lists and objects of strings
/// are valid Python literals.
fn bootstrap_source(c: BootstrapConstants<'_>) -> String {
    let replacements = [
        (
            "APP = None",
            format!("APP = ({}, {})", json(c.name), json(c.version)),
        ),
        (
            "BUILT_FOR = None",
            format!(
                "BUILT_FOR = ({}, ({}, {}), {}, {})",
                json(&c.python.implementation),
                c.python.version.0,
                c.python.version.1,
                json(&c.python.abi_tag),
                json(&c.python.platform_tag)
            ),
        ),
        ("NATIVE = None", format!("NATIVE = {}", json(c.native))),
        ("EXTRACT = None", format!("EXTRACT = {}", json(c.extract))),
        (
            "COMPILED = None",
            format!("COMPILED = {}", if c.compiled { "True" } else { "False" }),
        ),
        ("SCRIPTS = None", format!("SCRIPTS = {}", json(c.scripts))),
        (
            "DEFAULT = None",
            format!("DEFAULT = {}", c.default_script.map_or("None".into(), json)),
        ),
        (
            "LEGACY = None",
            format!(
                "LEGACY = {{{}}}",
                c.legacy
                    .iter()
                    .map(|(name, python)| format!(
                        "{}: {}",
                        json(name),
                        if *python { "True" } else { "False" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        ("DIGEST = None", format!("DIGEST = {}", json(c.digest))),
        (
            "DISTRIBUTIONS = None",
            format!("DISTRIBUTIONS = {}", json(c.distributions)),
        ),
    ];
    let mut source = BOOTSTRAP.to_string();
    for (placeholder, value) in replacements {
        assert!(
            source.contains(placeholder),
            "bootstrap lost `{placeholder}`"
        );
        source = source.replacen(placeholder, &value, 1);
    }
    source
}

/// The bootstrap's bytecode, for `__main__.pyc` beside `__main__.py`. zipimport prefers
/// the `.pyc` when its magic number matches the running interpreter, and compiles each
/// module it loads twice (once to name its file, once to run it), so a source-only bootstrap
/// costs every start-up two compilations, several milliseconds. On another Python version
/// the magic differs, zipimport falls back to the source, and the bootstrap explains the
/// mismatch.
async fn compile_bootstrap(
    python: &InterpreterFacts,
    source: &str,
    work_dir: &Path,
    name: &str,
    version: &str,
) -> Result<Vec<u8>, ZipappError> {
    let dir = work_dir.join("bootstrap");
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    let source_path = dir.join("__main__.py");
    let target = dir.join("__main__.pyc");
    std::fs::write(&source_path, source).map_err(io("write", &source_path))?;
    let shown_as = format!("{name}-{version}.pyz/__main__.py");
    gradient_python::runtime::compile_file(&python.executable, &source_path, &target, &shown_as)
        .await?;
    std::fs::read(&target).map_err(io("read", &target))
}

/// A Python literal for plain data.
fn json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

/// Write the sha256 of everything before the comment into the comment.
fn seal(path: &Path) -> Result<(), ZipappError> {
    let mut bytes = std::fs::read(path).map_err(io("read", path))?;
    let body = bytes.len() - DIGEST_LEN;
    let digest = hex::encode(Sha256::digest(&bytes[..body]));
    bytes[body..].copy_from_slice(digest.as_bytes());
    std::fs::write(path, &bytes).map_err(io("write", path))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io("set permissions on", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_data_is_told_from_code_and_metadata() {
        for data in [
            "blib2to3/Grammar.txt",
            "app/templates/index.html",
            "pkg/data/x.json",
        ] {
            assert!(is_package_data(data), "{data}");
        }
        for other in [
            "click/core.py",
            "click/py.typed",
            "six.py",
            "click-8.1.7.dist-info/LICENSE.txt",
            "pkg/__pycache__/x.cpython-311.pyc",
            "pkg/stubs.pyi",
        ] {
            assert!(!is_package_data(other), "{other}");
        }
    }

    #[test]
    fn compiled_modules_are_recognised() {
        assert!(is_native(
            "msgpack/_cmsgpack.cpython-311-x86_64-linux-gnu.so"
        ));
        assert!(is_native("numpy.libs/libopenblas64_p-r0-15028c96.3.21.so"));
        assert!(is_native("pkg/libfoo.so.1"));
        assert!(!is_native("pkg/solver.py"));
    }

    #[test]
    fn the_bootstrap_gets_every_constant() {
        let python = InterpreterFacts {
            executable: "/usr/bin/python3.11".into(),
            implementation: "cpython".into(),
            version: (3, 11, 7),
            python_tag: "cp311".into(),
            abi_tag: "cp311".into(),
            platform_tag: "linux_x86_64".into(),
            base_prefix: "/usr".into(),
            libc: None,
        };
        let source = bootstrap_source(BootstrapConstants {
            name: "demo",
            version: "1",
            python: &python,
            native: &["msgpack".to_string()],
            extract: &["msgpack/_c.so"],
            compiled: true,
            scripts: &BTreeMap::from([("demo".to_string(), "demo:main".to_string())]),
            default_script: Some("demo"),
            legacy: &BTreeMap::from([("tool".to_string(), true)]),
            digest: "ab",
            distributions: &["demo-1.dist-info".to_string()],
        });
        assert!(source.contains("BUILT_FOR = (\"cpython\", (3, 11), \"cp311\", \"linux_x86_64\")"));
        assert!(source.contains("EXTRACT = [\"msgpack/_c.so\"]"));
        assert!(source.contains("DISTRIBUTIONS = [\"demo-1.dist-info\"]"));
        assert!(source.contains("COMPILED = True"));
        assert!(source.contains("LEGACY = {\"tool\": True}"));
        assert!(!source.contains("= None  #"), "a constant was left unset");
    }
}
