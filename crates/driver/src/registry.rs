//! The tiers this build of gradient can make, in gradient order. Read it top to bottom to
//! learn what `build --all` does; tiers of [`gradient_core::Tier::ALL`] missing here are
//! planned.

use gradient_core::{Backend, Tier};
use gradient_python::Installer;
use std::sync::Arc;

/// Every implemented backend, along the gradient.
pub fn backends(installer: &Installer) -> Vec<Arc<dyn Backend>> {
    vec![
        // Target has Python and pip: built through the project's own PEP 517 backend.
        Arc::new(gradient_wheel::SdistTier),
        Arc::new(gradient_wheel::WheelTier {
            installer: installer.clone(),
        }),
        // Target has a Python: one .pyz with the app and its locked dependencies.
        Arc::new(gradient_zipapp::ZipappTier {
            installer: installer.clone(),
        }),
        // Target has a libc: one executable that carries its own CPython.
        Arc::new(gradient_frozen::FrozenTier {
            installer: installer.clone(),
        }),
        // Target has a container engine: a reproducible image, as a tarball and loaded.
        Arc::new(gradient_oci::OciTier),
        Arc::new(gradient_oci::DockerTier),
        // Target has a package manager: a deb and an rpm that install like any other.
        Arc::new(gradient_ospkg::PackageTier::DEB),
        Arc::new(gradient_ospkg::PackageTier::RPM),
    ]
}

/// Whether `tier` has a backend in this build.
pub fn is_available(tier: Tier) -> bool {
    backends(&Installer::Pip).iter().any(|b| b.tier() == tier)
}

/// The available tiers' names, for messages.
pub fn available_names() -> String {
    Tier::ALL
        .into_iter()
        .filter(|t| is_available(*t))
        .map(Tier::name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use gradient_core::{InterpreterFacts, Project};

    /// What a backend says its artifact carries is what its tier carries in general (the
    /// listing of `gradient tiers` and the skipped rows of the report use the latter).
    #[test]
    fn every_backend_carries_what_its_tier_carries_in_general() {
        let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures");
        let project = Project::load(&fixtures.join("sampleapp")).unwrap();
        let python = InterpreterFacts {
            executable: "/usr/bin/python3.11".into(),
            implementation: "cpython".into(),
            version: (3, 11, 7),
            python_tag: "cp311".into(),
            abi_tag: "cp311".into(),
            platform_tag: "linux_x86_64".into(),
            base_prefix: "/usr".into(),
            libc: Some(("glibc".into(), "2.36".into())),
        };
        for backend in backends(&Installer::Pip) {
            let tier = backend.tier();
            assert_eq!(
                backend.target_needs(&project, &python).carries,
                tier.generic_needs().carries,
                "{tier}"
            );
        }
    }
}
