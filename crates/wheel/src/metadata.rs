//! Reading and checking what a backend wrote: core metadata (METADATA, PKG-INFO), the wheel's
//! WHEEL and RECORD files, its file name's tags, and its console scripts.

use crate::WheelError;
use base64::Engine;
use gradient_archive::{read_tar_gz_entries, read_zip_entries, EntryKind};
use gradient_core::{normalize_name, Project};
pub use gradient_core::{CoreMetadata, Tag, WheelInfo};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// What a check found wrong, and what to do about it when there is something to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub text: String,
    pub hint: Option<String>,
}

impl From<String> for Problem {
    fn from(text: String) -> Problem {
        Problem { text, hint: None }
    }
}

/// Check the fields gradient copies into packages, images and file names, as a hostile
/// backend may write them: each must be one line (a `\r` ends a header for Python's own
/// parser, so the field would mean one thing to pip and another to gradient, and in a
/// Debian control file it adds fields), the name a PEP 508 name and the version PEP 440.
/// `Err` is the problem, naming the field and `source` (METADATA or PKG-INFO).
pub fn check_core_metadata(metadata: &CoreMetadata, source: &str) -> Result<(), Problem> {
    let mut fields: Vec<(&str, &str)> =
        vec![("Name", &metadata.name), ("Version", &metadata.version)];
    let optional = [
        ("Summary", &metadata.summary),
        ("Requires-Python", &metadata.requires_python),
        ("License-Expression", &metadata.license_expression),
        ("License", &metadata.license_field),
        ("Author", &metadata.author),
        ("Author-email", &metadata.author_email),
        ("Maintainer", &metadata.maintainer),
        ("Maintainer-email", &metadata.maintainer_email),
    ];
    fields.extend(
        optional
            .iter()
            .filter_map(|(field, value)| Some((*field, value.as_deref()?))),
    );
    fields.extend(
        metadata
            .requires_dist
            .iter()
            .map(|r| ("Requires-Dist", r.as_str())),
    );
    fields.extend(
        metadata
            .classifiers
            .iter()
            .map(|c| ("Classifier", c.as_str())),
    );
    for (label, url) in &metadata.urls {
        let field = if label == "Home-page" {
            "Home-page"
        } else {
            "Project-URL"
        };
        fields.extend([(field, label.as_str()), (field, url.as_str())]);
    }
    for (field, value) in fields {
        if let Some(c) = gradient_core::line_break(value) {
            return Err(Problem {
                text: format!(
                    "{source}'s `{field}` holds a line break or control character ({}): `{}`",
                    c.escape_unicode(),
                    shown(value)
                ),
                hint: Some(format!(
                    "every header of {source} is one line; check what the build backend writes"
                )),
            });
        }
    }
    if !gradient_core::is_valid_name(&metadata.name) {
        return Err(format!(
            "{source}'s `Name` is `{}`, not a valid project name (PEP 508)",
            metadata.name
        )
        .into());
    }
    if !gradient_core::is_pep440_version(&metadata.version) {
        return Err(format!(
            "{source}'s `Version` is `{}`, not a PEP 440 version",
            metadata.version
        )
        .into());
    }
    Ok(())
}

