//! Stripped copies of compiled code, as distributions ship it: `strip --strip-unneeded` on
//! every ELF file (binutils' tool, deterministic for the same input). The runtime bundle's
//! stripped copy is made once and kept in the cache beside the packages' other state.
//!
//! The host's `strip` only understands the host's machine: an object of another (an arm64
//! package built on amd64) is stripped with binutils' cross tool for that machine
//! (`aarch64-linux-gnu-strip`, Debian's binutils-aarch64-linux-gnu) when it is installed,
//! and otherwise kept as it is, with its symbols: a package that is larger, never one that
//! is broken.

use crate::{io, OsPkgError};
use gradient_core::RuntimeFiles;
use gradient_python::integrity::{self, State};
use std::path::{Path, PathBuf};
use tokio::process::Command;

/// The name prefix of a stripped copy being made in `cache/ospkg/stripped/`.
const STAGING_PREFIX: &str = ".stripping-";

/// Where this crate stages cache entries (folder, name prefix). Stripped copies: every dot
/// entry there, the staging
/// folders (`STAGING_PREFIX…`) and damaged entries put aside to be removed
/// (`.KEY….discarded-PID`, see [`gradient_python::integrity::discard`]).
pub fn staging_areas(cache: &Path) -> Vec<(PathBuf, &'static str)> {
    vec![
        (cache.join("ospkg").join("stripped"), "."),
        // The deb's cached data parts, written through staging files.
        (
            cache.join("ospkg").join("deb-data"),
            crate::deb::DATA_STAGING_PREFIX,
        ),
    ]
}

/// A stripped copy of the runtime bundle, made once per bundle in
/// `cache/ospkg/stripped/KEY/bundle`, sealed with the digest of every file
/// ([`gradient_python::integrity`]): the packages copy it as it is, so a damaged copy is
/// said and made again. Without `strip` on the host, the bundle itself (and a warning).
pub async fn stripped_runtime(runtime: &RuntimeFiles, cache: &Path) -> Result<PathBuf, OsPkgError> {
    let bundle = &runtime.dir;
    let machine = elf_machine(&bundle.join(&runtime.python));
    let Some(tool) = machine.and_then(strip_tool) else {
        tracing::warn!(
            "no `strip` for {} objects is installed (binutils, or binutils-aarch64-linux-gnu for arm64 on another host): the package's compiled code keeps its symbols (lintian: unstripped-binary-or-object)",
            machine.map_or("these", machine_name)
        );
        return Ok(bundle.to_path_buf());
    };
    tracing::debug!("stripping the runtime with `{tool}`");
    let entry = stripped_entry(runtime, cache);
    let done = entry.join("bundle");
    match integrity::check(&entry) {
        State::Intact => return Ok(done),
        State::Unsealed => {}
        damaged => tracing::warn!(
            "the stripped runtime `{}` is damaged: {damaged}; making it again",
            entry.display()
        ),
    }
    let parent = entry.parent().expect("has a parent");
    std::fs::create_dir_all(parent).map_err(io("create", parent))?;
    let staging = gradient_python::staging::Staged::dir_in(parent, STAGING_PREFIX)
        .map_err(io("create", parent))?;
    let copy = staging.path().join("bundle");
    copy_tree(bundle, &copy)?;
    strip_tree(&copy).await?;
    integrity::seal(staging.path()).map_err(io("record the digests of", staging.path()))?;
    integrity::settle(staging, &entry).map_err(io("move into place", &entry))?;
    Ok(done)
}

/// The stripped copy for the bill of materials of a package, which lists the libraries and
/// copies nothing: a made copy is taken at a quick look (its digests unchecked, which costs
/// hashing some 30 MB on a run that may reuse every tier), else it is made now.
pub async fn stripped_runtime_to_list(
    runtime: &RuntimeFiles,
    cache: &Path,
) -> Result<PathBuf, OsPkgError> {
    let entry = stripped_entry(runtime, cache);
    let tool = elf_machine(&runtime.dir.join(&runtime.python)).and_then(strip_tool);
    if tool.is_some() && integrity::is_sealed(&entry) {
        return Ok(entry.join("bundle"));
    }
    stripped_runtime(runtime, cache).await
}

/// Strip every ELF file under `dir` in place (nothing when `strip` is missing).
pub async fn strip_tree(dir: &Path) -> Result<(), OsPkgError> {
    strip_files(&elf_files(dir)?).await
}

/// Bumped whenever a stripped copy of the same bundle would differ (2: objects whose
/// segments strip would move are kept as they are).
const STRIPPED_FORMAT: u32 = 2;

