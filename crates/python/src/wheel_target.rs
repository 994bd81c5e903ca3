//! Wheels for a Linux platform other than the build interpreter's: which wheel files a
//! CPython of the same version on that machine and glibc can install, the flags that make
//! uv and pip choose them, and whether an installed tree holds compiled code at all (a pure
//! tree serves every platform).

use gradient_core::{InterpreterFacts, Platform};
use std::io::Read;
use std::path::Path;

/// The manylinux levels uv's `--python-platform` names for Linux (`aarch64-manylinux_2_36`).
const UV_MANYLINUX_MINORS: [u32; 12] = [17, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40];

/// A Linux platform to install wheels for, with the C library of its base image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WheelTarget {
    pub platform: Platform,
    /// The glibc of the target's base, `(2, 36)` for Debian bookworm: manylinux wheels for
    /// that level or an older one fit.
    pub glibc: (u32, u32),
}

impl WheelTarget {
    /// The oldest glibc a manylinux wheel for this machine may need: 2.17 (manylinux2014) for
    /// aarch64, 2.5 (manylinux1) for x86_64.
    fn oldest_minor(&self) -> u32 {
        match self.platform {
            Platform::LinuxArm64 => 17,
            Platform::LinuxAmd64 => 5,
        }
    }

    /// Why this target cannot take manylinux wheels at all, if it cannot.
    pub(crate) fn unsupported(&self) -> Option<String> {
        (self.glibc.0 != 2 || self.glibc.1 < self.oldest_minor()).then(|| {
            format!(
                "glibc {}.{} is older than any manylinux wheel for {} (2.{})",
                self.glibc.0,
                self.glibc.1,
                self.platform,
                self.oldest_minor()
            )
        })
    }

    /// The platform tags a wheel may carry to fit, newest first: `manylinux_2_36_aarch64` …
    /// `manylinux_2_17_aarch64`, then the legacy aliases (`manylinux2014_aarch64`).
    pub fn platform_tags(&self) -> Vec<String> {
        let machine = self.platform.machine();
        let mut tags: Vec<String> = (self.oldest_minor()..=self.glibc.1)
            .rev()
            .map(|minor| format!("manylinux_2_{minor}_{machine}"))
            .collect();
        for (alias, minor) in [
            ("manylinux2014", 17),
            ("manylinux2010", 12),
            ("manylinux1", 5),
        ] {
            if minor >= self.oldest_minor() && minor <= self.glibc.1 {
                tags.push(format!("{alias}_{machine}"));
            }
        }
        tags
    }

    /// uv's `--python-platform`: the newest level it names that is not above the target's.
    pub(crate) fn uv_platform(&self) -> String {
        let minor = UV_MANYLINUX_MINORS
            .iter()
            .rev()
            .find(|m| **m <= self.glibc.1)
            .copied()
            .unwrap_or(17);
        format!("{}-manylinux_2_{minor}", self.platform.machine())
    }

    /// Whether the wheel file `file_name` installs on this platform for a CPython of
    /// `python`'s version: its platform tag is `any` or a manylinux level the target has, and
    /// its interpreter and ABI tags are `python`'s own, the stable ABI, or `none`.
    pub fn fits(&self, file_name: &str, python: &InterpreterFacts) -> bool {
        let Some((py, abi, plat)) = wheel_tags(file_name) else {
            return false;
        };
        let platforms = self.platform_tags();
        let minor = python.version.1;
        let plat_ok = plat
            .split('.')
            .any(|p| p == "any" || platforms.iter().any(|t| t == p));
        let interpreter_ok = |abi: &str| {
            py.split('.').any(|py| match abi {
                "abi3" => py
                    .strip_prefix("cp3")
                    .and_then(|m| m.parse::<u32>().ok())
                    .is_some_and(|m| (2..=minor).contains(&m)),
                "none" => {
                    py == python.python_tag
                        || py == "py3"
                        || py
                            .strip_prefix("py3")
                            .and_then(|m| m.parse::<u32>().ok())
                            .is_some_and(|m| m <= minor)
                }
                abi => abi == python.abi_tag && py == python.python_tag,
            })
        };
        plat_ok && abi.split('.').any(interpreter_ok)
    }
}

/// The interpreter, ABI and platform tags of a wheel file name, each possibly compressed
/// (`py2.py3`).
fn wheel_tags(file_name: &str) -> Option<(&str, &str, &str)> {
    let stem = file_name.strip_suffix(".whl")?;
    let parts: Vec<&str> = stem.split('-').collect();
    match parts.as_slice() {
        [_, _, py, abi, plat] | [_, _, _, py, abi, plat] => Some((py, abi, plat)),
        _ => None,
    }
}

/// Whether a wheel file name's platform tag is `any`: its files suit every platform.
pub fn wheel_is_pure(file_name: &str) -> bool {
    wheel_tags(file_name).is_some_and(|(_, _, plat)| plat == "any")
}