/// Parse RFC 822-style core metadata; only the header block is read.
pub fn parse_core_metadata(text: &str) -> CoreMetadata {
    let mut metadata = CoreMetadata::default();
    let mut key = String::new();
    for line in text.lines() {
        if line.is_empty() {
            break; // the body (long description) follows
        }
        if line.starts_with([' ', '\t']) {
            if key == "license" {
                metadata.license_field = None; // a licence's text, not its name
            }
            continue; // otherwise a continuation of a header we do not use
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        key = name.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        match key.as_str() {
            "name" => metadata.name = value,
            "version" => metadata.version = value,
            "summary" => metadata.summary = Some(value),
            "requires-python" => metadata.requires_python = Some(value),
            "requires-dist" => metadata.requires_dist.push(value),
            "classifier" => metadata.classifiers.push(value),
            "license-expression" => metadata.license_expression = Some(value),
            "license" => metadata.license_field = Some(value),
            "author" => metadata.author = Some(value),
            "author-email" => metadata.author_email = Some(value),
            "maintainer" => metadata.maintainer = Some(value),
            "maintainer-email" => metadata.maintainer_email = Some(value),
            "home-page" => metadata.urls.insert(0, ("Home-page".into(), value)),
            "project-url" => {
                if let Some((label, url)) = value.split_once(',') {
                    metadata
                        .urls
                        .push((label.trim().to_string(), url.trim().to_string()));
                }
            }
            _ => {}
        }
    }
    metadata
}

/// Expand a compressed tag set (`py2.py3-none-any`) into every tag it stands for.
pub fn expand_tags(python: &str, abi: &str, platform: &str) -> Vec<Tag> {
    Tag::expand(python, abi, platform)
}

/// Open a wheel and check it: file name, WHEEL tags, RECORD hashes and sizes.
pub fn inspect_wheel(path: &Path) -> Result<WheelInfo, WheelError> {
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let invalid = |problem: String| WheelError::Invalid {
        file: file.clone(),
        problem,
        hint: None,
    };
    let found = |problem: Problem| WheelError::Invalid {
        file: file.clone(),
        problem: problem.text,
        hint: problem.hint,
    };
    let stem = file
        .strip_suffix(".whl")
        .ok_or_else(|| invalid("a wheel's name must end in `.whl`".into()))?;
    let parts: Vec<&str> = stem.split('-').collect();
    if !(parts.len() == 5 || parts.len() == 6) {
        return Err(invalid(
            "the name is not NAME-VERSION(-BUILD)-PYTHON-ABI-PLATFORM.whl".into(),
        ));
    }
    let (name, version) = (parts[0], parts[1]);
    let n = parts.len();
    let name_tags = expand_tags(parts[n - 3], parts[n - 2], parts[n - 1]);

    let entries = read_zip_entries(path)?;
    for entry in &entries {
        check_entry_path(&entry.path).map_err(&found)?;
    }
    let files: BTreeMap<&str, &[u8]> = entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File(data) => Some((e.path.as_str(), data.as_slice())),
            _ => None,
        })
        .collect();
    let dist_info = format!("{name}-{version}.dist-info");
    let read = |leaf: &str| -> Result<String, WheelError> {
        let key = format!("{dist_info}/{leaf}");
        files
            .get(key.as_str())
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .ok_or_else(|| invalid(format!("it has no `{key}`")))
    };

    // WHEEL: version and tags.
    let wheel_file = read("WHEEL")?;
    let mut wheel_tags = Vec::new();
    let mut root_is_purelib = false;
    for line in wheel_file.lines() {
        if let Some((key, value)) = line.split_once(':') {
            match key.trim() {
                "Tag" => {
                    let parts: Vec<&str> = value.trim().splitn(3, '-').collect();
                    if parts.len() != 3 {
                        return Err(invalid(format!(
                            "WHEEL has a malformed tag `{}`",
                            value.trim()
                        )));
                    }
                    wheel_tags.extend(expand_tags(parts[0], parts[1], parts[2]));
                }
                "Root-Is-Purelib" => root_is_purelib = value.trim().eq_ignore_ascii_case("true"),
                "Wheel-Version" if !value.trim().starts_with("1.") => {
                    return Err(invalid(format!(
                        "unsupported Wheel-Version {}",
                        value.trim()
                    )));
                }
                _ => {}
            }
        }
    }
    wheel_tags.sort();
    wheel_tags.dedup();
    if wheel_tags != name_tags {
        let show = |tags: &[Tag]| {
            tags.iter()
                .map(Tag::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(invalid(format!(
            "its file name says {} but its WHEEL file says {}",
            show(&name_tags),
            show(&wheel_tags)
        )));
    }

    // RECORD: every file listed with the right hash and size, and every file listed.
    let record = read("RECORD")?;
    let record_path = format!("{dist_info}/RECORD");
    let mut listed = BTreeSet::new();
    for line in record.lines().filter(|l| !l.trim().is_empty()) {
        let fields = split_csv(line);
        let [entry, hash, size] = fields.as_slice() else {
            return Err(invalid(format!("RECORD has a malformed line `{line}`")));
        };
        listed.insert(entry.clone());
        if *entry == record_path || entry.ends_with(".jws") || entry.ends_with(".p7s") {
            continue;
        }
        let data = files
            .get(entry.as_str())
            .ok_or_else(|| invalid(format!("RECORD lists `{entry}`, which is not in the wheel")))?;
        let expected = hash
            .strip_prefix("sha256=")
            .ok_or_else(|| invalid(format!("RECORD's hash for `{entry}` is not sha256")))?;
        let actual = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(data));
        if expected != actual {
            return Err(invalid(format!("`{entry}` does not match its RECORD hash")));
        }
        if size.parse::<usize>().ok() != Some(data.len()) {
            return Err(invalid(format!("`{entry}` does not match its RECORD size")));
        }
    }
    if let Some(unlisted) = files.keys().find(|f| !listed.contains(**f)) {
        return Err(invalid(format!(
            "`{unlisted}` is in the wheel but not in RECORD"
        )));
    }

    let metadata = parse_core_metadata(&read("METADATA")?);
    check_core_metadata(&metadata, "METADATA").map_err(&found)?;
    if normalize_name(&metadata.name).replace('-', "_") != normalize_name(name).replace('-', "_") {
        return Err(invalid(format!(
            "its file name says `{name}` but METADATA says `{}`",
            metadata.name
        )));
    }
    let console_scripts = read("entry_points.txt")
        .map(|text| parse_entry_points(&text, "console_scripts"))
        .unwrap_or_default();
    for (script, target) in &console_scripts {
        check_script_name(script).map_err(|why| {
            found(Problem {
                text: format!(
                    "its console script `{}` of `{}` is not a safe file name: {why}",
                    shown(script),
                    metadata.name
                ),
                hint: Some("a script becomes a file in bin/; its name must be letters, digits, `_`, `.` and `-` (the entry-points spec's advice), not `.` or `..`, not starting with `-`".into()),
            })
        })?;
        if !crate::scripts::is_object_reference(target) {
            return Err(found(Problem {
                text: format!(
                    "its console script `{script}` runs `{}`, which is not a `module:function` reference",
                    shown(target)
                ),
                hint: Some("an entry point names an importable module and an attribute, like `app.cli:main`".into()),
            }));
        }
        let module = target.split(':').next().unwrap_or_default().trim();
        if holds_module(&files, module) == Some(false) {
            return Err(found(Problem {
                text: format!(
                    "the console script `{script}` runs `{target}`, but the wheel holds no module `{module}`"
                ),
                hint: Some("check the script's entry in [project.scripts] against the package's modules".into()),
            }));
        }
    }
    let mut legacy_scripts = BTreeMap::new();
    for (path, data) in &files {
        let mut parts = path.split('/');
        let (Some(top), Some("scripts"), Some(script), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !top.ends_with(".data") {
            continue;
        }
        check_script_name(script).map_err(|why| {
            invalid(format!(
                "its script `{}` is not a safe file name: {why}",
                shown(script)
            ))
        })?;
        legacy_scripts.insert(script.to_string(), data.to_vec());
    }
    Ok(WheelInfo {
        metadata,
        tags: name_tags,
        root_is_purelib,
        console_scripts,
        legacy_scripts,
        has_native_code: files
            .keys()
            .any(|f| f.ends_with(".so") || f.contains(".so.")),
    })
}

/// Whether the wheel whose files are `files` holds the module `module` (`a.b.c`). `None`
/// when it cannot tell: the top-level package is not in the wheel, or it is a namespace
/// package (no `__init__.py`, or one that extends its path), which other distributions,
/// dependencies among them, may add modules to.
fn holds_module(files: &BTreeMap<&str, &[u8]>, module: &str) -> Option<bool> {
    // Files installed into site-packages from the .data folder count as the root's.
    let installed = |file: &str| -> String {
        file.split_once(".data/purelib/")
            .or_else(|| file.split_once(".data/platlib/"))
            .map_or(file, |(_, rest)| rest)
            .to_string()
    };
    // What follows a module's path in one of its files: `.py`, `.pyc` or an extension
    // module's `.TAG.so`, or `/` inside its package folder.
    let is_module_source = |rest: &str| {
        rest.starts_with('.') && [".py", ".pyc", ".so"].iter().any(|e| rest.ends_with(e))
    };
    let top = module.split('.').next().unwrap_or_default();
    let top_init = format!("{top}/__init__.py");
    let path = module.replace('.', "/");
    let mut closed_package = false;
    let mut found = false;
    for (file, data) in files {
        let file = installed(file);
        if file == top_init {
            let text = String::from_utf8_lossy(data);
            closed_package = !(text.contains("extend_path") || text.contains("declare_namespace"));
        }
        closed_package |= file.strip_prefix(top).is_some_and(is_module_source);
        found |= file
            .strip_prefix(&path)
            .is_some_and(|rest| rest.starts_with('/') || is_module_source(rest));
    }
    closed_package.then_some(found)
}

/// Read an sdist's PKG-INFO, checking the layout the sdist spec asks for.
pub fn inspect_sdist(path: &Path) -> Result<CoreMetadata, WheelError> {
    let file = path
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let invalid = |problem: String| WheelError::Invalid {
        file: file.clone(),
        problem,
        hint: None,
    };
    let found = |problem: Problem| WheelError::Invalid {
        file: file.clone(),
        problem: problem.text,
        hint: problem.hint,
    };
    let top = file
        .strip_suffix(".tar.gz")
        .ok_or_else(|| invalid("an sdist's name must end in `.tar.gz`".into()))?;
    let entries = read_tar_gz_entries(path)?;
    if let Some(stray) = entries
        .iter()
        .find(|e| e.path.split('/').next() != Some(top))
    {
        return Err(invalid(format!(
            "`{}` is outside the top-level folder `{top}/`",
            stray.path
        )));
    }
    let pkg_info = entries
        .iter()
        .find(|e| e.path == format!("{top}/PKG-INFO"))
        .and_then(|e| match &e.kind {
            EntryKind::File(data) => Some(String::from_utf8_lossy(data).into_owned()),
            _ => None,
        })
        .ok_or_else(|| invalid(format!("it has no `{top}/PKG-INFO`")))?;
    let has_build_file = entries
        .iter()
        .any(|e| e.path == format!("{top}/pyproject.toml") || e.path == format!("{top}/setup.py"));
    if !has_build_file {
        return Err(invalid(
            "it has neither pyproject.toml nor setup.py at its top".into(),
        ));
    }
    let metadata = parse_core_metadata(&pkg_info);
    check_core_metadata(&metadata, "PKG-INFO").map_err(found)?;
    Ok(metadata)
}

/// Where a wheel's entry installs must stay inside the folder it installs into, as pip
/// requires: the root for most entries, the scheme's folder for `NAME.data/SCHEME/...`. A
/// `\` counts as a separator too (it is one where the wheel may be installed), and a name
/// with a line break would add lines to RECORD-like lists (a deb's md5sums).
fn check_entry_path(entry: &str) -> Result<(), Problem> {
    let shown = shown(entry);
    if gradient_core::line_break(entry).is_some() {
        return Err(format!("the entry `{shown}` has a control character in its name").into());
    }
    let parts: Vec<&str> = entry.split(['/', '\\']).collect();
    let drive = parts[0].len() == 2 && parts[0].ends_with(':');
    let outside = |how: &str| Problem {
        text: format!("the entry `{shown}` is outside the folder it installs into{how}"),
        hint: Some(
            "pip refuses to install such a wheel; check what the build backend puts into it".into(),
        ),
    };
    if entry.starts_with(['/', '\\']) || drive {
        return Err(outside(" (an absolute path)"));
    }
    // Whether a path climbs above where it starts.
    let climbs = |parts: &[&str]| {
        let mut depth = 0usize;
        parts.iter().any(|part| match *part {
            "" | "." => false,
            ".." if depth == 0 => true,
            ".." => {
                depth -= 1;
                false
            }
            _ => {
                depth += 1;
                false
            }
        })
    };
    if climbs(&parts) {
        return Err(outside(""));
    }
    if let Some((first, rest)) = parts.split_first().filter(|(f, _)| f.ends_with(".data")) {
        let Some((scheme, rest)) = rest.split_first().filter(|(_, r)| !r.is_empty()) else {
            return Err(format!(
                "the entry `{shown}` is not in a scheme's folder of `{first}/` (like `{first}/data/FILE`)"
            )
            .into());
        };
        if !["purelib", "platlib", "headers", "scripts", "data"].contains(scheme) {
            return Err(format!(
                "the entry `{shown}` is in `{first}/{scheme}/`, and `{scheme}` is not an install scheme (purelib, platlib, headers, scripts, data)"
            )
            .into());
        }
        if climbs(rest) {
            return Err(outside(""));
        }
    }
    Ok(())
}

/// A name from an archive as a message shows it: as written, or escaped when it holds
/// control characters that would garble the terminal.
fn shown(text: &str) -> String {
    match gradient_core::line_break(text) {
        Some(_) => text.escape_debug().to_string(),
        None => text.to_string(),
    }
}

/// Whether a console script's name is a safe file name: it becomes `bin/NAME` in every
/// tier, a symlink on the build host in smoke tests, a path in a package's file list.
/// `Err` says which rule it breaks.
pub fn check_script_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name == "." || name == ".." {
        return Err("it names a folder");
    }
    if name.starts_with('-') {
        return Err("it starts with `-`, which commands take for an option");
    }
    if name.len() > 255 {
        return Err("it is longer than the 255 bytes a file name can have");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || "_.-".contains(c))
    {
        return Err("it has characters other than letters, digits, `_`, `.` and `-`");
    }
    Ok(())
}