/// Where the stripped copy of `runtime` is kept.
fn stripped_entry(runtime: &RuntimeFiles, cache: &Path) -> PathBuf {
    cache
        .join("ospkg")
        .join("stripped")
        .join(format!("{}-v{STRIPPED_FORMAT}", runtime.key()))
}

/// ELF's machine numbers (`e_machine`) for the platforms gradient builds for.
pub const EM_X86_64: u16 = 62;
pub const EM_AARCH64: u16 = 183;

/// The machine an ELF file is built for (`e_machine`, little-endian as both targets are);
/// `None` when it is not a readable ELF file.
pub fn elf_machine(path: &Path) -> Option<u16> {
    use std::io::Read;
    let mut header = [0u8; 20];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .ok()?;
    (header.starts_with(b"\x7fELF") && header[5] == 1)
        .then(|| u16::from_le_bytes([header[18], header[19]]))
}

fn machine_name(machine: u16) -> &'static str {
    match machine {
        EM_X86_64 => "x86_64",
        EM_AARCH64 => "aarch64",
        _ => "foreign",
    }
}

/// The binutils `strip` that understands objects of `machine`, when it is installed: the
/// host's own for its machine, else the cross tool Debian names after the target's triplet
/// (`aarch64-linux-gnu-strip`). `None`: such objects are not stripped.
pub fn strip_tool(machine: u16) -> Option<&'static str> {
    let host = match std::env::consts::ARCH {
        "x86_64" => EM_X86_64,
        "aarch64" => EM_AARCH64,
        _ => 0,
    };
    let tool = match machine {
        m if m == host => "strip",
        EM_AARCH64 => "aarch64-linux-gnu-strip",
        EM_X86_64 => "x86_64-linux-gnu-strip",
        _ => return None,
    };
    on_path(tool).then_some(tool)
}

