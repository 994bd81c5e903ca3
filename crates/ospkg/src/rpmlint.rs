//! The rpmlint filters of a package: `/usr/share/doc/NAME/NAME.rpmlintrc`, one `addFilter`
//! for each tag the package draws by design, with the reason above it, and written again
//! beside the published rpm as `NAME.rpmlintrc`. rpmlint 2.4 reads filters given with
//! `-r FILE` or the one `*.rpmlintrc` beside the single rpm it checks (nothing inside a
//! package), and
//! reports a filter that matches nothing as an error (`unused-rpmlintrc-filter`): so each
//! filter is written only when the package's files draw its tag, which is decided here by
//! rpmlint's own rules (the paths it takes for libraries, the ELF sections and symbols it
//! reads). Tags that follow from a real defect are fixed in the writer instead.
//!
//! ```text
//!  bundled runtime (/usr/lib/NAME)  private libraries: no ldconfig, no SysV .hash, not
//!                                   a versioned shared-library package; a stored stdlib
//!                                   zip; gethostbyname in prebuilt code; equal files
//!  every package                    unsigned; the group Unspecified; console scripts
//!                                   without manual pages
//! ```

use crate::spec::PackageSpec;
use gradient_archive::{Entry, EntryKind};
use std::collections::BTreeMap;
use std::path::Path;

/// The package's files as the rpm lists them (only the folders it owns), its rpmlintrc
/// among them, sorted.
pub(crate) fn with_rpmlintrc(spec: &PackageSpec, arch: &str) -> Vec<Entry> {
    let mut files: Vec<Entry> = spec
        .files
        .iter()
        .filter(|e| !matches!(e.kind, EntryKind::Dir) || spec.owns(&e.path))
        .cloned()
        .collect();
    let doc = format!("usr/share/doc/{}", spec.name);
    if !files.iter().any(|e| e.path == doc) {
        files.push(Entry {
            path: doc.clone(),
            kind: EntryKind::Dir,
            mode: 0o755,
        });
    }
    let path = format!("{doc}/{}.rpmlintrc", spec.name);
    // Its own path is among those rpmlint checks; its text is not (a text file, unique).
    files.push(Entry {
        path: path.clone(),
        kind: EntryKind::File(Vec::new()),
        mode: 0o644,
    });
    let text = rpmlintrc(spec, arch, &files);
    files.retain(|e| e.path != path);
    files.push(Entry {
        path,
        kind: EntryKind::File(text.into_bytes()),
        mode: 0o644,
    });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    files
}

/// The rpmlintrc the package at `rpm` carries, named `NAME.rpmlintrc`: rpmlint reads the one
/// `*.rpmlintrc` in the folder of the single package it checks. `None` for a package
/// without one, or one that cannot be read.
pub(crate) fn shipped(rpm: &Path) -> Option<(String, Vec<u8>)> {
    let package = ::rpm::Package::open(rpm).ok()?;
    let name = package.metadata.get_name().ok()?.to_string();
    let wanted = format!("/usr/share/doc/{name}/{name}.rpmlintrc");
    for file in package.files().ok()? {
        let file = file.ok()?;
        if file.metadata.path() == Path::new(&wanted) {
            return Some((format!("{name}.rpmlintrc"), file.into_content()?));
        }
    }
    None
}

/// `NAME.rpmlintrc` for the package file `NAME-VERSION-RELEASE.ARCH.rpm` (neither version
/// nor release holds a `-`).
pub(crate) fn file_name(rpm_file: &str) -> Option<String> {
    let mut parts = rpm_file.strip_suffix(".rpm")?.rsplitn(3, '-');
    let name = parts.nth(2).filter(|n| !n.is_empty())?;
    Some(format!("{name}.rpmlintrc"))
}

