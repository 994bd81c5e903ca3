//! Facts about one Python interpreter, as probed by `gradient-python`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// What gradient needs to know about an interpreter. Probed once and cached.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterpreterFacts {
    /// The real executable (symlinks and pyenv shims resolved).
    pub executable: PathBuf,
    /// `cpython`, `pypy`, ...
    pub implementation: String,
    /// `(major, minor, micro)`.
    pub version: (u32, u32, u32),
    /// The wheel interpreter tag, `cp311`.
    pub python_tag: String,
    /// The wheel ABI tag, `cp311` (or `cp313t` for free-threaded builds).
    pub abi_tag: String,
    /// The wheel platform tag of the host, `linux_x86_64`.
    pub platform_tag: String,
    /// `sys.base_prefix`: where the standard library lives.
    pub base_prefix: PathBuf,
    /// `(name, version)` of the C library, `("glibc", "2.36")`, when known.
    pub libc: Option<(String, String)>,
}

impl InterpreterFacts {
    /// `3.11`.
    pub fn short_version(&self) -> String {
        format!("{}.{}", self.version.0, self.version.1)
    }

    /// `3.11.7`.
    pub fn full_version(&self) -> String {
        format!("{}.{}.{}", self.version.0, self.version.1, self.version.2)
    }
}

impl std::fmt::Display for InterpreterFacts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} ({})",
            self.implementation,
            self.full_version(),
            self.executable.display()
        )
    }
}
