//! Just enough ELF for a relocatable runtime: what an object needs (DT_NEEDED), where it
//! looks (DT_RUNPATH / DT_RPATH), which glibc symbol versions it asks for, and setting its
//! search path to an `$ORIGIN`-relative one: rewritten in place when the old string has
//! room, else inserted ([`insert`] appends a region with new dynamic tables).

mod insert;

use goblin::elf::dynamic::{DT_RPATH, DT_RUNPATH, DT_STRTAB};
use goblin::elf::program_header::{PT_DYNAMIC, PT_LOAD};
use std::path::Path;

/// The dynamic-linking facts of one ELF object.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ElfFacts {
    pub needed: Vec<String>,
    /// DT_RUNPATH, or DT_RPATH when there is no RUNPATH, split on `:`.
    pub search_path: Vec<String>,
    /// The highest `GLIBC_x.y` version it references.
    pub glibc: Option<(u32, u32)>,
}

/// Read `path`; `None` when it is not an ELF file.
pub fn read(path: &Path) -> std::io::Result<Option<ElfFacts>> {
    let bytes = std::fs::read(path)?;
    if !bytes.starts_with(b"\x7fELF") {
        return Ok(None);
    }
    let elf = goblin::elf::Elf::parse(&bytes).map_err(std::io::Error::other)?;
    let mut facts = ElfFacts {
        needed: elf.libraries.iter().map(|s| s.to_string()).collect(),
        ..ElfFacts::default()
    };
    let paths = if elf.runpaths.is_empty() {
        &elf.rpaths
    } else {
        &elf.runpaths
    };
    facts.search_path = paths
        .iter()
        .flat_map(|p| p.split(':'))
        .map(str::to_string)
        .collect();
    if let Some(verneed) = &elf.verneed {
        for need in verneed.iter() {
            for aux in need.iter() {
                let name = elf.dynstrtab.get_at(aux.vna_name).unwrap_or("");
                if let Some(version) = name.strip_prefix("GLIBC_") {
                    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
                    if let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) {
                        facts.glibc = facts.glibc.max(Some((major, minor)));
                    }
                }
            }
        }
    }
    Ok(Some(facts))
}

/// Replace the object's DT_RUNPATH or DT_RPATH string with `new` in place (it must not be
/// longer than the old one), and make it a DT_RPATH when `as_rpath`: an executable's
/// DT_RPATH also serves the libraries it loads that have no search path of their own.
/// Returns false when the object has neither entry, so there is nothing to rewrite.
pub fn rewrite_search_path(path: &Path, new: &str, as_rpath: bool) -> std::io::Result<bool> {
    let mut bytes = std::fs::read(path)?;
    let elf = goblin::elf::Elf::parse(&bytes).map_err(std::io::Error::other)?;
    if !elf.is_64 || !elf.little_endian {
        return Err(std::io::Error::other(
            "only 64-bit little-endian ELF is supported",
        ));
    }
    let Some(dynamic) = elf.program_headers.iter().find(|p| p.p_type == PT_DYNAMIC) else {
        return Ok(false);
    };
    let dyns = elf
        .dynamic
        .as_ref()
        .map(|d| d.dyns.clone())
        .unwrap_or_default();
    let Some(index) = dyns
        .iter()
        .position(|d| d.d_tag == DT_RUNPATH || d.d_tag == DT_RPATH)
    else {
        return Ok(false);
    };
    let strtab_vaddr = dyns
        .iter()
        .find(|d| d.d_tag == DT_STRTAB)
        .map(|d| d.d_val)
        .ok_or_else(|| std::io::Error::other("no DT_STRTAB"))?;
    let strtab_offset = elf
        .program_headers
        .iter()
        .find(|p| {
            p.p_type == PT_LOAD
                && p.p_vaddr <= strtab_vaddr
                && strtab_vaddr < p.p_vaddr + p.p_filesz
        })
        .map(|p| strtab_vaddr - p.p_vaddr + p.p_offset)
        .ok_or_else(|| std::io::Error::other("DT_STRTAB is outside every loaded segment"))?;
    let string_at = (strtab_offset + dyns[index].d_val) as usize;
    let old_len = bytes[string_at..].iter().position(|b| *b == 0).unwrap_or(0);
    if new.len() > old_len {
        return Err(std::io::Error::other(format!(
            "the new search path `{new}` is longer than the old one ({old_len} bytes)"
        )));
    }
    let entry_at = dynamic.p_offset as usize + index * 16;
    drop(elf);
    bytes[string_at..string_at + old_len].fill(0);
    bytes[string_at..string_at + new.len()].copy_from_slice(new.as_bytes());
    if as_rpath {
        bytes[entry_at..entry_at + 8].copy_from_slice(&(DT_RPATH as i64).to_le_bytes());
    }
    std::fs::write(path, bytes)?;
    Ok(true)
}