/// The rpmlintrc of a package holding `files` (paths relative to `/`).
fn rpmlintrc(spec: &PackageSpec, arch: &str, files: &[Entry]) -> String {
    let name = &spec.name;
    let own = format!("usr/lib/{name}/");
    // rpmlint's lines read `NAME.ARCH: E: TAG DETAILS`; a filter is a Python regex.
    let head = format!("^{}\\.{}: ", escape(name), escape(arch));
    let under = format!("/usr/lib/{}/", escape(name));
    let files: Vec<Facts> = files.iter().map(Facts::of).collect();
    let private = |f: &&Facts| f.path.starts_with(&own);
    let mut text = format!(
        "# rpmlint filters for {name}, written by gradient: each tag below follows from how the\n\
         # package is made, and the reason is above it. Use: rpmlint -r THIS-FILE PACKAGE.rpm\n"
    );
    let mut add = |why: &str, filter: String| {
        text.push_str(&format!("\n{why}\naddFilter(\"{filter}\")\n"));
    };

    if files
        .iter()
        .filter(private)
        .any(|f| f.regular && ldconfig_path(&f.path))
    {
        add(
            "# The libraries under /usr/lib/NAME are the bundled CPython's own: its interpreter\n\
             # finds them through its RPATH ($ORIGIN/../lib), not through the linker's cache, and\n\
             # they must stay off the system's library path, so no scriptlet runs ldconfig.",
            format!(
                "{head}E: (library-without-ldconfig-post(in|un)|post(in|un)-without-ldconfig) {under}"
            ),
        );
    }
    if files
        .iter()
        .filter(private)
        .any(|f| f.shared_library && !f.sections.iter().any(|s| s == ".hash"))
    {
        add(
            "# The bundled libraries are the build machine's own, linked as distributions link\n\
             # them today: with a .gnu.hash section (which glibc's loader uses) and no SysV\n\
             # .hash; adding one would mean linking them again.",
            format!("{head}E: missing-hash-section {under}"),
        );
    }
    let has_library = files.iter().any(|f| f.shared_library);
    if has_library
        && files
            .iter()
            .any(|f| !so_path(&f.path) && !versioned(&format!("/{}", f.path)))
    {
        add(
            "# rpmlint takes a package holding a shared library for a shared-library package\n\
             # (named after its soname, holding nothing else). This is an application carrying\n\
             # private copies of the libraries its CPython needs, so its other paths are not\n\
             # versioned.",
            format!("{head}E: non-versioned-file-in-library-package /"),
        );
    }
    if files
        .iter()
        .filter(private)
        .any(|f| f.regular && stdlib_zip(name, &f.path))
    {
        add(
            "# The standard library's zip is stored, not deflated, on purpose: the payload's zstd\n\
             # compresses it better that way (the sample's: 3.9 MB in the payload, 4.5 MB if\n\
             # deflated), and zipimport reads its members without inflating them.",
            format!("{head}E: uncompressed-zip {under}lib/python[0-9]+\\.zip$"),
        );
    }
    if files.iter().filter(private).any(|f| f.calls_gethostbyname) {
        add(
            "# Prebuilt code of the bundled CPython and its libraries (Python's socket module\n\
             # offers gethostbyname itself); the package does not change it.",
            format!("{head}W: binary-or-shlib-calls-gethostbyname {under}"),
        );
    }
    let (duplicates, waste) = duplicates(&files, &own);
    if duplicates {
        add(
            "# Files of the bundled runtime and distributions that happen to be equal (each\n\
             # distribution's INSTALLER, licence texts): each is read where its owner put it,\n\
             # and the payload's compression stores the repeats for next to nothing.",
            format!("{head}W: files-duplicate {under}"),
        );
    }
    if waste {
        add(
            "# The same equal files, counted together.",
            format!("{head}E: files-duplicated-waste "),
        );
    }
    if files
        .iter()
        .any(|f| f.path.starts_with("usr/bin/") && !f.dir)
    {
        add(
            "# Console scripts of a Python application come without manual pages.",
            format!("{head}W: no-manual-page-for-binary "),
        );
    }
    add(
        "# Fedora's packaging guidelines dropped the Group tag: the package has the group\n\
         # rpmbuild writes when a spec names none, Unspecified, which rpmlint counts as none.",
        format!("{head}E: no-group-tag$"),
    );
    add(
        "# gradient writes packages unsigned (docs/tiers.md, Limits): a package is signed\n\
         # with its publisher's key, after it is built.",
        format!("{head}E: no-signature$"),
    );
    text
}

/// What rpmlint's checks read of one file.
struct Facts {
    path: String,
    dir: bool,
    regular: bool,
    /// An ELF file where rpmlint looks for shared libraries (`.../lib/NAME.so[.N...]`).
    shared_library: bool,
    sections: Vec<String>,
    calls_gethostbyname: bool,
    content: Option<Vec<u8>>,
}