/// Strip `objects` in place (nothing when `strip` is missing), each into a copy beside it
/// that replaces it only when the dynamic loader can still map it. `strip` rewrites a
/// library whose segments were moved by patchelf (as auditwheel leaves the libraries it
/// vendors into a wheel's `NAME.libs/`: numpy's OpenBLAS, for one) into one with a loadable
/// segment off its page alignment, which the loader refuses ("ELF load command
/// address/offset not page-aligned"): such a file is kept as it was, with its symbols.
pub async fn strip_files(objects: &[PathBuf]) -> Result<(), OsPkgError> {
    for object in objects {
        // The host's strip cannot read another machine's objects: its cross tool, or none.
        let Some(tool) = elf_machine(object).and_then(strip_tool) else {
            continue;
        };
        let name = object.file_name().expect("a file").to_string_lossy();
        let copy = object.with_file_name(format!(".{name}.stripped"));
        let mut command = Command::new(tool);
        command
            .arg("--strip-unneeded")
            .arg("-o")
            .arg(&copy)
            .arg(object);
        // Killed with the run, not left writing into the staging folder the run removes.
        let output = gradient_python::ProcessGroup::output_of(&mut command)
            .await
            .map_err(io("run strip on", object))?;
        if !output.status.success() {
            let _ = std::fs::remove_file(&copy);
            return Err(OsPkgError::Strip {
                detail: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        if loadable(&copy) && same_segments(object, &copy) {
            let mode = std::fs::metadata(object)
                .map_err(io("read", object))?
                .permissions();
            std::fs::set_permissions(&copy, mode).map_err(io("set the mode of", &copy))?;
            std::fs::rename(&copy, object).map_err(io("replace", object))?;
        } else {
            std::fs::remove_file(&copy).map_err(io("remove", &copy))?;
            tracing::info!(
                "`{}` is kept unstripped: stripping it would leave a segment the dynamic loader cannot map (a library rewritten by patchelf)",
                object.display()
            );
        }
    }
    Ok(())
}

/// The smallest page size of the targets (x86_64, and aarch64 with 4 KiB pages): a loadable
/// segment's address and file offset must be equal modulo it, and modulo its own alignment.
const PAGE: u64 = 4096;

/// Whether the dynamic loader can map every loadable segment (`PT_LOAD`) of the ELF file at
/// `path`: its address and file offset equal modulo the page size and the segment's
/// alignment, and no segment mapped over the memory of another. A file that cannot be read
/// as ELF is not.
pub(crate) fn loadable(path: &Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| segments_aligned(&bytes) == Some(true))
}

/// A loadable segment: its address, file size and memory size.
type Segment = (u64, u64, u64);

/// The loadable segments of an ELF file's bytes, as `(address, file size, memory size)`
/// sorted by address; `None` when they are not a whole ELF header and program header table,
/// or a segment's address and file offset differ by other than a multiple of the page size
/// and of its alignment (the loader cannot map it).
fn load_segments(elf: &[u8]) -> Option<Result<Vec<Segment>, ()>> {
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let little = match elf.get(5)? {
        1 => true,
        2 => false,
        _ => return None,
    };
    let read = |at: usize, len: usize| -> Option<u64> {
        let field = elf.get(at..at.checked_add(len)?)?;
        let mut value = 0u64;
        for i in 0..len {
            let byte = if little { field[len - 1 - i] } else { field[i] };
            value = value << 8 | u64::from(byte);
        }
        Some(value)
    };
    let (phoff, phentsize, phnum) = if wide {
        (read(0x20, 8)?, read(0x36, 2)?, read(0x38, 2)?)
    } else {
        (read(0x1c, 4)?, read(0x2a, 2)?, read(0x2c, 2)?)
    };
    let mut loads = Vec::new();
    for index in 0..phnum {
        let at = usize::try_from(phoff.checked_add(index.checked_mul(phentsize)?)?).ok()?;
        if read(at, 4)? != 1 {
            continue; // not PT_LOAD
        }
        // 64-bit: p_type, p_flags, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_align;
        // 32-bit: p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align.
        let (offset, vaddr, align) = if wide {
            (read(at + 8, 8)?, read(at + 16, 8)?, read(at + 48, 8)?)
        } else {
            (read(at + 4, 4)?, read(at + 8, 4)?, read(at + 28, 4)?)
        };
        let shift = vaddr.wrapping_sub(offset);
        if shift % PAGE != 0 || (align > 1 && shift % align != 0) {
            return Some(Err(()));
        }
        let (filesz, memsz) = if wide {
            (read(at + 32, 8)?, read(at + 40, 8)?)
        } else {
            (read(at + 16, 4)?, read(at + 20, 4)?)
        };
        loads.push((vaddr, filesz, memsz));
    }
    loads.sort_unstable();
    Some(Ok(loads))
}

/// [`loadable`] on the file's bytes; `None` when they are not a whole ELF header and
/// program header table.
fn segments_aligned(elf: &[u8]) -> Option<bool> {
    let Ok(loads) = load_segments(elf)? else {
        return Some(false);
    };
    // A segment whose first page holds the end of the one before, where that one's memory
    // overlaps it or is zero-filled past its file bytes, overwrites it when mapped: `strip`
    // leaves such a layout from an object given a search path by insertion (its added
    // segment moved down against the previous one).
    for pair in loads.windows(2) {
        let ((before, before_filesz, before_memsz), (next, _, _)) = (pair[0], pair[1]);
        let end = before.saturating_add(before_memsz);
        let overlaps = next < end;
        let shares_zeroed_page = before_memsz > before_filesz && next - next % PAGE < end;
        if overlaps || shares_zeroed_page {
            return Some(false);
        }
    }
    Some(true)
}

/// Whether a stripped copy maps its segments where the original does: `strip` removes
/// sections no segment holds and moves nothing that is loaded, except from an object given
/// a search path by insertion, whose added segment it moves down (on aarch64, with 64 KiB
/// alignment, into a layout [`loadable`] cannot tell from a good one, but that the loader
/// refuses).
fn same_segments(original: &Path, stripped: &Path) -> bool {
    let addresses = |path: &Path| -> Option<Vec<(u64, u64)>> {
        let loads = load_segments(&std::fs::read(path).ok()?)?.ok()?;
        Some(
            loads
                .into_iter()
                .map(|(vaddr, _, memsz)| (vaddr, memsz))
                .collect(),
        )
    };
    matches!((addresses(original), addresses(stripped)), (Some(a), Some(b)) if a == b)
}

/// Copy a tree, keeping symlinks as links and permission bits.
fn copy_tree(from: &Path, to: &Path) -> Result<(), OsPkgError> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.map_err(|e| io("read", from)(e.into()))?;
        let target = to.join(entry.path().strip_prefix(from).expect("inside the walk"));
        let kind = entry.file_type();
        if kind.is_dir() {
            std::fs::create_dir_all(&target).map_err(io("create", &target))?;
        } else if kind.is_symlink() {
            let link = std::fs::read_link(entry.path()).map_err(io("read", entry.path()))?;
            std::os::unix::fs::symlink(link, &target).map_err(io("link", &target))?;
        } else {
            std::fs::copy(entry.path(), &target).map_err(io("copy", entry.path()))?;
        }
    }
    Ok(())
}

