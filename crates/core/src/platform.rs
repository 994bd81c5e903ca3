//! The platforms an artifact is built for, and each one's name in every format that names
//! it: the OCI notation users type (`linux/arm64`), the kernel's machine (`aarch64`), Debian's
//! and RPM's architectures, the wheel tag's suffix. One table, so that no tier spells a
//! platform its own way.

use serde::{Deserialize, Serialize};

/// A platform gradient knows how to name (whether this version builds for it is the plan's
/// question, not this type's).
#[cfg_attr(feature = "schemars", derive(schemars::JsonSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Platform {
    #[serde(rename = "linux/amd64", alias = "amd64", alias = "x86_64")]
    LinuxAmd64,
    #[serde(rename = "linux/arm64", alias = "arm64", alias = "aarch64")]
    LinuxArm64,
}

/// Why a platform name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown platform `{given}`: gradient knows {}", Platform::names())]
pub struct UnknownPlatform {
    pub given: String,
}

impl crate::Hint for UnknownPlatform {
    fn hint(&self) -> Option<String> {
        Some(format!(
            "name platforms as OCI does, comma separated: --platform {}",
            Platform::names()
        ))
    }
}

impl Platform {
    /// Every platform, in the order reports list them.
    pub const ALL: [Platform; 2] = [Platform::LinuxAmd64, Platform::LinuxArm64];

    /// The platform of the machine running gradient, when it is one gradient knows.
    pub fn host() -> Option<Platform> {
        Platform::ALL
            .into_iter()
            .find(|p| p.machine() == std::env::consts::ARCH && std::env::consts::OS == "linux")
    }

    /// `linux/amd64, linux/arm64`: the names users type, for messages.
    pub fn names() -> String {
        Platform::ALL
            .iter()
            .map(|p| p.oci())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Read a platform as users write it: the OCI form (`linux/arm64`, `linux/arm64/v8`), or
    /// the bare architecture in Docker's, the kernel's or Debian's spelling (`arm64`,
    /// `aarch64`, `amd64`, `x86_64`).
    pub fn parse(given: &str) -> Result<Platform, UnknownPlatform> {
        let unknown = || UnknownPlatform {
            given: given.to_string(),
        };
        let lower = given.trim().to_ascii_lowercase();
        let arch = match lower.split('/').collect::<Vec<_>>().as_slice() {
            [arch] => *arch,
            ["linux", arch] => *arch,
            ["linux", "arm64", "v8"] => "arm64",
            _ => return Err(unknown()),
        };
        Platform::ALL
            .into_iter()
            .find(|p| [p.oci_arch(), p.machine()].contains(&arch))
            .ok_or_else(unknown)
    }

    /// `linux/arm64`: as OCI image indexes, Docker and the user name it.
    pub fn oci(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "linux/amd64",
            Platform::LinuxArm64 => "linux/arm64",
        }
    }