/// Give the object at `path` a search path of `new` (e.g. `$ORIGIN/../lib`): a DT_RPATH
/// when `as_rpath`, else a DT_RUNPATH, whether or not it had one. When it has exactly one
/// search path entry whose string is at least as long, that string is rewritten in place
/// ([`rewrite_search_path`]) and the file keeps its size; otherwise a region holding a
/// copy of the dynamic string table with `new`, a new dynamic array and a new program
/// header table is appended and mapped. The same input and `new` give the same bytes.
/// 64-bit little-endian x86_64 and aarch64 executables and shared libraries only; anything
/// else (32-bit, big-endian, static executables, non-ELF files) is refused with the reason.
/// Strip an object before, not after: binutils misplaces an inserted region.
pub fn set_search_path(path: &Path, new: &str, as_rpath: bool) -> std::io::Result<()> {
    let refuse = |reason: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "cannot set the search path of `{}`: {reason}",
                path.display()
            ),
        )
    };
    if new.contains('\0') {
        return Err(refuse("the new search path contains a NUL byte".into()));
    }
    let bytes = std::fs::read(path)?;
    let object = insert::Object::parse(&bytes).map_err(refuse)?;
    let wanted = if as_rpath {
        insert::DT_RPATH
    } else {
        insert::DT_RUNPATH
    };
    match object.search_entries.as_slice() {
        [entry] if entry.len >= new.len() => {
            let entry = *entry;
            drop(object);
            if !rewrite_search_path(path, new, as_rpath)? {
                return Err(refuse(
                    "its search path entry vanished while rewriting".into(),
                ));
            }
            if entry.tag != wanted {
                // rewrite_search_path only ever turns a RUNPATH into an RPATH.
                let mut bytes = std::fs::read(path)?;
                insert::put_u64(&mut bytes, entry.entry_at, wanted);
                std::fs::write(path, bytes)?;
            }
            Ok(())
        }
        _ => {
            let grown = object.with_search_path(new, as_rpath).map_err(refuse)?;
            std::fs::write(path, grown)
        }
    }
}

/// Whether [`set_search_path`] can give the object in `bytes` a search path, without
/// writing anything: the reason when it cannot.
pub fn search_path_settable(bytes: &[u8]) -> Result<(), String> {
    let object = insert::Object::parse(bytes)?;
    object.with_search_path("$ORIGIN/../lib", true).map(drop)
}

/// Whether two ELF objects load the same bytes: every allocated section (code, data, the
/// dynamic tables) is the same, and only what is never loaded may differ (debug info, which
/// names the folder a build ran in, the symbol table, and the build ID note, a hash over the
/// whole file). Two builds of one source in two folders differ only there. `None` when
/// either is not an ELF object.
pub fn same_loaded_bytes(a: &[u8], b: &[u8]) -> Option<bool> {
    Some(loaded_sections(a)? == loaded_sections(b)?)
}

/// The allocated sections of an ELF object but the build ID, by name, with their bytes
/// (their size, for sections that take no room in the file).
fn loaded_sections(bytes: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    use goblin::elf::section_header::{SHF_ALLOC, SHT_NOBITS};
    if !bytes.starts_with(b"\x7fELF") {
        return None;
    }
    let elf = goblin::elf::Elf::parse(bytes).ok()?;
    let mut sections = Vec::new();
    for header in &elf.section_headers {
        if header.sh_flags & u64::from(SHF_ALLOC) == 0 {
            continue;
        }
        let name = elf
            .shdr_strtab
            .get_at(header.sh_name)
            .unwrap_or("")
            .to_string();
        if name == ".note.gnu.build-id" {
            continue;
        }
        let content = if header.sh_type == SHT_NOBITS {
            header.sh_size.to_le_bytes().to_vec()
        } else {
            let start = usize::try_from(header.sh_offset).ok()?;
            let end = start.checked_add(usize::try_from(header.sh_size).ok()?)?;
            bytes.get(start..end)?.to_vec()
        };
        sections.push((name, content));
    }
    Some(sections)
}