/// The ELF files under `dir`, in name order.
pub fn elf_files(dir: &Path) -> Result<Vec<PathBuf>, OsPkgError> {
    let mut objects = Vec::new();
    for entry in walkdir::WalkDir::new(dir).sort_by_file_name() {
        let entry = entry.map_err(|e| io("read", dir)(e.into()))?;
        if entry.file_type().is_file() && is_elf(entry.path()) {
            objects.push(entry.into_path());
        }
    }
    Ok(objects)
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"\x7fELF"
}

/// Whether `tool` is a file in one of PATH's folders.
pub fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|p| p.join(tool).is_file()))
}

#[cfg(test)]
mod tests {
    use super::segments_aligned;

    /// An ELF header (64- or 32-bit, little-endian) and its program headers, each a
    /// (type, offset, address, alignment).
    fn elf(wide: bool, segments: &[(u32, u64, u64, u64)]) -> Vec<u8> {
        let (header, entry) = if wide { (64usize, 56usize) } else { (52, 32) };
        let mut bytes = vec![0u8; header + entry * segments.len()];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = if wide { 2 } else { 1 };
        bytes[5] = 1;
        let put = |bytes: &mut Vec<u8>, at: usize, len: usize, value: u64| {
            bytes[at..at + len].copy_from_slice(&value.to_le_bytes()[..len]);
        };
        if wide {
            put(&mut bytes, 0x20, 8, header as u64);
            put(&mut bytes, 0x36, 2, entry as u64);
            put(&mut bytes, 0x38, 2, segments.len() as u64);
        } else {
            put(&mut bytes, 0x1c, 4, header as u64);
            put(&mut bytes, 0x2a, 2, entry as u64);
            put(&mut bytes, 0x2c, 2, segments.len() as u64);
        }
        for (i, &(kind, offset, vaddr, align)) in segments.iter().enumerate() {
            let at = header + i * entry;
            put(&mut bytes, at, 4, u64::from(kind));
            if wide {
                put(&mut bytes, at + 8, 8, offset);
                put(&mut bytes, at + 16, 8, vaddr);
                put(&mut bytes, at + 48, 8, align);
            } else {
                put(&mut bytes, at + 4, 4, offset);
                put(&mut bytes, at + 8, 4, vaddr);
                put(&mut bytes, at + 28, 4, align);
            }
        }
        bytes
    }

    #[test]
    fn segments_whose_address_and_offset_agree_on_the_page_are_loadable() {
        // The layout `readelf -l` shows for numpy's OpenBLAS as its wheel ships it.
        let shipped = [
            (1, 0, 0, 0x1000),
            (1, 0x288800, 0x289800, 0x1000),
            (1, 0x1750000, 0x166b000, 0x1000),
        ];
        assert_eq!(segments_aligned(&elf(true, &shipped)), Some(true));
        assert_eq!(segments_aligned(&elf(false, &shipped)), Some(true));
        // Segments of another type are not mapped and not looked at.
        assert_eq!(
            segments_aligned(&elf(true, &[(6, 0x40, 0x41, 8)])),
            Some(true)
        );
    }

    #[test]
    fn a_segment_moved_off_its_page_is_not_loadable() {
        // The same library after `strip --strip-unneeded`: patchelf's added segment now
        // starts at file offset 0x1621098 for address 0x166b000.
        let stripped = [(1, 0, 0, 0x1000), (1, 0x1621098, 0x166b000, 0x1000)];
        assert_eq!(segments_aligned(&elf(true, &stripped)), Some(false));
        assert_eq!(segments_aligned(&elf(false, &stripped)), Some(false));
        // Agreeing on the page but not on the segment's own, larger alignment.
        assert_eq!(
            segments_aligned(&elf(true, &[(1, 0x1000, 0x201000 + 0x1000, 0x200000)])),
            Some(false)
        );
    }