/// Check built metadata against what pyproject.toml declares (fields that are not dynamic).
pub fn check_against_project(
    file: &str,
    metadata: &CoreMetadata,
    project: &Project,
) -> Result<(), WheelError> {
    if !project.declares_metadata {
        return Ok(());
    }
    let mismatch = |problem: String, hint: &str| WheelError::Mismatch {
        file: file.to_string(),
        problem,
        hint: hint.to_string(),
    };
    if let Some(name) = &project.name {
        if normalize_name(name) != normalize_name(&metadata.name) {
            return Err(mismatch(
                format!(
                    "[project] name is `{name}`, the built metadata says `{}`",
                    metadata.name
                ),
                "check the build backend's own name settings",
            ));
        }
    }
    if let Some(version) = &project.version {
        if canonical_version(version) != canonical_version(&metadata.version) {
            return Err(mismatch(
                format!(
                    "[project] version is `{version}`, the built metadata says `{}`",
                    metadata.version
                ),
                "check the build backend's own version settings",
            ));
        }
    }
    if !project.dynamic.iter().any(|d| d == "dependencies") {
        let declared: BTreeSet<String> = project
            .dependencies
            .iter()
            .map(|r| canonical_requirement(r))
            .collect();
        let built: BTreeSet<String> = metadata
            .requires_dist
            .iter()
            .filter(|r| !is_optional(r))
            .map(|r| canonical_requirement(r))
            .collect();
        if declared != built {
            let show = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(", ");
            return Err(mismatch(
                format!(
                    "[project] dependencies are [{}], the built Requires-Dist are [{}]",
                    show(&declared),
                    show(&built)
                ),
                "the backend must write [project] dependencies unchanged; check its configuration",
            ));
        }
    }
    Ok(())
}

