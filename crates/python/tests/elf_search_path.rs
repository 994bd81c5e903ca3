//! `elf::set_search_path` on real objects: programs and libraries built with gcc (and
//! Debian's aarch64 cross gcc, run under qemu-user through binfmt_misc) without any search
//! path, which fail to start until one is inserted, then run; readelf must accept the
//! result without a warning.

use gradient_python::elf::{read, set_search_path};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const GREET_C: &str = r#"
#include <stdio.h>
extern const char *name(void);
void greet(void) { printf("hello, %s\n", name()); }
"#;
const NAME_C: &str = r#"const char *name(void) { return "bundle"; }"#;
const GREET_SELF_C: &str = r#"
#include <stdio.h>
const char *name(void) { return "world"; }
void greet(void) { printf("hello, %s\n", name()); }
"#;
const MAIN_C: &str = r#"
extern void greet(void);
int main(void) { greet(); return 0; }
"#;

/// A C compiler and how to run what it builds.
struct Toolchain {
    cc: &'static str,
    /// Environment for running its programs (qemu-user's prefix for cross ones).
    env: Vec<(&'static str, &'static str)>,
}

fn host() -> Toolchain {
    Toolchain {
        cc: "gcc",
        env: Vec::new(),
    }
}

/// Debian's aarch64 cross gcc with qemu-user registered in binfmt_misc, or `None` (with a
/// message) when either is missing; a failure instead when GRADIENT_REQUIRE_CROSS=1.
fn aarch64() -> Option<Toolchain> {
    let cc = "aarch64-linux-gnu-gcc";
    let has_cc = Command::new(cc)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let binfmt = std::fs::read_to_string("/proc/sys/fs/binfmt_misc/qemu-aarch64")
        .is_ok_and(|s| s.starts_with("enabled"));
    if has_cc && binfmt {
        return Some(Toolchain {
            cc,
            env: vec![("QEMU_LD_PREFIX", "/usr/aarch64-linux-gnu")],
        });
    }
    let why = format!(
        "aarch64 skipped: {cc} found: {has_cc}, binfmt_misc qemu-aarch64 enabled: {binfmt}"
    );
    assert!(
        std::env::var("GRADIENT_REQUIRE_CROSS").as_deref() != Ok("1"),
        "{why} (GRADIENT_REQUIRE_CROSS=1)"
    );
    eprintln!("{why}");
    None
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn cc(tc: &Toolchain, dir: &Path, args: &[&str]) {
    let out = Command::new(tc.cc)
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{} {args:?}: {}",
        tc.cc,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run(tc: &Toolchain, program: &Path) -> Output {
    let mut command = Command::new(program);
    command.env_remove("LD_LIBRARY_PATH");
    for (key, value) in &tc.env {
        command.env(key, value);
    }
    command.output().unwrap()
}

/// `readelf -W <flag> path`'s output, failing on any warning or error it prints.
fn readelf(flag: &str, path: &Path) -> String {
    let out = Command::new("readelf")
        .args(["-W", flag])
        .arg(path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "readelf {flag} {}: {stderr}",
        path.display()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_clean(path: &Path, tag: &str, value: &str) {
    let dynamic = readelf("-d", path);
    assert!(
        dynamic.contains(&format!("({tag})")) && dynamic.contains(&format!("[{value}]")),
        "{}: no {tag} [{value}] in\n{dynamic}",
        path.display()
    );
    let other = if tag == "RPATH" {
        "(RUNPATH)"
    } else {
        "(RPATH)"
    };
    assert!(!dynamic.contains(other), "{dynamic}");
    readelf("-l", path);
    readelf("-S", path);
}

/// `readelf -l`'s segments of one type: (offset, address, file size, memory size, alignment).
fn segments(path: &Path, kind: &str) -> Vec<[u64; 5]> {
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).unwrap();
    readelf("-l", path)
        .lines()
        .map(str::split_whitespace)
        .filter_map(|mut fields| {
            (fields.next() == Some(kind)).then(|| {
                let f: Vec<&str> = fields.collect();
                [
                    hex(f[0]),
                    hex(f[1]),
                    hex(f[3]),
                    hex(f[4]),
                    hex(f[f.len() - 1]),
                ]
            })
        })
        .collect()
}

/// The added segment maps above every other on the largest page any of them allows (64 KiB
/// on aarch64), and the program headers are where a kernel that takes them to be at
/// `e_phoff` from the first segment's load address (before Linux 5.18, qemu-user) looks.
fn assert_placed(path: &Path) {
    let loads = segments(path, "LOAD");
    let (added, others) = loads.split_last().unwrap();
    let [offset, vaddr, _, _, align] = *added;
    assert_eq!(vaddr % align, offset % align);
    let end = others.iter().map(|s| s[1] + s[3]).max().unwrap();
    assert!(vaddr - vaddr % align >= end, "{loads:x?}");
    if let Some([phdr_offset, phdr_vaddr, ..]) = segments(path, "PHDR").first().copied() {
        let [first_offset, first_vaddr, ..] = loads[0];
        assert_eq!(phdr_vaddr - first_vaddr, phdr_offset - first_offset);
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// bin/prog linked against lib/libgreet.so, neither with a search path.
fn program_without_search_path(tc: &Toolchain, dir: &Path, pie: bool) -> (PathBuf, PathBuf) {
    write(dir, "greet.c", GREET_SELF_C);
    write(dir, "main.c", MAIN_C);
    cc(
        tc,
        dir,
        &["-shared", "-fPIC", "-o", "libgreet.so", "greet.c"],
    );
    let pie = if pie { "-pie" } else { "-no-pie" };
    cc(tc, dir, &[pie, "-o", "prog", "main.c", "-L.", "-lgreet"]);
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::rename(dir.join("prog"), dir.join("bin/prog")).unwrap();
    std::fs::rename(dir.join("libgreet.so"), dir.join("lib/libgreet.so")).unwrap();
    (dir.join("bin/prog"), dir.join("lib/libgreet.so"))
}

/// A PIE (ET_DYN) or position-dependent (ET_EXEC) program.
fn program_gains_rpath(tc: &Toolchain, pie: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (prog, _) = program_without_search_path(tc, dir.path(), pie);
    let kind = if pie { "DYN" } else { "EXEC" };
    assert!(readelf("-h", &prog).contains(&format!("Type:                              {kind}")));
    assert!(read(&prog).unwrap().unwrap().search_path.is_empty());
    let before = run(tc, &prog);
    assert!(!before.status.success(), "ran without a search path");
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("libgreet.so"),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    let original = size(&prog);
    set_search_path(&prog, "$ORIGIN/../lib", true).unwrap();
    let after = run(tc, &prog);
    assert_eq!(
        String::from_utf8_lossy(&after.stdout),
        "hello, world\n",
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
    assert_clean(&prog, "RPATH", "$ORIGIN/../lib");
    assert_placed(&prog);
    assert_eq!(
        read(&prog).unwrap().unwrap().search_path,
        ["$ORIGIN/../lib"]
    );
    eprintln!(
        "{} {kind}: bin/prog {original} -> {} bytes",
        tc.cc,
        size(&prog)
    );

    // Set again, longer (inserts a second region), then back (in place): still runs.
    set_search_path(&prog, "$ORIGIN/../lib:$ORIGIN/../lib/extra", false).unwrap();
    assert_clean(&prog, "RUNPATH", "$ORIGIN/../lib:$ORIGIN/../lib/extra");
    assert!(run(tc, &prog).status.success());
    let grown = size(&prog);
    set_search_path(&prog, "$ORIGIN/../lib", true).unwrap();
    assert_eq!(size(&prog), grown, "a shorter path is written in place");
    assert_clean(&prog, "RPATH", "$ORIGIN/../lib");
    assert_eq!(
        String::from_utf8_lossy(&run(tc, &prog).stdout),
        "hello, world\n"
    );
}

/// bin/prog → lib/libgreet.so → lib/libname.so, none with a search path. The program gets
/// a RUNPATH, which does not serve its libraries' own needs, so libgreet.so needs one too.
fn library_chain_runpath(tc: &Toolchain) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "greet.c", GREET_C);
    write(dir, "name.c", NAME_C);
    write(dir, "main.c", MAIN_C);
    cc(tc, dir, &["-shared", "-fPIC", "-o", "libname.so", "name.c"]);
    cc(
        tc,
        dir,
        &[
            "-shared",
            "-fPIC",
            "-o",
            "libgreet.so",
            "greet.c",
            "-L.",
            "-lname",
        ],
    );
    cc(
        tc,
        dir,
        &[
            "-o",
            "prog",
            "main.c",
            "-L.",
            "-lgreet",
            "-Wl,-rpath-link,.",
        ],
    );
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    for (from, to) in [
        ("prog", "bin/prog"),
        ("libgreet.so", "lib/libgreet.so"),
        ("libname.so", "lib/libname.so"),
    ] {
        std::fs::rename(dir.join(from), dir.join(to)).unwrap();
    }
    let (prog, greet) = (dir.join("bin/prog"), dir.join("lib/libgreet.so"));

    set_search_path(&prog, "$ORIGIN/../lib", false).unwrap();
    assert_clean(&prog, "RUNPATH", "$ORIGIN/../lib");
    let half = run(tc, &prog);
    assert!(!half.status.success());
    assert!(
        String::from_utf8_lossy(&half.stderr).contains("libname.so"),
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );

    let original = size(&greet);
    set_search_path(&greet, "$ORIGIN", false).unwrap();
    assert_clean(&greet, "RUNPATH", "$ORIGIN");
    assert_placed(&greet);
    let out = run(tc, &prog);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello, bundle\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{}: lib/libgreet.so {original} -> {} bytes",
        tc.cc,
        size(&greet)
    );
}

/// Same input and path, same bytes; setting the same path again changes nothing.
fn reproducible(tc: &Toolchain) {
    let dir = tempfile::tempdir().unwrap();
    let (prog, _) = program_without_search_path(tc, dir.path(), true);
    let copy = dir.path().join("bin/copy");
    std::fs::copy(&prog, &copy).unwrap();
    set_search_path(&prog, "$ORIGIN/../lib", true).unwrap();
    set_search_path(&copy, "$ORIGIN/../lib", true).unwrap();
    let first = std::fs::read(&prog).unwrap();
    assert_eq!(first, std::fs::read(&copy).unwrap());
    set_search_path(&prog, "$ORIGIN/../lib", true).unwrap();
    assert_eq!(first, std::fs::read(&prog).unwrap());
    assert_eq!(
        String::from_utf8_lossy(&run(tc, &prog).stdout),
        "hello, world\n"
    );
}

#[test]
fn x86_64_program_gains_rpath() {
    program_gains_rpath(&host(), true);
    program_gains_rpath(&host(), false);
}

#[test]
fn x86_64_library_chain_gains_runpath() {
    library_chain_runpath(&host());
}

#[test]
fn x86_64_reproducible() {
    reproducible(&host());
}

#[test]
fn aarch64_program_gains_rpath() {
    if let Some(tc) = aarch64() {
        program_gains_rpath(&tc, true);
        program_gains_rpath(&tc, false);
    }
}

#[test]
fn aarch64_library_chain_gains_runpath() {
    if let Some(tc) = aarch64() {
        library_chain_runpath(&tc);
    }
}

#[test]
fn aarch64_reproducible() {
    if let Some(tc) = aarch64() {
        reproducible(&tc);
    }
}

/// A long old search path is rewritten in place: the file keeps its size, and an RPATH
/// becomes the RUNPATH asked for.
#[test]
fn long_enough_search_path_is_rewritten_in_place() {
    let tc = host();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "greet.c", GREET_SELF_C);
    write(dir, "main.c", MAIN_C);
    cc(
        &tc,
        dir,
        &["-shared", "-fPIC", "-o", "libgreet.so", "greet.c"],
    );
    cc(
        &tc,
        dir,
        &[
            "-o",
            "prog",
            "main.c",
            "-L.",
            "-lgreet",
            "-Wl,--disable-new-dtags,-rpath,/nowhere/at/all/a/long/folder/lib",
        ],
    );
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib")).unwrap();
    std::fs::rename(dir.join("prog"), dir.join("bin/prog")).unwrap();
    std::fs::rename(dir.join("libgreet.so"), dir.join("lib/libgreet.so")).unwrap();
    let prog = dir.join("bin/prog");
    assert_clean(&prog, "RPATH", "/nowhere/at/all/a/long/folder/lib");
    assert!(!run(&tc, &prog).status.success());
    let before = std::fs::read(&prog).unwrap();
    set_search_path(&prog, "$ORIGIN/../lib", false).unwrap();
    let after = std::fs::read(&prog).unwrap();
    assert_eq!(before.len(), after.len());
    let changed = before.iter().zip(&after).filter(|(a, b)| a != b).count();
    assert!(changed <= 40, "{changed} bytes changed");
    assert_clean(&prog, "RUNPATH", "$ORIGIN/../lib");
    assert_eq!(
        String::from_utf8_lossy(&run(&tc, &prog).stdout),
        "hello, world\n"
    );
}

/// Refused with the reason, and the file left as it was.
#[test]
fn refuses_what_it_cannot_change() {
    let tc = host();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    write(dir, "main.c", "int main(void) { return 0; }\n");
    write(dir, "f.c", "int f(void) { return 1; }\n");
    cc(&tc, dir, &["-static", "-o", "static", "main.c"]);
    cc(
        &tc,
        dir,
        &[
            "-m32",
            "-shared",
            "-fPIC",
            "-nostdlib",
            "-o",
            "lib32.so",
            "f.c",
        ],
    );
    write(dir, "script", "#!/bin/sh\necho not an ELF file\n");
    for (name, reason) in [
        ("static", "no PT_DYNAMIC"),
        ("lib32.so", "32-bit"),
        ("script", "not an ELF file"),
    ] {
        let path = dir.join(name);
        let before = std::fs::read(&path).unwrap();
        let error = set_search_path(&path, "$ORIGIN/../lib", true).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(reason) && message.contains(name),
            "{name}: {message}"
        );
        assert_eq!(before, std::fs::read(&path).unwrap(), "{name} was changed");
    }
    let missing = dir.join("missing");
    assert!(set_search_path(&missing, "$ORIGIN", false).is_err());
}