/// What makes an installed tree platform-specific, if anything: a file that is an ELF
/// object or named as a shared library, or a wheel whose `WHEEL` tags name a platform.
/// `None` means the tree suits every platform and may be shared between them.
pub fn compiled_content(site: &Path) -> Option<String> {
    for entry in walkdir::WalkDir::new(site)
        .sort_by_file_name()
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file())
    {
        let path = entry.path();
        let shown = path.strip_prefix(site).unwrap_or(path).display();
        let name = entry.file_name().to_string_lossy();
        if name.ends_with(".so") || name.contains(".so.") {
            return Some(format!("`{shown}` is a shared library"));
        }
        let mut magic = [0u8; 4];
        let is_elf = std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
            && magic == *b"\x7fELF";
        if is_elf {
            return Some(format!("`{shown}` is an ELF file"));
        }
        let in_dist_info = path
            .parent()
            .and_then(|p| p.file_name())
            .is_some_and(|p| p.to_string_lossy().ends_with(".dist-info"));
        if in_dist_info && name == "WHEEL" {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if let Some(tag) = text
                .lines()
                .filter_map(|l| l.strip_prefix("Tag:"))
                .map(str::trim)
                .find(|tag| !tag.ends_with("-any"))
            {
                return Some(format!("`{shown}` is tagged `{tag}`"));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp311() -> InterpreterFacts {
        InterpreterFacts {
            executable: "/usr/bin/python3.11".into(),
            implementation: "cpython".into(),
            version: (3, 11, 2),
            python_tag: "cp311".into(),
            abi_tag: "cp311".into(),
            platform_tag: "linux_x86_64".into(),
            base_prefix: "/usr".into(),
            libc: None,
        }
    }

    const BOOKWORM_ARM: WheelTarget = WheelTarget {
        platform: Platform::LinuxArm64,
        glibc: (2, 36),
    };

    #[test]
    fn wheels_fit_by_machine_glibc_and_interpreter() {
        let python = cp311();
        for fits in [
            "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
            "click-8.1.7-py3-none-any.whl",
            "six-1.16.0-py2.py3-none-any.whl",
            "cryptography-42.0.5-cp39-abi3-manylinux_2_28_aarch64.whl",
            "x-1.0-1-cp311-cp311-manylinux_2_36_aarch64.whl",
        ] {
            assert!(BOOKWORM_ARM.fits(fits, &python), "{fits}");
        }
        for misfit in [
            "MarkupSafe-2.1.5-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            "MarkupSafe-2.1.5-cp312-cp312-manylinux_2_17_aarch64.whl",
            "x-1.0-cp311-cp311-manylinux_2_38_aarch64.whl",
            "x-1.0-cp311-cp311-musllinux_1_1_aarch64.whl",
            "x-1.0-cp311-cp311-linux_aarch64.whl",
            "x-1.0-cp312-abi3-manylinux_2_17_aarch64.whl",
            "MarkupSafe-2.1.5.tar.gz",
        ] {
            assert!(!BOOKWORM_ARM.fits(misfit, &python), "{misfit}");
        }
    }

    #[test]
    fn each_installer_is_told_the_target_in_its_own_words() {
        assert_eq!(BOOKWORM_ARM.uv_platform(), "aarch64-manylinux_2_36");
        let buster = WheelTarget {
            glibc: (2, 30),
            ..BOOKWORM_ARM
        };
        assert_eq!(buster.uv_platform(), "aarch64-manylinux_2_28");
        let tags = buster.platform_tags();
        assert_eq!(tags.first().unwrap(), "manylinux_2_30_aarch64");
        assert!(tags.contains(&"manylinux_2_17_aarch64".to_string()));
        assert!(tags.contains(&"manylinux2014_aarch64".to_string()));
        assert!(!tags.iter().any(|t| t.contains("manylinux_2_16")
            || t.contains("x86_64")
            || t.contains("manylinux1")));
        let old = WheelTarget {
            glibc: (2, 12),
            ..BOOKWORM_ARM
        };
        assert!(old.unsupported().is_some());
        assert!(BOOKWORM_ARM.unsupported().is_none());
    }

    #[test]
    fn a_tree_with_an_elf_file_or_a_platform_tag_is_not_pure() {
        let dir = tempfile::tempdir().unwrap();
        let site = dir.path();
        std::fs::create_dir_all(site.join("click-8.1.7.dist-info")).unwrap();
        std::fs::write(
            site.join("click-8.1.7.dist-info/WHEEL"),
            "Wheel-Version: 1.0\nTag: py3-none-any\n",
        )
        .unwrap();
        std::fs::write(site.join("click.py"), "x = 1\n").unwrap();
        assert_eq!(compiled_content(site), None);
        std::fs::create_dir_all(site.join("m-1.dist-info")).unwrap();
        std::fs::write(
            site.join("m-1.dist-info/WHEEL"),
            "Tag: cp311-cp311-manylinux_2_17_aarch64\n",
        )
        .unwrap();
        assert!(compiled_content(site)
            .unwrap()
            .contains("manylinux_2_17_aarch64"));
        std::fs::remove_dir_all(site.join("m-1.dist-info")).unwrap();
        // An ELF file under any name: the running test binary is one.
        std::fs::copy(std::env::current_exe().unwrap(), site.join("helper")).unwrap();
        assert!(compiled_content(site).unwrap().contains("ELF"));
    }
}