    /// `arm64`: the OCI `architecture` field.
    pub fn oci_arch(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "amd64",
            Platform::LinuxArm64 => "arm64",
        }
    }

    /// `aarch64`: the kernel's machine (`uname -m`), as ELF files, wheel tags, RPM and the
    /// frozen executable's name spell it.
    pub fn machine(self) -> &'static str {
        match self {
            Platform::LinuxAmd64 => "x86_64",
            Platform::LinuxArm64 => "aarch64",
        }
    }

    /// `arm64`: Debian's architecture, as in `Architecture:` and `_arm64.deb`.
    pub fn deb_arch(self) -> &'static str {
        self.oci_arch()
    }

    /// `aarch64`: RPM's architecture, as in `.aarch64.rpm`.
    pub fn rpm_arch(self) -> &'static str {
        self.machine()
    }

    /// Whether this platform's programs run natively here.
    pub fn is_host(self) -> bool {
        Platform::host() == Some(self)
    }

    /// Whether this machine can run the platform's programs: natively, or through qemu-user
    /// registered with the kernel's binfmt_misc (so that they run as any program does, in a
    /// chroot or a container too). `Err` says why not, for a smoke test that is skipped.
    pub fn runnable_here(self) -> Result<(), String> {
        if self.is_host() {
            return Ok(());
        }
        let entry = format!("/proc/sys/fs/binfmt_misc/qemu-{}", self.machine());
        // The `F` flag opens the emulator when it is registered: without it, a program in a
        // chroot or a container would look for the emulator inside.
        let fixed = |text: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix("flags:"))
                .is_some_and(|flags| flags.contains('F'))
        };
        match std::fs::read_to_string(&entry) {
            Ok(text) if text.lines().next() == Some("enabled") && fixed(&text) => Ok(()),
            Ok(text) if text.lines().next() == Some("enabled") => Err(format!(
                "no emulator for {self} in a chroot or a container: {entry} lacks the F flag (register qemu-user-static's, which has it)"
            )),
            Ok(_) => Err(format!("no emulator for {self}: {entry} is disabled")),
            Err(_) => Err(format!(
                "no emulator for {self}: install qemu-user-static and register it with binfmt_misc (update-binfmts --enable qemu-{})",
                self.machine()
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.oci())
    }
}

impl std::str::FromStr for Platform {
    type Err = UnknownPlatform;
    fn from_str(s: &str) -> Result<Platform, UnknownPlatform> {
        Platform::parse(s)
    }
}

/// Each of `platforms` once, in the order of [`Platform::ALL`].
pub fn unique_platforms(platforms: impl IntoIterator<Item = Platform>) -> Vec<Platform> {
    let set: std::collections::BTreeSet<Platform> = platforms.into_iter().collect();
    set.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_platform_reads_as_it() {
        for given in [
            "linux/arm64",
            "arm64",
            "aarch64",
            "linux/arm64/v8",
            "Linux/ARM64",
        ] {
            assert_eq!(Platform::parse(given), Ok(Platform::LinuxArm64), "{given}");
        }
        for given in ["linux/amd64", "amd64", "x86_64", " linux/amd64 "] {
            assert_eq!(Platform::parse(given), Ok(Platform::LinuxAmd64), "{given}");
        }
    }

    #[test]
    fn unknown_platforms_are_refused_with_the_known_ones() {
        for given in [
            "linux/riscv64",
            "windows/amd64",
            "linux/arm/v7",
            "",
            "linux/",
        ] {
            let error = Platform::parse(given).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("unknown platform `{given}`: gradient knows linux/amd64, linux/arm64")
            );
        }
    }

    #[test]
    fn lists_are_read_once_each_in_a_fixed_order() {
        use Platform::*;
        assert_eq!(
            unique_platforms([LinuxArm64, LinuxAmd64, LinuxArm64]),
            [LinuxAmd64, LinuxArm64]
        );
    }

    #[test]
    fn each_format_has_its_own_name() {
        let arm = Platform::LinuxArm64;
        assert_eq!(
            (
                arm.oci(),
                arm.oci_arch(),
                arm.machine(),
                arm.deb_arch(),
                arm.rpm_arch()
            ),
            ("linux/arm64", "arm64", "aarch64", "arm64", "aarch64")
        );
        let amd = Platform::LinuxAmd64;
        assert_eq!(
            (amd.oci(), amd.machine(), amd.deb_arch(), amd.rpm_arch()),
            ("linux/amd64", "x86_64", "amd64", "x86_64")
        );
        assert_eq!(
            serde_json::to_string(&arm).unwrap(),
            "\"linux/arm64\"",
            "as the manifest writes it"
        );
    }

    #[test]
    fn the_host_is_known_here() {
        let host = Platform::host().expect("tests run on linux/amd64 or linux/arm64");
        assert_eq!(host.machine(), std::env::consts::ARCH);
        assert!(host.is_host());
    }
}