impl Facts {
    fn of(entry: &Entry) -> Facts {
        let mut facts = Facts {
            path: entry.path.clone(),
            dir: matches!(entry.kind, EntryKind::Dir),
            regular: matches!(entry.kind, EntryKind::File(_)),
            shared_library: false,
            sections: Vec::new(),
            calls_gethostbyname: false,
            content: None,
        };
        let EntryKind::File(data) = &entry.kind else {
            return facts;
        };
        facts.content = Some(data.clone());
        if !data.starts_with(b"\x7fELF") {
            return facts;
        }
        let Ok(elf) = goblin::elf::Elf::parse(data) else {
            return facts;
        };
        facts.shared_library = so_path(&entry.path);
        facts.sections = elf
            .section_headers
            .iter()
            .filter_map(|s| elf.shdr_strtab.get_at(s.sh_name))
            .map(str::to_string)
            .collect();
        const CALLS: [&str; 6] = [
            "gethostbyname",
            "gethostbyname2",
            "gethostbyaddr",
            "gethostbyname_r",
            "gethostbyname2_r",
            "gethostbyaddr_r",
        ];
        let named = |strtab: &goblin::strtab::Strtab, sym: goblin::elf::Sym| {
            sym.st_type() == goblin::elf::sym::STT_FUNC
                && strtab
                    .get_at(sym.st_name)
                    .is_some_and(|n| CALLS.iter().any(|c| n.ends_with(c)))
        };
        facts.calls_gethostbyname = elf.dynsyms.iter().any(|s| named(&elf.dynstrtab, s))
            || elf.syms.iter().any(|s| named(&elf.strtab, s));
        facts
    }
}

/// rpmlint's `/lib(64)?/[^/]+\.so(\.[0-9]+)*$`: a `.so` file, numbers after it, in a folder
/// named `lib` or `lib64`.
fn so_path(path: &str) -> bool {
    let path = format!("/{path}");
    let Some((folder, file)) = path.rsplit_once('/') else {
        return false;
    };
    if !(folder.ends_with("/lib") || folder.ends_with("/lib64")) {
        return false;
    }
    file.match_indices(".so").any(|(at, _)| {
        let tail = &file[at + 3..];
        at > 0
            && (tail.is_empty()
                || tail.strip_prefix('.').is_some_and(|numbers| {
                    numbers
                        .split('.')
                        .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                }))
    })
}

/// rpmlint's library path for the ldconfig check, in a folder named `lib` or `lib64`:
/// `lib` + a letter or digit, then `.so.` + a version (`libz.so.1`), or a version before
/// `.so` (`libfoo-2.1.so`).
fn ldconfig_path(path: &str) -> bool {
    let path = format!("/{path}");
    let Some((folder, file)) = path.rsplit_once('/') else {
        return false;
    };
    if !(folder.ends_with("/lib") || folder.ends_with("/lib64")) {
        return false;
    }
    let Some(rest) = file.strip_prefix("lib") else {
        return false;
    };
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let alnum = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !alnum(rest.bytes().next()) {
        return false;
    }
    if let Some((stem, version)) = rest.split_once(".so.") {
        if (stem.len() == 1 || alnum(stem.bytes().last()))
            && stem.bytes().all(|b| word(b) || b == b'-' || b == b'.')
            && !version.is_empty()
            && version.bytes().all(|b| word(b) || b == b'+' || b == b'.')
        {
            return true;
        }
    }
    // A word, `-` and a digit, then nothing or `[\w.-]*` ending in a letter or digit.
    let Some(stem) = rest.strip_suffix(".so") else {
        return false;
    };
    let Some((name, version)) = stem.split_once('-') else {
        return false;
    };
    name.bytes().all(word)
        && version.bytes().next().is_some_and(|b| b.is_ascii_digit())
        && (version.len() == 1
            || (alnum(version.bytes().last())
                && version.bytes().all(|b| word(b) || b == b'-' || b == b'.')))
}

/// rpmlint's `[^.][0-9]`: a digit after anything but a dot somewhere in the path.
fn versioned(path: &str) -> bool {
    path.as_bytes()
        .windows(2)
        .any(|w| w[0] != b'.' && w[1].is_ascii_digit())
}