/// Whether a Requires-Dist entry belongs to an extra (`...; extra == "cli"`).
fn is_optional(requirement: &str) -> bool {
    requirement
        .split_once(';')
        .is_some_and(|(_, marker)| marker.replace(char::is_whitespace, "").contains("extra=="))
}

/// PEP 440 versions compared loosely: case, a leading `v`, leading zeros and trailing zero
/// release segments (`1.0` is `1.0.0`) do not matter.
fn canonical_version(version: &str) -> String {
    let lower = version.trim().to_ascii_lowercase();
    let lower = lower.strip_prefix('v').unwrap_or(&lower);
    let split = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (release, rest) = lower.split_at(split);
    let mut parts: Vec<u64> = release
        .split('.')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap_or(0))
        .collect();
    while parts.len() > 1 && parts.last() == Some(&0) {
        parts.pop();
    }
    let release: Vec<String> = parts.iter().map(u64::to_string).collect();
    format!("{}{rest}", release.join("."))
}

/// A requirement reduced to what matters: normalised name, sorted extras and specifiers,
/// marker without spaces and with one kind of quote.
fn canonical_requirement(requirement: &str) -> String {
    let (spec, marker) = match requirement.split_once(';') {
        Some((spec, marker)) => (
            spec,
            marker.replace(char::is_whitespace, "").replace('\'', "\""),
        ),
        None => (requirement, String::new()),
    };
    let spec: String = spec.chars().filter(|c| !c.is_whitespace()).collect();
    let name_end = spec
        .find(|c: char| "[(<>=!~@".contains(c))
        .unwrap_or(spec.len());
    let (name, rest) = spec.split_at(name_end);
    let (extras, specifiers) = match rest.strip_prefix('[').and_then(|r| r.split_once(']')) {
        Some((extras, specifiers)) => {
            let mut extras: Vec<String> = extras.split(',').map(normalize_name).collect();
            extras.sort();
            (extras.join(","), specifiers)
        }
        None => (String::new(), rest),
    };
    let specifiers = specifiers.trim_start_matches('(').trim_end_matches(')');
    let mut specifiers: Vec<&str> = specifiers.split(',').filter(|s| !s.is_empty()).collect();
    specifiers.sort();
    format!(
        "{}[{extras}]{};{marker}",
        normalize_name(name),
        specifiers.join(",")
    )
}

