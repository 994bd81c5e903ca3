//! A `.rpm` written natively with the `rpm` crate (no signing, zstd payload), every file
//! time and the build time at the source date, so the same spec gives the same bytes. The
//! package carries `/usr/share/doc/NAME/NAME.rpmlintrc`, the rpmlint filters for what it
//! draws by design (see `rpmlint.rs`).

use crate::spec::PackageSpec;
use crate::{io, OsPkgError};
use gradient_archive::EntryKind;
use gradient_core::Platform;
use std::path::Path;

/// RPM's name for the architecture of `platform` (`aarch64`; the machine's own for a host
/// gradient has no name for), or `noarch` when the package holds no compiled code.
pub fn architecture(native: bool, platform: Option<Platform>) -> &'static str {
    match (native, platform) {
        (false, _) => "noarch",
        (true, Some(platform)) => platform.rpm_arch(),
        (true, None) => std::env::consts::ARCH,
    }
}

/// `NAME-VERSION-RELEASE.ARCH.rpm`.
pub fn file_name(spec: &PackageSpec) -> String {
    package_file_name(
        &spec.name,
        &spec.version.upstream,
        &spec.revision,
        spec.native,
        spec.platform,
    )
}

/// [`file_name`] from its parts, as the plan names the package before it is built.
pub fn package_file_name(
    name: &str,
    upstream: &str,
    revision: &str,
    native: bool,
    platform: Option<Platform>,
) -> String {
    format!(
        "{name}-{upstream}-{revision}.{}.rpm",
        architecture(native, platform)
    )
}

/// Write the package to `path`.
pub fn write_rpm(spec: &PackageSpec, mtime: u64, path: &Path) -> Result<(), OsPkgError> {
    let failed = |e: ::rpm::Error| OsPkgError::Rpm(e.to_string());
    let summary = summary(&spec.summary);
    let config = ::rpm::BuildConfig::v4()
        .compression(::rpm::CompressionWithLevel::Zstd(3))
        .source_date(mtime as u32);
    let mut builder = ::rpm::PackageBuilder::new(
        &spec.name,
        &spec.version.upstream,
        &spec.license,
        architecture(spec.native, spec.platform),
        &summary,
    );
    builder
        .using_config(config)
        .release(spec.revision.clone())
        // rpmlint: description-line-too-long (over 79 characters).
        .description(crate::spec::wrap(&spec.description, 72).join("\n"))
        // What rpmbuild writes when a spec names no group (Fedora's guidelines dropped the
        // tag); rpmlint counts it as none (no-group-tag), see rpmlint.rs.
        .group("Unspecified")
        .build_host("gradient")
        .add_changelog_entry(
            // `NAME <EMAIL> - [EPOCH:]VERSION-RELEASE`, as rpmbuild's %changelog has it
            // (rpmlint: no-version-in-last-changelog).
            format!(
                "{} - {}",
                spec.maintainer.as_deref().unwrap_or(&spec.name),
                spec.full_version()
            ),
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
    let files = crate::rpmlint::with_rpmlintrc(spec, architecture(spec.native, spec.platform));
    for entry in &files {
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
                } else if entry.path.starts_with("usr/share/doc/") {
                    options = options.doc();
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

/// The summary as RPM's packaging guidelines (and rpmlint) ask: one line without a final
/// full stop, of at most 79 characters (cut at a word).
fn summary(text: &str) -> String {
    let line = text.lines().next().unwrap_or("").trim();
    let line = line.trim_end_matches('.');
    crate::spec::wrap(line, 79)
        .into_iter()
        .next()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_platform_names_its_package_and_the_host_names_stay() {
        let arm = package_file_name("app", "1.0", "1", true, Some(Platform::LinuxArm64));
        assert_eq!(arm, "app-1.0-1.aarch64.rpm");
        let amd = package_file_name("app", "1.0", "1", true, Some(Platform::LinuxAmd64));
        assert_eq!(amd, "app-1.0-1.x86_64.rpm");
        let pure = package_file_name("app", "1.0", "1", false, Some(Platform::LinuxArm64));
        assert_eq!(pure, "app-1.0-1.noarch.rpm");
        assert_eq!(
            architecture(true, Platform::host()),
            architecture(true, None)
        );
    }

    #[test]
    fn a_summary_is_one_line_of_79_characters_at_most_without_a_full_stop() {
        assert_eq!(summary("A tool.\nMore."), "A tool");
        let long = summary(&"word ".repeat(30));
        assert!(long.len() <= 79 && long.ends_with("word"), "{long}");
    }
}
