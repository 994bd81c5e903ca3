//! A `.rpm` written natively with the `rpm` crate (no signing, zstd payload), every file
//! time and the build time at the source date, so the same spec gives the same bytes.

use crate::spec::PackageSpec;
use crate::{io, OsPkgError};
use gradient_archive::EntryKind;
use std::path::Path;

/// RPM's name for the architecture of the build (`x86_64`), or `noarch`.
pub fn architecture(native: bool) -> &'static str {
    if native {
        std::env::consts::ARCH
    } else {
        "noarch"
    }
}

/// `NAME-VERSION-RELEASE.ARCH.rpm`.
pub fn file_name(spec: &PackageSpec) -> String {
    package_file_name(
        &spec.name,
        &spec.version.upstream,
        &spec.revision,
        spec.native,
    )
}

/// [`file_name`] from its parts, as the plan names the package before it is built.
pub fn package_file_name(name: &str, upstream: &str, revision: &str, native: bool) -> String {
    format!("{name}-{upstream}-{revision}.{}.rpm", architecture(native))
}

/// Write the package to `path`.
pub fn write_rpm(spec: &PackageSpec, mtime: u64, path: &Path) -> Result<(), OsPkgError> {
    let failed = |e: ::rpm::Error| OsPkgError::Rpm(e.to_string());
    // One line without a final full stop, as RPM's packaging guidelines (and rpmlint) ask.
    let summary = spec.summary.lines().next().unwrap_or("").trim();
    let summary = summary.trim_end_matches('.');
    let config = ::rpm::BuildConfig::v4()
        .compression(::rpm::CompressionWithLevel::Zstd(3))
        .source_date(mtime as u32);
    let mut builder = ::rpm::PackageBuilder::new(
        &spec.name,
        &spec.version.upstream,
        &spec.license,
        architecture(spec.native),
        summary,
    );
    builder
        .using_config(config)
        .release(spec.revision.clone())
        .description(spec.description.clone())
        .build_host("gradient")
        .add_changelog_entry(
            spec.maintainer.clone().unwrap_or_else(|| spec.name.clone()),
            format!(
                "- Packaged by gradient from {} {}.",
                spec.name, spec.project_version
            ),
            ::rpm::Timestamp::from(mtime as u32),
        );
    if let Some(epoch) = spec.version.epoch {
        builder.epoch(epoch);
    }
    if let Some(url) = &spec.homepage {
        builder.url(url.clone());
    }
    if let Some(maintainer) = &spec.maintainer {
        builder.packager(maintainer.clone());
    }
    for dependency in &spec.depends {
        builder.requires(match &dependency.constraint {
            None => ::rpm::Dependency::any(&dependency.name),
            Some((">=", version)) => ::rpm::Dependency::greater_eq(&dependency.name, version),
            Some((_, version)) => ::rpm::Dependency::less(&dependency.name, version),
        });
    }
    for entry in &spec.files {
        let dest = format!("/{}", entry.path);
        let mode = (gradient_archive::normal_mode(entry.mode, matches!(entry.kind, EntryKind::Dir))
            & 0o7777) as u16;
        match &entry.kind {
            EntryKind::Dir => {
                // Only the package's own folders: `/usr/bin` and the like belong to the
                // distribution's filesystem package.
                if spec.owns(&entry.path) {
                    builder
                        .with_dir_entry(::rpm::FileOptions::dir(dest).permissions(mode))
                        .map_err(failed)?;
                }
            }
            EntryKind::Symlink(target) => {
                builder
                    .with_symlink(::rpm::FileOptions::symlink(dest, target))
                    .map_err(failed)?;
            }
            EntryKind::File(data) => {
                let mut options = ::rpm::FileOptions::new(dest).permissions(mode);
                if entry.path.starts_with("usr/share/licenses/") {
                    options = options.license();
                }
                builder
                    .with_file_contents(data.clone(), options)
                    .map_err(failed)?;
            }
        }
    }
    let scripts = &spec.scripts;
    if let Some(s) = &scripts.preinst {
        builder.pre_install_script(s.clone());
    }
    if let Some(s) = &scripts.postinst {
        builder.post_install_script(s.clone());
    }
    if let Some(s) = &scripts.prerm {
        builder.pre_uninstall_script(s.clone());
    }
    if let Some(s) = &scripts.postrm {
        builder.post_uninstall_script(s.clone());
    }
    let package = builder.build().map_err(failed)?;
    let mut out = Vec::new();
    package.write(&mut out).map_err(failed)?;
    std::fs::write(path, out).map_err(io("write", path))
}