/// The entries of one section of an entry_points.txt file.
pub fn parse_entry_points(text: &str, section: &str) -> BTreeMap<String, String> {
    let mut in_section = false;
    let mut entries = BTreeMap::new();
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_section = line == format!("[{section}]");
        } else if in_section {
            if let Some((name, value)) = line.split_once('=') {
                entries.insert(name.trim().to_string(), value.trim().to_string());
            }
        }
    }
    entries
}

/// Split one line of RECORD's CSV (paths may be quoted and hold commas).
fn split_csv(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_console_script_module_is_looked_for_only_under_packages_the_wheel_has() {
        let files: BTreeMap<&str, &[u8]> = [
            ("app/__init__.py", &b""[..]),
            ("app/cli.py", b""),
            ("app/fast.cpython-311-x86_64-linux-gnu.so", b""),
            ("app/sub/data.txt", b""),
            ("tool.py", b""),
            ("app-1.0.dist-info/METADATA", b""),
            ("app-1.0.data/purelib/extra/__init__.py", b""),
            ("app-1.0.data/purelib/extra/run.py", b""),
            ("ns/part/mine.py", b""),
            (
                "old/__init__.py",
                b"__path__ = __import__('pkgutil').extend_path(__path__, __name__)",
            ),
        ]
        .into_iter()
        .collect();
        let holds = |module| holds_module(&files, module);
        assert_eq!(holds("app.cli"), Some(true));
        assert_eq!(holds("app"), Some(true));
        assert_eq!(holds("app.fast"), Some(true));
        assert_eq!(holds("app.sub"), Some(true));
        assert_eq!(holds("tool"), Some(true));
        assert_eq!(holds("extra.run"), Some(true));
        assert_eq!(holds("app.climissing"), Some(false));
        assert_eq!(holds("app.c"), Some(false));
        assert_eq!(holds("extra.missing"), Some(false));
        // Not in the wheel, or a namespace other distributions may add to: no verdict.
        assert_eq!(holds("click.cli"), None);
        assert_eq!(holds("ns.other.tool"), None);
        assert_eq!(holds("old.other"), None);
    }

    #[test]
    fn requirements_compare_by_meaning_not_spelling() {
        assert_eq!(
            canonical_requirement("msgpack >= 1.0, <2"),
            canonical_requirement("msgpack<2,>=1.0")
        );
        assert_eq!(
            canonical_requirement("Foo_Bar[b,a]>=1; python_version < '3.11'"),
            canonical_requirement("foo-bar[a,b]>=1 ; python_version<\"3.11\"")
        );
        assert_ne!(
            canonical_requirement("click>=8"),
            canonical_requirement("click>=7")
        );
    }

    #[test]
    fn versions_compare_loosely() {
        assert_eq!(canonical_version("1.02.0"), canonical_version("v1.2.0"));
        assert_eq!(canonical_version("1.0"), canonical_version("1.0.0"));
        assert_eq!(canonical_version("2.0rc1"), canonical_version("2.0.0rc1"));
        assert_ne!(canonical_version("2.0rc1"), canonical_version("2.0rc2"));

        assert_ne!(canonical_version("1.2"), canonical_version("1.3"));
    }

    #[test]
    fn projects_without_a_project_table_are_not_checked_against_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("setup.py"),
            "from setuptools import setup\nsetup()\n",
        )
        .unwrap();
        let project = Project::load(dir.path()).unwrap();
        let built = parse_core_metadata("Name: legacy\nVersion: 1.0\nRequires-Dist: click>=8\n");
        assert!(check_against_project("legacy-1.0.tar.gz", &built, &project).is_ok());

        let declared = Project::parse(
            dir.path(),
            &dir.path().join("pyproject.toml"),
            "[project]\nname = \"legacy\"\nversion = \"1.0.0\"\ndependencies = []\n",
        )
        .unwrap();
        let err = check_against_project("legacy-1.0.tar.gz", &built, &declared).unwrap_err();
        assert!(
            err.to_string().contains("[project] dependencies are []"),
            "{err}"
        );
    }

    #[test]
    fn entries_stay_inside_the_folder_they_install_into() {
        for good in [
            "app/__init__.py",
            "app/./sub/../x.py",
            "app-1.0.data/scripts/tool",
            "app-1.0.data/data/share/app/x/../y",
            "app-1.0.data/purelib/extra/__init__.py",
            "weird\\name.py",
        ] {
            assert_eq!(check_entry_path(good), Ok(()), "{good}");
        }
        for bad in [
            "../x",
            "app/../../x",
            "/etc/passwd",
            "\\server\\x",
            "C:/x",
            "app\\..\\..\\x",
            "app-1.0.data/data/../../x",
            "app-1.0.data/../../x",
            "app-1.0.data/purelib/../x",
        ] {
            let err = check_entry_path(bad).unwrap_err().text;
            assert!(
                err.contains("outside the folder it installs into"),
                "{bad}: {err}"
            );
        }
        assert!(check_entry_path("app-1.0.data/lib/x")
            .unwrap_err()
            .text
            .contains("not an install scheme"));
        assert!(check_entry_path("app-1.0.data/x")
            .unwrap_err()
            .text
            .contains("not in a scheme's folder"));
        assert!(check_entry_path("app/x\nline.py")
            .unwrap_err()
            .text
            .contains("`app/x\\nline.py` has a control character"));
    }

    #[test]
    fn script_names_must_be_safe_file_names() {
        for good in ["app", "app-cli", "app_2.0", "über"] {
            assert_eq!(check_script_name(good), Ok(()), "{good}");
        }
        for bad in [
            "", ".", "..", "-rf", "../x", "a/b", "a;b", "$(id)", "a b", "a\nb", "`id`",
        ] {
            assert!(check_script_name(bad).is_err(), "{bad:?}");
        }
        assert!(check_script_name(&"a".repeat(256)).is_err());
    }

    #[test]
    fn metadata_fields_must_be_one_line_and_name_and_version_well_formed() {
        let check = |text: &str, source: &str| {
            check_core_metadata(&parse_core_metadata(text), source).map_err(|p| p.text)
        };
        assert_eq!(
            check("Name: demo\nVersion: 1.0\nSummary: a\tdemo\n", "METADATA"),
            Ok(())
        );
        let err = check(
            "Name: demo\nVersion: 1.0\nAuthor: A\rBreaks: libc6\n",
            "METADATA",
        )
        .unwrap_err();
        assert!(
            err.starts_with("METADATA's `Author` holds a line break"),
            "{err}"
        );
        assert!(err.contains("`A\\rBreaks: libc6`"), "{err}");
        let err = check(
            "Name: demo\nVersion: 1.0\nProject-URL: Source, https://x\u{2028}y\n",
            "PKG-INFO",
        )
        .unwrap_err();
        assert!(err.starts_with("PKG-INFO's `Project-URL`"), "{err}");
        let err = check("Name: ../x\nVersion: 1.0\n", "METADATA").unwrap_err();
        assert!(err.contains("not a valid project name"), "{err}");
        let err = check("Name: x\nVersion: 1.0/../../y\n", "METADATA").unwrap_err();
        assert!(err.contains("not a PEP 440 version"), "{err}");
    }

    #[test]
    fn csv_handles_quoted_commas() {
        assert_eq!(
            split_csv("\"a,b.py\",sha256=x,3"),
            ["a,b.py", "sha256=x", "3"]
        );
    }

    #[test]
    fn compressed_tags_expand() {
        let tags = expand_tags("py2.py3", "none", "any");
        assert_eq!(tags.len(), 2);
        assert_eq!(tags[0].to_string(), "py2-none-any");
    }

    #[test]
    fn metadata_headers_parse_and_body_is_ignored() {
        let m = parse_core_metadata(
            "Metadata-Version: 2.4\nName: demo\nVersion: 1.0\nRequires-Dist: click>=8\n\nName: not-this\n",
        );
        assert_eq!(m.name, "demo");
        assert_eq!(m.requires_dist, ["click>=8"]);
    }

    #[test]
    fn licences_are_told_apart() {
        let m = parse_core_metadata(
            "Name: a\nLicense: BSD\nLicense-Expression: MIT OR Apache-2.0\nClassifier: License :: OSI Approved :: MIT License\n",
        );
        assert_eq!(m.license_name(), Some("MIT OR Apache-2.0"));
        assert_eq!(m.license_expression.as_deref(), Some("MIT OR Apache-2.0"));
        assert_eq!(m.license_field.as_deref(), Some("BSD"));
        assert_eq!(m.classifiers, ["License :: OSI Approved :: MIT License"]);
        assert_eq!(
            parse_core_metadata("License: BSD\n").license_name(),
            Some("BSD")
        );
        assert_eq!(
            parse_core_metadata("License: UNKNOWN\n").license_name(),
            None
        );
        // A licence's whole text in `License` is not a name.
        let m = parse_core_metadata(
            "Name: b\nLicense: Copyright (c) someone\n        Permission is granted\nVersion: 1\n",
        );
        assert_eq!(m.license_field, None);
        assert_eq!(m.license_name(), None, "a licence's text is not its name");
        assert_eq!(m.version, "1");
    }
}
