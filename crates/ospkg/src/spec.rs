//! What goes into an OS package, format-neutral: the files, the package's name and version
//! in the format's rules, what it depends on, and the scripts that run on install and
//! removal. `deb.rs` and `rpm.rs` only write this down in their format.
//!
//! ```text
//!  bundled (default)                        system
//!  /usr/lib/NAME/bin/python3.X  runtime     /usr/share/NAME/   app + dependencies
//!  /usr/lib/NAME/lib/...        + site      (/usr/lib/NAME/ when they hold compiled code)
//!  /usr/bin/SCRIPT  #!/usr/lib/NAME/...     /usr/bin/SCRIPT    #!/usr/bin/python3 -Es
//!  Depends: libc6 (>= 2.x)                  Depends: python3 (>= X.Y), python3 (<< X.Y+1)
//! ```

use crate::{io, OsPkgError};
use gradient_archive::{tree_entries, Entry, EntryKind};
use gradient_core::{
    check_package_name, check_package_version, map_version, normalize_name, AppWheel, BuildContext,
    Layout, PackageConfig, PackageFormat, PackageVersion, Project, ServiceConfig,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A dependency on another package: `name (op version)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    /// `>=` or `<<` (written `<` in RPM), with the version; `None` for any version.
    pub constraint: Option<(&'static str, String)>,
}

/// The shell scripts a package runs around install and removal (Debian's names).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scripts {
    /// Before install (RPM only: makes the service user before files land).
    pub preinst: Option<String>,
    pub postinst: Option<String>,
    pub prerm: Option<String>,
    pub postrm: Option<String>,
}

/// Everything a package writer needs.
#[derive(Clone, Debug)]
pub struct PackageSpec {
    pub format: PackageFormat,
    pub name: String,
    pub version: PackageVersion,
    pub revision: String,
    /// False for `all`/`noarch`: no ELF file inside.
    pub native: bool,
    /// The platform its compiled code is for, which names its architecture (`None` only
    /// on a host gradient has no name for: the machine's own is used).
    pub platform: Option<gradient_core::Platform>,
    pub summary: String,
    pub description: String,
    pub maintainer: Option<String>,
    pub homepage: Option<String>,
    pub license: String,
    pub depends: Vec<Dependency>,
    /// Shared libraries beyond glibc the installed extension modules take from the system
    /// (`libstdc++.so.6`), by soname: each is also in `depends`.
    pub system_libraries: Vec<String>,
    /// Paths relative to `/`, sorted, parents before children.
    pub files: Vec<Entry>,
    /// Which of `files` come unchanged from the stripped runtime (bundled layout): the deb
    /// writer compresses them once per runtime and keeps them in the cache.
    pub runtime_part: Option<RuntimePart>,
    pub scripts: Scripts,
    /// The project's version as written, for the changelog.
    pub project_version: String,
}

/// The files of a package that depend only on the runtime bundle and the package's name.
#[derive(Clone, Debug)]
pub struct RuntimePart {
    /// Names them in the cache: the stripped runtime's content key and the package name.
    pub key: String,
    pub paths: BTreeSet<String>,
}

impl PackageSpec {
    /// `1.2.3-1`, with `E:` in front for an epoch (Debian's full version).
    pub fn full_version(&self) -> String {
        let epoch = self
            .version
            .epoch
            .map(|e| format!("{e}:"))
            .unwrap_or_default();
        format!("{epoch}{}-{}", self.version.upstream, self.revision)
    }

    /// The folders the package owns itself (not shared ones like `/usr/bin`).
    pub fn owns(&self, dir: &str) -> bool {
        let own = [
            format!("usr/lib/{}", self.name),
            format!("usr/share/{}", self.name),
            format!("usr/share/doc/{}", self.name),
            format!("usr/share/licenses/{}", self.name),
        ];
        own.iter()
            .any(|o| dir == o || dir.starts_with(&format!("{o}/")))
    }

    /// The sum of the regular files' sizes.
    pub fn payload_size(&self) -> u64 {
        self.files
            .iter()
            .map(|f| match &f.kind {
                EntryKind::File(data) => data.len() as u64,
                _ => 0,
            })
            .sum()
    }
}

/// `text`'s words in lines of at most `width` characters (a longer word stands alone).
pub(crate) fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + word.chars().count() + 1 > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// The `[tool.gradient.deb]` or `[tool.gradient.rpm]` table.
pub fn package_config(project: &Project, format: PackageFormat) -> &PackageConfig {
    match format {
        PackageFormat::Deb => &project.config.deb,
        PackageFormat::Rpm => &project.config.rpm,
    }
}

/// The package's name and version in `format`'s rules: the settings, else the project's
/// normalised name and its PEP 440 version mapped.
pub fn name_and_version(
    project: &Project,
    app: &AppWheel,
    format: PackageFormat,
) -> Result<(String, PackageVersion), OsPkgError> {
    let metadata = app.metadata();
    package_name_and_version(project, &metadata.name, &metadata.version, format)
}

/// [`name_and_version`] from the app's declared name and its version.
pub fn package_name_and_version(
    project: &Project,
    app_name: &str,
    app_version: &str,
    format: PackageFormat,
) -> Result<(String, PackageVersion), OsPkgError> {
    let config = package_config(project, format);
    let table = format.table();
    let name = match &config.name {
        Some(name) => name.get_ref().clone(),
        None => {
            let derived = normalize_name(app_name);
            check_package_name(format, &derived).map_err(|rule| OsPkgError::Unmappable {
                what: format!("the name `{derived}`"),
                rule,
                setting: format!("name = \"...\" in {table}"),
            })?;
            derived
        }
    };
    let version = match &config.version {
        Some(version) => PackageVersion {
            epoch: map_version(app_version).ok().and_then(|v| v.epoch),
            upstream: version.get_ref().clone(),
        },
        None => {
            let version = app_version;
            let mapped = map_version(version).map_err(|rule| OsPkgError::Unmappable {
                what: format!("the version `{version}`"),
                rule,
                setting: format!("version = \"...\" in {table}"),
            })?;
            check_package_version(format, &mapped.upstream).map_err(|rule| {
                OsPkgError::Unmappable {
                    what: format!("the version `{version}`"),
                    rule,
                    setting: format!("version = \"...\" in {table}"),
                }
            })?;
            mapped
        }
    };
    Ok((name, version))
}

/// The Debian package that provides `soname`, for the libraries beyond glibc the manylinux
/// policy lets a wheel take from the system (Debian's names since bookworm).
fn debian_package(soname: &str) -> Option<&'static str> {
    Some(match soname {
        "libstdc++.so.6" => "libstdc++6",
        "libgcc_s.so.1" => "libgcc-s1",
        "libz.so.1" => "zlib1g",
        "libexpat.so.1" => "libexpat1",
        "libcrypt.so.1" => "libcrypt1",
        "libX11.so.6" => "libx11-6",
        "libXext.so.6" => "libxext6",
        "libXrender.so.1" => "libxrender1",
        "libICE.so.6" => "libice6",
        "libSM.so.6" => "libsm6",
        "libGL.so.1" => "libgl1",
        "libglib-2.0.so.0" | "libgobject-2.0.so.0" | "libgthread-2.0.so.0" => "libglib2.0-0",
        _ => return None,
    })
}

/// The package's maintainer: `maintainer` of the format's table; else, for a Debian
/// package, `DEBFULLNAME`/`DEBEMAIL` as dch takes them; else the project's first maintainer
/// or author with an email, else the first named. A Debian package must have one with an
/// email address.
pub fn package_maintainer(
    project: &Project,
    app: &AppWheel,
    format: PackageFormat,
) -> Result<Option<String>, OsPkgError> {
    let from_environment = match format {
        PackageFormat::Deb => environment_maintainer()?,
        PackageFormat::Rpm => None,
    };
    let maintainer = match &package_config(project, format).maintainer {
        Some(m) => Some(m.get_ref().clone()),
        None => from_environment.or_else(|| app.metadata().maintainer()),
    };
    if format == PackageFormat::Deb {
        match &maintainer {
            None => {
                return Err(OsPkgError::NoMaintainer {
                    found: "no author or maintainer".into(),
                })
            }
            Some(m) if gradient_core::maintainer_email(m).is_none() => {
                return Err(OsPkgError::NoMaintainer {
                    found: format!("the maintainer `{m}`, without an email address"),
                })
            }
            Some(_) => {}
        }
    }
    Ok(maintainer)
}

/// The Debian maintainer the environment names, as dch takes it: `DEBEMAIL`, which may be
/// `Name <email>` itself, named by `DEBFULLNAME` when that is set. `None` without DEBEMAIL.
pub fn environment_maintainer() -> Result<Option<String>, OsPkgError> {
    let read = |var: &str| {
        std::env::var(var)
            .ok()
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let Some(email) = read("DEBEMAIL") else {
        return Ok(None);
    };
    let full_name = read("DEBFULLNAME");
    // A line break would end the control file's field and start another.
    if email
        .chars()
        .chain(full_name.iter().flat_map(|n| n.chars()))
        .any(char::is_control)
    {
        return Err(OsPkgError::Unmappable {
            what: "DEBFULLNAME or DEBEMAIL".into(),
            rule: "it holds a line break or another control character".into(),
            setting: "each to one line, or maintainer = \"Name <email>\" in [tool.gradient.deb]"
                .into(),
        });
    }
    let (name_in_email, address) = match (email.find('<'), email.rfind('>')) {
        (Some(open), Some(close)) if open < close => (
            Some(email[..open].trim()).filter(|n| !n.is_empty()),
            email[open + 1..close].trim(),
        ),
        _ => (None, email.as_str()),
    };
    Ok(Some(match full_name.as_deref().or(name_in_email) {
        Some(name) => format!("{name} <{address}>"),
        None => address.to_string(),
    }))
}

/// Build the package's contents and metadata in `cx.work_dir`.
pub async fn package_spec(
    cx: &BuildContext,
    format: PackageFormat,
) -> Result<PackageSpec, OsPkgError> {
    let app = cx.inputs.app()?;
    let app_scripts = app.scripts()?;
    let wheelhouse = cx.inputs.wheelhouse()?;
    let project = &cx.project;
    let (name, version) = name_and_version(project, app, format)?;
    let config = package_config(project, format);
    let layout = config.layout();
    let maintainer = package_maintainer(project, app, format)?;

    // The app and its dependencies, staged where they will be installed. The system
    // layout runs on the distribution's python3, the build interpreter's X.Y by default.
    let built_for = (cx.python.version.0, cx.python.version.1);
    let (major, minor) = match layout {
        Layout::System => config.python().unwrap_or(built_for),
        Layout::Bundled => built_for,
    };
    let staging = cx.work_dir.join("root");
    let site_rel = match layout {
        Layout::Bundled => {
            let runtime = cx.inputs.runtime()?;
            format!("usr/lib/{name}/{}", runtime.site_packages)
        }
        Layout::System => format!("usr/share/{name}"),
    };
    let mut site = staging.join(&site_rel);
    std::fs::create_dir_all(&site).map_err(io("create", &site))?;
    gradient_python::wheelhouse::copy_site(&wheelhouse.site, &site)?;
    gradient_wheel::install_wheel_files(&app.path, &site)?;
    let objects = crate::strip::elf_files(&site)?;
    crate::strip::strip_files(&objects).await?;
    let site_glibc = highest_glibc(&objects)?;
    let bundle_lib = match layout {
        Layout::Bundled => cx.inputs.runtime.as_ref().map(|r| r.dir.join("lib")),
        Layout::System => None,
    };
    // What the extension modules link from the system is looked up where they will run: the
    // host for its own packages, the target's root for another platform's (its objects would
    // find nothing, or the wrong machine's files, on the host).
    let target_system = match &cx.inputs.target {
        Some(target) => Some(
            gradient_python::runtime::Sysroot::of_machine(&target.root, target.platform.machine())
                .ok_or_else(|| OsPkgError::Unmappable {
                    what: format!("the platform {}", target.platform),
                    rule: "gradient has no Debian root layout for it".into(),
                    setting: "--platform to linux/amd64 or linux/arm64".into(),
                })?,
        ),
        None => None,
    };
    let system_libraries: Vec<String> = match &target_system {
        Some(system) => {
            gradient_python::runtime::system_libraries_in(system, &site, bundle_lib.as_deref())
        }
        None => gradient_python::runtime::system_libraries(&site, bundle_lib.as_deref()),
    }
    .into_iter()
    .map(|(soname, _)| soname)
    .collect();
    let site_native = !objects.is_empty();
    let mut site_rel = site_rel;
    if layout == Layout::System && site_native {
        // Compiled code is architecture-dependent: it belongs under /usr/lib.
        let moved = staging.join(format!("usr/lib/{name}"));
        std::fs::create_dir_all(moved.parent().expect("has a parent"))
            .map_err(io("create", &moved))?;
        std::fs::rename(&site, &moved).map_err(io("move", &site))?;
        site = moved;
        site_rel = format!("usr/lib/{name}");
    }
    if layout == Layout::System {
        check_wheels_fit(&site, (major, minor))?;
    }
    let interpreter = match layout {
        Layout::Bundled => {
            let runtime = cx.inputs.runtime()?;
            format!("/usr/lib/{name}/{}", runtime.python)
        }
        Layout::System => "/usr/bin/python3".to_string(),
    };
    // Debian compiles on install (its policy: no .pyc in packages), RPM ships them.
    let compile_on_install = format == PackageFormat::Deb;
    // Byte-code is the same on every machine, so the build interpreter compiles another
    // platform's files too, when its runtime is the same X.Y.
    let same_python = match (&cx.inputs.target, &cx.inputs.runtime) {
        (Some(_), Some(runtime)) => runtime.python.ends_with(&format!("python{major}.{minor}")),
        _ => true,
    };
    if !compile_on_install && (major, minor) == built_for && same_python {
        gradient_python::runtime::compile_tree(&cx.python.executable, &site, &staging, &[]).await?;
    }

    let mut files: BTreeMap<String, Entry> = BTreeMap::new();
    let mut runtime_part = None;
    if layout == Layout::Bundled {
        let runtime = cx.inputs.runtime()?;
        let stripped = crate::strip::stripped_runtime(runtime, &cx.cache_dir).await?;
        let mut paths: BTreeSet<String> = ["usr", "usr/lib", &format!("usr/lib/{name}")]
            .into_iter()
            .map(str::to_string)
            .collect();
        for mut entry in tree_entries(&stripped, &format!("usr/lib/{name}"))? {
            // Shared libraries: Debian wants them not executable (lintian:
            // shared-library-is-executable), RPM distributions executable, as rpm's own
            // ELF dependency generators only read executable files (rpmlint:
            // shared-library-not-executable).
            let file_name = entry.path.rsplit('/').next().unwrap_or_default();
            if file_name.starts_with("lib") && file_name.contains(".so") {
                entry.mode = match format {
                    PackageFormat::Deb => 0o644,
                    PackageFormat::Rpm => 0o755,
                };
            }
            paths.insert(entry.path.clone());
            files.insert(entry.path.clone(), entry);
        }
        // The bundle's cache folder is named by its content key, and so is its stripped
        // copy's (with the format of the stripping).
        let runtime_key = stripped
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let stripped_or_not = if stripped == runtime.dir {
            "unstripped"
        } else {
            "stripped"
        };
        runtime_part = Some(RuntimePart {
            key: format!("{runtime_key}-{stripped_or_not}-{name}"),
            paths,
        });
    }
    let mut add = |entry: Entry| {
        // A file of the app's that replaces one of the runtime's is no longer the runtime's.
        if let Some(part) = &mut runtime_part {
            if !matches!(entry.kind, EntryKind::Dir) {
                part.paths.remove(&entry.path);
            }
        }
        files.insert(entry.path.clone(), entry);
    };
    for entry in tree_entries(&staging, "")? {
        add(entry);
    }
    for (script, target) in &app_scripts.scripts {
        // -Es, not -I: the host's PYTHON* variables and user site-packages stay out, but
        // sys.path[0] is the script's folder, as in a venv; under -I (which adds -P) the
        // standard-library zip is there, and scripts that drop sys.path[0] lose it.
        let mut text =
            gradient_wheel::bundled_console_script(&format!("{interpreter} -Es"), target)
                .ok_or_else(|| OsPkgError::BadEntryPoint {
                    script: script.clone(),
                    entry: target.clone(),
                })?;
        if layout == Layout::System {
            text = text.replacen(
                "import sys\n",
                &format!("import sys\nsys.path.insert(1, \"/{site_rel}\")\n"),
                1,
            );
        }
        add(file(&format!("usr/bin/{script}"), text.into_bytes(), 0o755));
    }
    // Legacy scripts, as pip installs them: a Python one's `#!` line names the package's
    // Python, run as the console scripts are (`-Es`: the script's folder first on
    // sys.path, as in a venv; with the system layout, its first line also puts the app's
    // folder right after it); any other is copied as it is.
    for (script, data) in &app.info.legacy_scripts {
        let mut installed =
            gradient_wheel::install_legacy_script(&format!("{interpreter} -Es"), data);
        if layout == Layout::System && gradient_wheel::is_python_script(data) {
            let end = installed
                .iter()
                .position(|b| *b == b'\n')
                .map_or(0, |at| at + 1);
            let line = format!("import sys; sys.path.insert(1, \"/{site_rel}\")\n");
            installed.splice(end..end, line.into_bytes());
        }
        add(file(&format!("usr/bin/{script}"), installed, 0o755));
    }

    let summary = app
        .metadata()
        .summary
        .clone()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| format!("the {} application", app.metadata().name));
    let python_text = format!("{major}.{minor}");
    let description = match layout {
        Layout::Bundled => format!(
            "{} {} with its own CPython {} and {} Python dependencies, installed under /usr/lib/{name}; it needs nothing of the system but its C library.",
            app.metadata().name,
            app.metadata().version,
            cx.python.full_version(),
            wheelhouse.packages.len()
        ),
        Layout::System => format!(
            "{} {} with {} Python dependencies under /{site_rel}, run by the system's python3 ({python_text}).",
            app.metadata().name,
            app.metadata().version,
            wheelhouse.packages.len()
        ),
    };
    let license = app
        .metadata()
        .license_name()
        .unwrap_or("LicenseRef-unknown")
        .to_string();

    let doc = match format {
        PackageFormat::Deb => format!("usr/share/doc/{name}"),
        PackageFormat::Rpm => format!("usr/share/licenses/{name}"),
    };
    let copyright = copyright_text(
        app,
        &license,
        wheelhouse,
        &site,
        matches!(layout, Layout::Bundled).then(|| cx.python.full_version()),
    );
    add(file(
        &format!("{doc}/copyright"),
        copyright.into_bytes(),
        0o644,
    ));

    let service_user = service_user(project.config.service.as_ref(), &name);
    if let Some(service) = &project.config.service {
        if let Some(program) = service.command.as_ref().and_then(|c| c.get_ref().first()) {
            if !app_scripts.scripts.contains_key(program) {
                return Err(OsPkgError::ServiceNotAScript {
                    program: program.clone(),
                    scripts: app_scripts
                        .scripts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
        }
        let unit_dir = match format {
            PackageFormat::Deb => "lib/systemd/system",
            PackageFormat::Rpm => "usr/lib/systemd/system",
        };
        let command = match (&service.command, &app_scripts.default) {
            (Some(command), _) => command.get_ref().clone(),
            (None, Some(default)) => vec![default.clone()],
            (None, None) => {
                return Err(OsPkgError::ServiceWithoutCommand {
                    scripts: app_scripts
                        .scripts
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        let unit = unit_text(
            service,
            &command,
            &summary,
            service_user.as_deref().unwrap_or(&name),
        );
        add(file(
            &format!("{unit_dir}/{name}.service"),
            unit.into_bytes(),
            0o644,
        ));
    }

    let mut depends = Vec::new();
    let glibc = match layout {
        Layout::Bundled => cx
            .inputs
            .runtime
            .as_ref()
            .and_then(|r| r.glibc.as_deref())
            .and_then(parse_glibc)
            .max(site_glibc),
        Layout::System => site_glibc,
    };
    let libc = match format {
        PackageFormat::Deb => "libc6",
        PackageFormat::Rpm => "glibc",
    };
    if let Some((gmajor, gminor)) = glibc {
        depends.push(Dependency {
            name: libc.into(),
            constraint: Some((">=", format!("{gmajor}.{gminor}"))),
        });
    }
    if layout == Layout::System {
        depends.push(Dependency {
            name: "python3".into(),
            constraint: Some((">=", python_text.clone())),
        });
        depends.push(Dependency {
            name: "python3".into(),
            constraint: Some(("<<", format!("{major}.{}", minor + 1))),
        });
    }
    // As dpkg-shlibdeps and rpm's automatic requirements do: what the extension modules
    // link from the system is depended on, by Debian package or by RPM soname capability.
    for soname in &system_libraries {
        let name = match format {
            PackageFormat::Deb => match debian_package(soname) {
                Some(package) => package.to_string(),
                None => continue,
            },
            PackageFormat::Rpm => format!("{soname}()(64bit)"),
        };
        if !depends.iter().any(|d: &Dependency| d.name == name) {
            depends.push(Dependency {
                name,
                constraint: None,
            });
        }
    }
    if project.config.service.is_some() && format == PackageFormat::Deb {
        depends.push(Dependency {
            name: "adduser".into(),
            constraint: None,
        });
    }

    let mut files: Vec<Entry> = files.into_values().collect();
    files.retain(|e| !e.path.is_empty());
    add_parents(&mut files);
    let native = files.iter().any(|e| match &e.kind {
        EntryKind::File(data) => data.starts_with(b"\x7fELF"),
        _ => false,
    });
    let compile_dir = format!("/{site_rel}");
    let python_for_compile = match layout {
        Layout::Bundled => interpreter.clone(),
        Layout::System => "python3".into(),
    };
    let scripts = crate::scripts::scripts(
        format,
        &name,
        compile_on_install.then_some((python_for_compile.as_str(), compile_dir.as_str())),
        project
            .config
            .service
            .as_ref()
            .map(|_| service_user.as_deref().unwrap_or(&name)),
    );
    Ok(PackageSpec {
        format,
        revision: config.revision(),
        native,
        summary,
        description,
        maintainer,
        homepage: app.metadata().homepage().map(str::to_string),
        license,
        depends,
        system_libraries,
        files,
        runtime_part,
        scripts,
        platform: cx.inputs.platform(),
        project_version: app.metadata().version.clone(),
        name,
        version,
    })
}

/// The user a service runs as: the setting, else the package's name.
fn service_user(service: Option<&ServiceConfig>, name: &str) -> Option<String> {
    service.map(|s| {
        s.user
            .as_ref()
            .map_or_else(|| name.to_string(), |u| u.get_ref().clone())
    })
}

/// A systemd unit that runs the service command as its user.
fn unit_text(service: &ServiceConfig, command: &[String], summary: &str, user: &str) -> String {
    let mut words = vec![format!("/usr/bin/{}", command[0])];
    words.extend(command[1..].iter().map(|word| {
        if word.is_empty() || word.contains(|c: char| c.is_whitespace() || "\"'\\;$%".contains(c)) {
            format!(
                "\"{}\"",
                word.replace('\\', "\\\\")
                    .replace('"', "\\\"")
                    .replace('%', "%%")
                    .replace('$', "$$")
            )
        } else {
            word.clone()
        }
    }));
    let mut unit = format!(
        "[Unit]\nDescription={summary}\nAfter=network.target\n\n[Service]\nType=simple\nUser={user}\nGroup={user}\nExecStart={}\n",
        words.join(" ")
    );
    if let Some(port) = &service.port {
        unit.push_str(&format!("Environment=PORT={}\n", port.get_ref()));
    }
    unit.push_str("Restart=on-failure\n\n[Install]\nWantedBy=multi-user.target\n");
    unit
}

/// What the copyright file says: the app's license, then what the package bundles.
fn copyright_text(
    app: &AppWheel,
    license: &str,
    wheelhouse: &gradient_core::WheelhouseFiles,
    site: &Path,
    cpython: Option<String>,
) -> String {
    let meta = app.metadata();
    let holder = meta
        .maintainer()
        .or_else(|| meta.author.clone())
        .unwrap_or_else(|| format!("the authors of {}", meta.name));
    let mut text = format!(
        "{} {}\n\nCopyright: {holder}\nLicense: {license}\n",
        meta.name, meta.version
    );
    if let Some(url) = meta.homepage() {
        text.push_str(&format!("Source: {url}\n"));
    }
    if let Some(license_text) = license_file(site, &meta.name) {
        text.push('\n');
        text.push_str(license_text.trim_end());
        text.push('\n');
    }
    text.push_str("\nThis package also carries, each under its own license:\n");
    if let Some(version) = cpython {
        text.push_str(&format!("  CPython {version} (PSF-2.0)\n"));
    }
    for gradient_core::LockedDependency {
        name: dist,
        version,
        ..
    } in &wheelhouse.packages
    {
        let license = dist_license(site, dist).unwrap_or_else(|| "see its metadata".into());
        text.push_str(&format!("  {dist} {version} ({license})\n"));
    }
    // Licenses every Debian system carries in full are referred to, not repeated.
    for (needle, name, file) in [
        ("Apache", "the Apache License 2.0", "Apache-2.0"),
        ("MPL", "the Mozilla Public License 2.0", "MPL-2.0"),
        ("LGPL", "the GNU Lesser General Public License", "LGPL-3"),
    ] {
        if text.contains(needle) {
            text.push_str(&format!(
                "\nOn Debian systems the complete text of {name} is in /usr/share/common-licenses/{file}.\n"
            ));
        }
    }
    text
}

/// The license text a distribution installed in `site` ships, if any.
fn license_file(site: &Path, dist: &str) -> Option<String> {
    let info = dist_info(site, dist)?;
    walkdir::WalkDir::new(&info)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| {
            let name = e.file_name().to_string_lossy().to_ascii_uppercase();
            e.file_type().is_file() && (name.starts_with("LICEN") || name.starts_with("COPYING"))
        })
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
}

/// The license field of a distribution installed in `site`.
fn dist_license(site: &Path, dist: &str) -> Option<String> {
    let text = std::fs::read_to_string(dist_info(site, dist)?.join("METADATA")).ok()?;
    let meta = gradient_wheel::metadata::parse_core_metadata(&text);
    meta.license_name()
        .filter(|l| l.len() <= 60)
        .map(str::to_string)
        .or_else(|| {
            meta.classifiers
                .iter()
                .filter_map(|c| c.strip_prefix("License :: "))
                .next_back()
                .map(|c| c.rsplit(" :: ").next().unwrap_or(c).to_string())
        })
}

fn dist_info(site: &Path, dist: &str) -> Option<std::path::PathBuf> {
    let wanted = normalize_name(dist);
    std::fs::read_dir(site)
        .ok()?
        .filter_map(Result::ok)
        .find_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let stem = name.strip_suffix(".dist-info")?;
            let project = stem.rsplit_once('-').map_or(stem, |(p, _)| p);
            (normalize_name(project) == wanted).then(|| e.path())
        })
}

/// The highest `GLIBC_x.y` any of the ELF files `objects` asks for.
fn highest_glibc(objects: &[std::path::PathBuf]) -> Result<Option<(u32, u32)>, OsPkgError> {
    let mut highest = None;
    for object in objects {
        if let Some(facts) = gradient_python::elf::read(object).map_err(io("read", object))? {
            highest = highest.max(facts.glibc);
        }
    }
    Ok(highest)
}

fn parse_glibc(text: &str) -> Option<(u32, u32)> {
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// In the `system` layout the distribution's python3 runs the wheels: each must be pure
/// Python or built for that very CPython.
fn check_wheels_fit(site: &Path, (major, minor): (u32, u32)) -> Result<(), OsPkgError> {
    let cp = format!("cp{major}{minor}");
    for entry in std::fs::read_dir(site).map_err(io("read", site))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".dist-info") {
            continue;
        }
        let Ok(wheel) = std::fs::read_to_string(entry.path().join("WHEEL")) else {
            continue;
        };
        let tags: Vec<&str> = wheel
            .lines()
            .filter_map(|l| l.strip_prefix("Tag:"))
            .map(str::trim)
            .collect();
        let fits = tags.iter().any(|tag| {
            let mut parts = tag.split('-');
            let (python, abi) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            abi == "none" && python.starts_with("py")
                || python == cp
                || (abi == "abi3" && python.starts_with("cp3"))
        });
        if !fits && !tags.is_empty() {
            return Err(OsPkgError::WheelDoesNotFit {
                dist: name.trim_end_matches(".dist-info").to_string(),
                tags: tags.join(", "),
                python: format!("{major}.{minor}"),
            });
        }
    }
    Ok(())
}

/// Add every missing parent folder of every entry, and sort parents first.
fn add_parents(files: &mut Vec<Entry>) {
    let mut dirs: BTreeMap<String, Entry> = BTreeMap::new();
    for entry in files.iter() {
        let mut path = entry.path.as_str();
        while let Some((parent, _)) = path.rsplit_once('/') {
            dirs.entry(parent.to_string()).or_insert_with(|| Entry {
                path: parent.to_string(),
                kind: EntryKind::Dir,
                mode: 0o755,
            });
            path = parent;
        }
    }
    for entry in files.drain(..) {
        dirs.insert(entry.path.clone(), entry);
    }
    files.extend(dirs.into_values());
}

fn file(path: &str, data: Vec<u8>, mode: u32) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::File(data),
        mode,
    }
}
