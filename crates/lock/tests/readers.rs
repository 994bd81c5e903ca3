//! The readers against locks uv made (tests/data, `uv lock` 0.13.9 against PyPI) and the
//! cases a review found: markers uv writes, conflicting extras, ambiguous edges, hostile
//! versions, and the judgement of a lock that is current.

use gradient_lock::{
    requirements_text, Environment, Lock, LockError, LockFile, LockFormat, Marker,
    ProjectRequirements,
};
use std::collections::BTreeMap;

fn target(version: (u32, u32, u32)) -> Environment {
    Environment::linux("cpython", version, "linux_x86_64")
}

fn read(format: LockFormat, name: &str, text: &str) -> Result<Lock, LockError> {
    Lock::parse(
        LockFile {
            path: name.into(),
            format,
        },
        text.to_string(),
    )
}

fn uv(text: &str) -> Lock {
    read(LockFormat::Uv, "uv.lock", text).unwrap()
}

fn pins(lock: &Lock, app: &str, env: &Environment) -> Vec<String> {
    lock.select(Some(app), env)
        .unwrap()
        .iter()
        .map(|p| format!("{}=={}", p.name, p.version))
        .collect()
}

#[test]
fn wildcard_version_markers_pick_the_fork_for_each_python() {
    // numpy and pandas for >=3.9: uv forks on `python_full_version == '3.10.*'`.
    let lock = uv(include_str!("data/np.uv.lock"));
    let on_311 = pins(&lock, "np", &target((3, 11, 7)));
    assert!(on_311.contains(&"numpy==2.4.6".to_string()), "{on_311:?}");
    let on_310 = pins(&lock, "np", &target((3, 10, 13)));
    assert!(on_310.contains(&"numpy==2.2.6".to_string()), "{on_310:?}");
    for pins in [on_310, on_311] {
        assert_eq!(pins.iter().filter(|p| p.starts_with("numpy==")).count(), 1);
    }
}

#[test]
fn containment_reads_the_literal_inside_the_variable() {
    let env = target((3, 11, 7));
    let holds = |m: &str| Marker::parse(m).unwrap().evaluate(&env);
    assert!(holds("'x86' in platform_machine"));
    assert!(!holds("'x86' not in platform_machine"));
    assert!(!holds("'arm' in platform_machine"));
}

#[test]
fn conflicting_extras_follow_uvs_encoding() {
    let lock = uv(include_str!("data/conf.uv.lock"));
    let mut env = target((3, 11, 7));
    env.extras.insert("old".into());
    let chosen = pins(&lock, "conf", &env);
    assert!(
        chosen.contains(&"pygments==2.17.2".to_string()),
        "{chosen:?}"
    );
    env.extras.clear();
    env.extras.insert("new".into());
    let chosen = pins(&lock, "conf", &env);
    assert!(
        chosen.contains(&"pygments==2.18.0".to_string()),
        "{chosen:?}"
    );
}

#[test]
fn an_edge_with_a_source_takes_that_sources_package() {
    let text = r#"
version = 1
requires-python = ">=3.11"
[[package]]
name = "app"
version = "1"
source = { editable = "." }
dependencies = [{ name = "torch", version = "2.5.1", source = { registry = "https://download.example/whl/cpu" } }]
[[package]]
name = "torch"
version = "2.5.1"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.example/torch-2.5.1-cp311-cp311-manylinux1_x86_64.whl", hash = "sha256:1111111111111111111111111111111111111111111111111111111111111111" }]
[[package]]
name = "torch"
version = "2.5.1"
source = { registry = "https://download.example/whl/cpu" }
wheels = [{ url = "https://download.example/torch-2.5.1-cp311-cp311-linux_x86_64.whl", hash = "sha256:2222222222222222222222222222222222222222222222222222222222222222" }]
"#;
    let lock = uv(text);
    let chosen = lock.select(Some("app"), &target((3, 11, 7))).unwrap();
    assert_eq!(chosen[0].files[0].sha256, "2".repeat(64));
}