    /// A library given a search path by insertion is one `strip` would break (it moves the
    /// added segment over the zero-filled end of the one before): it is kept unstripped,
    /// and still loads.
    #[tokio::test]
    async fn a_library_with_an_inserted_search_path_is_kept_unstripped() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("greet.c");
        std::fs::write(
            &source,
            "int counter; int greet(void) { return ++counter; }\n",
        )
        .unwrap();
        let library = dir.path().join("libgreet.so");
        let built = std::process::Command::new("gcc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .status();
        if !built.is_ok_and(|s| s.success()) || !super::on_path("strip") {
            eprintln!("skipped: gcc or strip is missing");
            return;
        }
        gradient_python::elf::set_search_path(&library, "$ORIGIN", false).unwrap();
        let before = std::fs::read(&library).unwrap();
        assert_eq!(segments_aligned(&before), Some(true));
        // What strip makes of it, checked directly.
        let stripped = dir.path().join("stripped.so");
        let status = std::process::Command::new("strip")
            .args(["--strip-unneeded", "-o"])
            .arg(&stripped)
            .arg(&library)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(
            segments_aligned(&std::fs::read(&stripped).unwrap()),
            Some(false)
        );
        super::strip_files(std::slice::from_ref(&library))
            .await
            .unwrap();
        assert_eq!(std::fs::read(&library).unwrap(), before);
    }

    /// An aarch64 library, as an arm64 package carries them, built by the cross compiler:
    /// its machine is read as aarch64 and it is stripped by binutils' aarch64 tool (the
    /// host's `strip` cannot read it), still an aarch64 object, without its symbol table.
    #[tokio::test]
    async fn a_foreign_object_is_stripped_with_the_cross_tool_for_its_machine() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("greet.c");
        std::fs::write(&source, "int greet(void) { return 42; }\n").unwrap();
        let library = dir.path().join("libgreet.so");
        let built = std::process::Command::new("aarch64-linux-gnu-gcc")
            .args(["-g", "-shared", "-fPIC", "-o"])
            .arg(&library)
            .arg(&source)
            .status();
        let cross_required = std::env::var("GRADIENT_REQUIRE_CROSS").is_ok_and(|v| v == "1");
        if !built.is_ok_and(|s| s.success()) {
            assert!(
                !cross_required,
                "GRADIENT_REQUIRE_CROSS=1 but aarch64-linux-gnu-gcc failed"
            );
            eprintln!("skipped: aarch64-linux-gnu-gcc is missing");
            return;
        }
        assert_eq!(super::elf_machine(&library), Some(super::EM_AARCH64));
        let Some(tool) = super::strip_tool(super::EM_AARCH64) else {
            assert!(
                !cross_required,
                "GRADIENT_REQUIRE_CROSS=1 but aarch64-linux-gnu-strip is missing"
            );
            eprintln!("skipped: no strip for aarch64 objects");
            return;
        };
        if std::env::consts::ARCH == "x86_64" {
            assert_eq!(tool, "aarch64-linux-gnu-strip");
        }
        let before = std::fs::read(&library).unwrap();
        super::strip_files(std::slice::from_ref(&library))
            .await
            .unwrap();
        let after = std::fs::read(&library).unwrap();
        assert!(
            after.len() < before.len(),
            "{} !< {}",
            after.len(),
            before.len()
        );
        assert_eq!(super::elf_machine(&library), Some(super::EM_AARCH64));
        let elf = goblin::elf::Elf::parse(&after).unwrap();
        assert!(elf.syms.is_empty(), "the symbol table is gone");
        assert!(segments_aligned(&after) == Some(true));
    }

    #[test]
    fn segments_that_overwrite_each_other_are_not_loadable() {
        let mut bytes = elf(
            true,
            &[(1, 0x2df8, 0x3df8, 0x1000), (1, 0x3010, 0x4010, 0x1000)],
        );
        // filesz 0x218 and memsz 0x220 for the first: its zero-filled end is at 0x4018.
        bytes[64 + 32..64 + 40].copy_from_slice(&0x218u64.to_le_bytes());
        bytes[64 + 40..64 + 48].copy_from_slice(&0x220u64.to_le_bytes());
        assert_eq!(segments_aligned(&bytes), Some(false));
        // Starting on the next page instead, it is fine.
        bytes[64 + 56 + 8..64 + 56 + 16].copy_from_slice(&0x4000u64.to_le_bytes());
        bytes[64 + 56 + 16..64 + 56 + 24].copy_from_slice(&0x5000u64.to_le_bytes());
        assert_eq!(segments_aligned(&bytes), Some(true));
    }

    #[test]
    fn bytes_that_are_not_a_whole_elf_header_are_not_judged() {
        assert_eq!(segments_aligned(b"#!/bin/sh\n"), None);
        let mut cut = elf(true, &[(1, 0, 0, 0x1000)]);
        cut.truncate(70);
        assert_eq!(segments_aligned(&cut), None);
    }
}