/// `usr/lib/NAME/lib/pythonXY.zip`, the zipped standard library.
fn stdlib_zip(name: &str, path: &str) -> bool {
    path.strip_prefix(&format!("usr/lib/{name}/lib/python"))
        .and_then(|rest| rest.strip_suffix(".zip"))
        .is_some_and(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
}

/// rpmlint's duplicates check, on the package's regular files: whether it warns about equal
/// files whose last path (the one it names first) is under `own`, and whether it counts
/// more than 100 kB of repeats (an error), all of them under `own`.
fn duplicates(files: &[Facts], own: &str) -> (bool, bool) {
    let mut groups: BTreeMap<&[u8], Vec<&str>> = BTreeMap::new();
    for f in files {
        if let Some(content) = &f.content {
            groups.entry(content).or_default().push(&f.path);
        }
    }
    // Its prefix: the first two folders of the path (the first one of `/usr/FILE`).
    let prefix = |path: &str| {
        let parts: Vec<&str> = path.split('/').collect();
        parts[..parts.len().saturating_sub(1).clamp(1, 2)].join("/")
    };
    let (mut warned, mut waste, mut all_own) = (false, 0usize, true);
    for (content, mut paths) in groups {
        if paths.len() < 2 {
            continue;
        }
        paths.sort();
        let first = paths.pop().expect("two at least");
        let repeats = paths.iter().filter(|p| prefix(p) == prefix(first)).count();
        if repeats == 0 {
            continue;
        }
        if !content.is_empty() {
            warned |= first.starts_with(own);
        }
        waste += content.len() * repeats;
        all_own &= first.starts_with(own) && paths.iter().all(|p| p.starts_with(own));
    }
    (warned, waste > 100_000 && all_own)
}

/// `text` as a Python regex matching it literally (package names and architectures hold
/// letters, digits and `-._+`).
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_as_rpmlint_reads_them() {
        assert!(so_path("usr/lib/app/lib/libz.so.1"));
        assert!(so_path("usr/lib/app/lib/libpython3.11.so.1.0"));
        assert!(so_path("usr/lib64/libfoo.so"));
        assert!(!so_path(
            "usr/lib/app/lib/python3.11/lib-dynload/_ssl.cpython-311.so"
        ));
        assert!(!so_path("usr/lib/app/lib/libfoo.so.1a"));
        assert!(so_path("usr/lib/app/lib/libfoo.so.x.so.2"));
        assert!(!so_path("usr/lib/app/lib/.so"));
        assert!(ldconfig_path("usr/lib/app/lib/libbz2.so.1.0"));
        assert!(ldconfig_path("usr/lib/app/lib/libpython3.11.so.1.0"));
        assert!(!ldconfig_path("usr/lib/app/lib/libfoo.so"));
        assert!(!ldconfig_path("usr/lib/app/bin/libfoo.so.1"));
        for (file, library) in [
            ("libz.so.1", true),
            ("libbz2.so.1.0", true),
            ("liba.so.1", true),
            ("libfoo-2.1.so", true),
            ("libfoo-2.so", true),
            ("libfoo-x.so", false),
            ("lib_x.so.1", false),
            ("libx-.so.1", false),
        ] {
            assert_eq!(
                ldconfig_path(&format!("usr/lib/app/lib/{file}")),
                library,
                "{file}"
            );
        }
        assert!(versioned("/usr/lib/app/lib/python3.11"));
        assert!(!versioned("/usr/lib/app/bin"));
        assert!(!versioned("/usr/share/doc/app.2"));
        assert!(stdlib_zip("app", "usr/lib/app/lib/python311.zip"));
        assert!(!stdlib_zip("app", "usr/lib/app/lib/python3.11/x.zip"));
        assert_eq!(escape("my.app+x"), "my\\.app\\+x");
        assert_eq!(
            file_name("my-app-1.2~rc1-1.x86_64.rpm").as_deref(),
            Some("my-app.rpmlintrc")
        );
        assert_eq!(file_name("x.deb"), None);
    }

    #[test]
    fn equal_files_are_counted_as_rpmlint_counts_them() {
        let file = |path: &str, content: &[u8]| Facts {
            path: path.into(),
            dir: false,
            regular: true,
            shared_library: false,
            sections: Vec::new(),
            calls_gethostbyname: false,
            content: Some(content.to_vec()),
        };
        let own = "usr/lib/app/";
        let equal = [
            file("usr/lib/app/a/INSTALLER", b"uv\n"),
            file("usr/lib/app/b/INSTALLER", b"uv\n"),
        ];
        assert_eq!(duplicates(&equal, own), (true, false));
        // Under different prefixes rpmlint lets them be.
        let apart = [file("usr/lib/app/a", b"x"), file("usr/share/app/a", b"x")];
        assert_eq!(duplicates(&apart, own), (false, false));
        let big = vec![7u8; 60_000];
        let wasteful = [
            file("usr/lib/app/a", &big),
            file("usr/lib/app/b", &big),
            file("usr/lib/app/c", &big),
        ];
        assert_eq!(duplicates(&wasteful, own), (true, true));
    }
}