#[test]
fn a_fresh_lock_is_current_however_pyproject_spells_its_requirements() {
    let lock = uv(include_str!("data/st.uv.lock"));
    let dependencies: Vec<String> = [
        "Click >= 8.0, <9",
        "rich[jupyter]~=13.0; python_version<'3.13'",
        "Requests>=2.31.0",
        "attrs>=23.1.0.post0",
    ]
    .map(String::from)
    .to_vec();
    let optional = BTreeMap::from([(
        "Fast_IO".to_string(),
        vec!["msgpack>=1.0; platform_machine == 'x86_64'".to_string()],
    )]);
    let env = target((3, 11, 7));
    let selected = lock.select(Some("st"), &env).unwrap();
    let project = ProjectRequirements {
        version: Some("0.1.0"),
        dependencies: &dependencies,
        optional: &optional,
        requires_python: Some(">=3.9"),
    };
    assert_eq!(
        lock.staleness(&project, &selected, &env),
        Vec::<String>::new()
    );
    // A raised bound is a difference, named.
    let raised: Vec<String> = dependencies
        .iter()
        .map(|d| d.replace(">=2.31.0", ">=2.40"))
        .collect();
    let project = ProjectRequirements {
        dependencies: &raised,
        ..project
    };
    let differences = lock.staleness(&project, &selected, &env);
    assert!(
        differences.iter().any(|d| d.contains("Requests>=2.40")),
        "{differences:?}"
    );
    // So is a new version of the project itself, as `uv lock --check` judges.
    let bumped = ProjectRequirements {
        version: Some("0.2.0"),
        dependencies: &dependencies,
        ..project
    };
    let differences = lock.staleness(&bumped, &selected, &env);
    assert!(
        differences.iter().any(|d| d.contains("version is 0.2.0")),
        "{differences:?}"
    );
}

#[test]
fn a_lock_for_a_newer_python_is_refused_for_an_older_one() {
    let text = include_str!("data/np.uv.lock").replacen(">=3.9", ">=3.12", 1);
    let err = uv(&text)
        .select(Some("np"), &target((3, 11, 7)))
        .unwrap_err();
    assert!(err.to_string().contains("requires-python >=3.12"), "{err}");
}

#[test]
fn a_version_cannot_smuggle_installer_options_in() {
    let text = "lock-version = \"1.0\"\n[[packages]]\nname = \"click\"\n\
                version = \"8.1.7\\n--index-url https://evil.invalid/simple\\n-r /etc/passwd\"\n\
                wheels = [{ url = \"https://files.example/click-8.1.7-py3-none-any.whl\", hashes = { sha256 = \"aa\" } }]\n";
    let lock = read(LockFormat::Pylock, "pylock.toml", text).unwrap();
    let err = lock.select(Some("app"), &target((3, 11, 7))).unwrap_err();
    assert!(err.to_string().contains("pylock.toml:2:"), "{err}");
    assert!(err.to_string().contains("not a PEP 440 version"), "{err}");
}

#[test]
fn a_file_that_is_not_a_lock_is_not_quoted_back() {
    let err = read(
        LockFormat::Requirements,
        "lock.txt",
        "machine example.com login me password hunter2hunter2 --hash=sha256:aa\n",
    )
    .unwrap_err();
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(err.to_string().contains("lock.txt:1:1"), "{err}");
}

#[test]
fn extras_a_pylock_does_not_cover_are_refused() {
    let text = "lock-version = \"1.0\"\nextras = [\"cli\"]\n[[packages]]\nname = \"click\"\nversion = \"8.1.7\"\n\
                wheels = [{ url = \"https://files.example/click-8.1.7-py3-none-any.whl\", hashes = { sha256 = \"3333333333333333333333333333333333333333333333333333333333333333\" } }]\n";
    let lock = read(LockFormat::Pylock, "pylock.toml", text).unwrap();
    let mut env = target((3, 11, 7));
    env.extras.insert("docs".into());
    let err = lock.select(Some("app"), &env).unwrap_err();
    assert!(err.to_string().contains("extra `docs`"), "{err}");
    env.extras.clear();
    env.extras.insert("cli".into());
    let chosen = lock.select(Some("app"), &env).unwrap();
    let text = requirements_text(&[], &chosen);
    assert_eq!(
        text,
        format!("click==8.1.7 \\\n    --hash=sha256:{}\n", "3".repeat(64))
    );
}
