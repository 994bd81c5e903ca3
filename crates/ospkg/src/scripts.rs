//! The scripts a package runs on install and removal: byte-compile the app on a Debian
//! install (Debian packages ship no `.pyc`) and remove what that made before removal, and for
//! a service, make its system user and enable, start and stop its systemd unit the way
//! debhelper's and Fedora's systemd snippets do.

use crate::spec::Scripts;
use gradient_core::PackageFormat;

/// The scripts of package `name`. `compile` is `(python, folder)` to byte-compile after
/// install; `service_user` is set when the package installs `name.service`.
pub fn scripts(
    format: PackageFormat,
    name: &str,
    compile: Option<(&str, &str)>,
    service_user: Option<&str>,
) -> Scripts {
    let unit = format!("{name}.service");
    let mut scripts = Scripts::default();
    match format {
        PackageFormat::Deb => {
            let mut postinst = String::new();
            let mut prerm = String::new();
            if let Some(user) = service_user {
                postinst.push_str(&format!(
                    r#"if [ "$1" = configure ] && ! getent passwd {user} >/dev/null; then
    adduser --system --group --no-create-home --home /nonexistent {user} >/dev/null
fi
"#
                ));
            }
            if let Some((python, dir)) = compile {
                postinst.push_str(&format!(
                    r#"if [ "$1" = configure ]; then
    {python} -I -m compileall -q --invalidation-mode unchecked-hash {dir} >/dev/null || true
fi
"#
                ));
                prerm.push_str(&format!(
                    "find {dir} -depth -type d -name __pycache__ -exec rm -rf {{}} + 2>/dev/null || true\n"
                ));
            }
            if service_user.is_some() {
                postinst.push_str(&format!(
                    r#"if [ "$1" = configure ] || [ "$1" = abort-upgrade ] || [ "$1" = abort-deconfigure ] || [ "$1" = abort-remove ]; then
    deb-systemd-helper unmask '{unit}' >/dev/null || true
    if deb-systemd-helper --quiet was-enabled '{unit}'; then
        deb-systemd-helper enable '{unit}' >/dev/null || true
    else
        deb-systemd-helper update-state '{unit}' >/dev/null || true
    fi
    if [ -z "${{DPKG_ROOT:-}}" ] && [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        deb-systemd-invoke restart '{unit}' >/dev/null || true
    fi
fi
"#
                ));
                prerm.insert_str(
                    0,
                    &format!(
                        r#"if [ -z "${{DPKG_ROOT:-}}" ] && [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop '{unit}' >/dev/null || true
fi
"#
                    ),
                );
                scripts.postrm = Some(shell(&format!(
                    r#"if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ] && [ -x "$(command -v deb-systemd-helper)" ]; then
    deb-systemd-helper purge '{unit}' >/dev/null || true
fi
"#
                )));
            }
            scripts.postinst = (!postinst.is_empty()).then(|| shell(&postinst));
            scripts.prerm = (!prerm.is_empty()).then(|| shell(&prerm));
        }
        PackageFormat::Rpm => {
            // $1 is the number of versions left after the step: 1 on install, 0 on erase.
            let mut preun = String::new();
            if let Some(user) = service_user {
                scripts.preinst = Some(format!(
                    "getent group {user} >/dev/null || groupadd -r {user}\ngetent passwd {user} >/dev/null || useradd -r -g {user} -d /nonexistent -s /sbin/nologin {user}\nexit 0\n"
                ));
                scripts.postinst = Some(format!(
                    "if [ $1 -eq 1 ] && [ -d /run/systemd/system ]; then\n    systemctl --no-reload preset {unit} >/dev/null 2>&1 || :\nfi\n"
                ));
                preun.push_str(&format!(
                    "if [ $1 -eq 0 ] && [ -d /run/systemd/system ]; then\n    systemctl --no-reload disable --now {unit} >/dev/null 2>&1 || :\nfi\n"
                ));
                scripts.postrm = Some(
                    "if [ -d /run/systemd/system ]; then\n    systemctl daemon-reload >/dev/null 2>&1 || :\nfi\n"
                        .into(),
                );
            }
            if let Some((_, dir)) = compile {
                preun.push_str(&format!(
                    "if [ $1 -eq 0 ]; then\n    find {dir} -depth -type d -name __pycache__ -exec rm -rf {{}} + 2>/dev/null || :\nfi\n"
                ));
            }
            scripts.prerm = (!preun.is_empty()).then_some(preun);
        }
    }
    scripts
}

/// A Debian maintainer script: `sh -e`, ending in `exit 0`.
fn shell(body: &str) -> String {
    format!("#!/bin/sh\nset -e\n\n{body}\nexit 0\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deb_compiles_on_install_and_cleans_up_before_removal() {
        let s = scripts(
            PackageFormat::Deb,
            "app",
            Some(("/usr/lib/app/bin/python3.11", "/usr/lib/app/lib")),
            None,
        );
        assert!(s.postinst.unwrap().contains("compileall"));
        assert!(s.prerm.unwrap().contains("__pycache__"));
        assert_eq!(s.postrm, None);
    }

    #[test]
    fn a_service_gets_its_user_and_unit_handling() {
        let deb = scripts(PackageFormat::Deb, "app", None, Some("svc"));
        assert!(deb
            .postinst
            .as_deref()
            .unwrap()
            .contains("adduser --system"));
        assert!(deb.prerm.as_deref().unwrap().contains("stop 'app.service'"));
        assert!(deb
            .postrm
            .as_deref()
            .unwrap()
            .contains("purge 'app.service'"));
        let rpm = scripts(PackageFormat::Rpm, "app", None, Some("svc"));
        assert!(rpm.preinst.as_deref().unwrap().contains("useradd -r"));
        assert!(rpm
            .prerm
            .as_deref()
            .unwrap()
            .contains("disable --now app.service"));
    }
}
