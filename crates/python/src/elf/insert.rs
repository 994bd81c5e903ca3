//! Giving a 64-bit little-endian ELF object (x86_64 or aarch64) a DT_RUNPATH or DT_RPATH
//! it has no room for, without moving any of its bytes.
//!
//! ```text
//!  file    [ original bytes ............................ ][ zeros to a page ][ region ]
//!  region  [ PHDRs + 1 PT_LOAD ][ .dynamic copy: STRTAB/STRSZ moved, + RUNPATH/RPATH ][ .dynstr copy + new string ]
//!  memory  [ original segments ...... ][ gap to the alignment ][ region, PF_R|PF_W ]
//!  changed e_phoff/e_phnum, PT_PHDR, PT_DYNAMIC, the .dynamic and .dynstr section headers
//!  kept    every other byte; the old string table, dynamic array and PHDRs stay, unused
//! ```
//! The region is mapped above every existing segment. For an object the kernel may load
//! (it has PT_INTERP or PT_PHDR) its distance from its file offset is that of the first
//! segment, because kernels before 5.18 and qemu-user compute AT_PHDR as the first
//! segment's load address plus `e_phoff`; for a plain shared library the region only needs
//! its address congruent to its offset modulo the segments' alignment.
//!
//! binutils' `strip` and `objcopy` cannot rewrite the result: they move the added segment
//! down over the zero-filled end of the one before. Strip first, then insert.

/// The biggest gap of zeros this writes between the file's end and the region (needed when
/// an executable's zero-filled memory reaches far beyond its file).
const MAX_PADDING: u64 = 16 << 20;
const PAGE: u64 = 0x1000;

const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;
const PT_LOAD: u32 = 1;
const PT_DYNAMIC: u32 = 2;
const PT_INTERP: u32 = 3;
const PT_PHDR: u32 = 6;
const PF_W: u32 = 2;
const PF_R: u32 = 4;
const DT_NULL: u64 = 0;
const DT_STRTAB: u64 = 5;
const DT_STRSZ: u64 = 10;
pub(super) const DT_RPATH: u64 = 15;
pub(super) const DT_RUNPATH: u64 = 29;
const SHT_STRTAB: u32 = 3;
const SHT_DYNAMIC: u32 = 6;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
const SHDR_SIZE: usize = 64;
const DYN_SIZE: usize = 16;

/// One program header, as in the file.
#[derive(Clone, Copy, Debug)]
struct Phdr {
    p_type: u32,
    p_flags: u32,
    p_offset: u64,
    p_vaddr: u64,
    p_paddr: u64,
    p_filesz: u64,
    p_memsz: u64,
    p_align: u64,
}

impl Phdr {
    fn read(bytes: &[u8], at: usize) -> Result<Phdr, String> {
        Ok(Phdr {
            p_type: u32_at(bytes, at)?,
            p_flags: u32_at(bytes, at + 4)?,
            p_offset: u64_at(bytes, at + 8)?,
            p_vaddr: u64_at(bytes, at + 16)?,
            p_paddr: u64_at(bytes, at + 24)?,
            p_filesz: u64_at(bytes, at + 32)?,
            p_memsz: u64_at(bytes, at + 40)?,
            p_align: u64_at(bytes, at + 48)?,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.p_type.to_le_bytes());
        out.extend_from_slice(&self.p_flags.to_le_bytes());
        for value in [
            self.p_offset,
            self.p_vaddr,
            self.p_paddr,
            self.p_filesz,
            self.p_memsz,
            self.p_align,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }

    /// Place this header's contents at `offset` in the file and `vaddr` in memory.
    fn moved_to(self, offset: u64, vaddr: u64, size: u64) -> Phdr {
        Phdr {
            p_offset: offset,
            p_vaddr: vaddr,
            p_paddr: vaddr,
            p_filesz: size,
            p_memsz: size,
            ..self
        }
    }
}

/// The existing search path entry of an object.
#[derive(Clone, Copy, Debug)]
pub(super) struct SearchEntry {
    pub(super) tag: u64,
    /// File offset of the dynamic entry (its tag is the first 8 bytes).
    pub(super) entry_at: usize,
    /// Length of its string, without the NUL.
    pub(super) len: usize,
}

/// The parts of an ELF object that giving it a search path touches, checked for bounds.
pub(super) struct Object<'a> {
    bytes: &'a [u8],
    phdrs: Vec<Phdr>,
    shoff: usize,
    shnum: usize,
    /// Dynamic entries before DT_NULL, as (tag, value).
    dyns: Vec<(u64, u64)>,
    strtab_vaddr: u64,
    strtab_offset: usize,
    strtab_size: usize,
    pub(super) search_entries: Vec<SearchEntry>,
}

impl<'a> Object<'a> {
    /// Parse `bytes`, refusing with the reason whatever this cannot change safely.
    pub(super) fn parse(bytes: &'a [u8]) -> Result<Object<'a>, String> {
        if !bytes.starts_with(b"\x7fELF") {
            return Err("not an ELF file (no \\x7fELF magic)".into());
        }
        if bytes.len() < EHDR_SIZE {
            return Err("truncated ELF header".into());
        }
        match bytes[4] {
            2 => {}
            1 => return Err("a 32-bit ELF object; only 64-bit objects are supported".into()),
            other => return Err(format!("unknown ELF class {other}")),
        }
        if bytes[5] != 1 {
            return Err("a big-endian ELF object; only little-endian objects are supported".into());
        }
        let e_type = u16_at(bytes, 16)?;
        if e_type != ET_EXEC && e_type != ET_DYN {
            return Err(format!(
                "ELF type {e_type} is neither an executable nor a shared library"
            ));
        }
        let machine = u16_at(bytes, 18)?;
        if machine != EM_X86_64 && machine != EM_AARCH64 {
            return Err(format!(
                "machine {machine} is neither x86_64 ({EM_X86_64}) nor aarch64 ({EM_AARCH64})"
            ));
        }
        let phoff = to_usize(u64_at(bytes, 32)?)?;
        let shoff = to_usize(u64_at(bytes, 40)?)?;
        let phentsize = usize::from(u16_at(bytes, 54)?);
        let phnum = usize::from(u16_at(bytes, 56)?);
        let shentsize = usize::from(u16_at(bytes, 58)?);
        let shnum = usize::from(u16_at(bytes, 60)?);
        if phnum == 0 || phentsize != PHDR_SIZE {
            return Err(format!(
                "unexpected program header table ({phnum} entries of {phentsize} bytes)"
            ));
        }
        if phnum >= 0xfffe {
            return Err("too many program headers to add one".into());
        }
        if shoff != 0 && (shnum == 0 || shentsize != SHDR_SIZE) {
            return Err("section headers in extended numbering or of an unexpected size".into());
        }
        if shoff
            .checked_add(shnum * SHDR_SIZE)
            .is_none_or(|end| end > bytes.len())
        {
            return Err("the section header table runs past the end of the file".into());
        }
        let phdrs = (0..phnum)
            .map(|i| Phdr::read(bytes, phoff + i * PHDR_SIZE))
            .collect::<Result<Vec<_>, _>>()?;

        let dynamic = phdrs
            .iter()
            .find(|p| p.p_type == PT_DYNAMIC)
            .ok_or("no PT_DYNAMIC segment: a static executable loads no libraries, so a search path means nothing to it")?;
        let dynamic_at = to_usize(dynamic.p_offset)?;
        let mut dyns = Vec::new();
        let mut search_at = Vec::new();
        let mut terminated = false;
        for i in 0..to_usize(dynamic.p_filesz)? / DYN_SIZE {
            let at = dynamic_at + i * DYN_SIZE;
            let (tag, value) = (u64_at(bytes, at)?, u64_at(bytes, at + 8)?);
            if tag == DT_NULL {
                terminated = true;
                break;
            }
            if tag == DT_RPATH || tag == DT_RUNPATH {
                search_at.push((tag, at, value));
            }
            dyns.push((tag, value));
        }
        if !terminated {
            return Err("the dynamic array has no DT_NULL".into());
        }
        let find = |wanted: u64, name: &str| {
            dyns.iter()
                .find(|(tag, _)| *tag == wanted)
                .map(|(_, value)| *value)
                .ok_or(format!("the dynamic array has no {name}"))
        };
        let strtab_vaddr = find(DT_STRTAB, "DT_STRTAB")?;
        let strtab_size = to_usize(find(DT_STRSZ, "DT_STRSZ")?)?;
        let strtab_offset = phdrs
            .iter()
            .find(|p| {
                p.p_type == PT_LOAD
                    && p.p_vaddr <= strtab_vaddr
                    && strtab_vaddr.saturating_add(strtab_size as u64)
                        <= p.p_vaddr.saturating_add(p.p_filesz)
            })
            .map(|p| strtab_vaddr - p.p_vaddr + p.p_offset)
            .ok_or("the dynamic string table (DT_STRTAB) is outside every loaded segment")?;
        let strtab_offset = to_usize(strtab_offset)?;
        let strtab = bytes
            .get(strtab_offset..strtab_offset + strtab_size)
            .ok_or("the dynamic string table runs past the end of the file")?;
        let search_entries = search_at
            .into_iter()
            .map(|(tag, entry_at, value)| {
                let start = to_usize(value)?;
                let len = strtab
                    .get(start..)
                    .and_then(|s| s.iter().position(|b| *b == 0))
                    .ok_or("a search path entry points outside the dynamic string table")?;
                Ok(SearchEntry { tag, entry_at, len })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Object {
            bytes,
            phdrs,
            shoff,
            shnum,
            dyns,
            strtab_vaddr,
            strtab_offset,
            strtab_size,
            search_entries,
        })
    }

    /// The file with a new region appended that holds a copy of the dynamic string table
    /// plus `new`, a dynamic array whose only search path entry is `new` (a DT_RPATH when
    /// `as_rpath`, else a DT_RUNPATH), and a program header table with a PT_LOAD for the
    /// region. Every byte of the original file stays where it was but the ELF header's
    /// program header fields and the .dynamic and .dynstr section headers.
    pub(super) fn with_search_path(&self, new: &str, as_rpath: bool) -> Result<Vec<u8>, String> {
        let loads: Vec<&Phdr> = self.phdrs.iter().filter(|p| p.p_type == PT_LOAD).collect();
        if loads.windows(2).any(|w| w[0].p_vaddr > w[1].p_vaddr) {
            return Err("its PT_LOAD segments are not sorted by address".into());
        }
        let align = loads.iter().map(|p| p.p_align).max().unwrap_or(0).max(PAGE);
        if !align.is_power_of_two() {
            return Err(format!(
                "segment alignment {align:#x} is not a power of two"
            ));
        }
        let memory_end = loads
            .iter()
            .map(|p| p.p_vaddr.checked_add(p.p_memsz))
            .try_fold(0u64, |end, segment| segment.map(|s| end.max(s)))
            .ok_or("a segment ends beyond the address space")?;
        let above = align_up(memory_end, align).ok_or("no address space left above")?;

        // The region's contents, at offsets from its start.
        let tag = if as_rpath { DT_RPATH } else { DT_RUNPATH };
        let kept: Vec<(u64, u64)> = self
            .dyns
            .iter()
            .copied()
            .filter(|(t, _)| *t != DT_RPATH && *t != DT_RUNPATH)
            .collect();
        // The program headers come first, as in the first segment of a linked file.
        let phdrs_size = ((self.phdrs.len() + 1) * PHDR_SIZE) as u64;
        let dynamic_at = phdrs_size;
        let dynamic_size = ((kept.len() + 2) * DYN_SIZE) as u64;
        let strtab_at = dynamic_at + dynamic_size;
        let strtab_size = self.strtab_size + new.len() + 1;
        let region_size = strtab_at + strtab_size as u64;

        // Where it goes: in the file after everything, in memory above every segment.
        let file_end = align_up(self.bytes.len() as u64, PAGE).ok_or("file too big")?;
        let loaded_by_kernel = self
            .phdrs
            .iter()
            .any(|p| p.p_type == PT_INTERP || p.p_type == PT_PHDR);
        let (offset, vaddr) = if loaded_by_kernel {
            let first = loads.first().ok_or("no PT_LOAD segment")?;
            let delta = first
                .p_vaddr
                .checked_sub(first.p_offset)
                .filter(|d| d % align == 0)
                .ok_or("its first segment's address is not congruent to its file offset")?;
            let offset = file_end.max(above.saturating_sub(delta));
            let offset = align_up(offset, PAGE).ok_or("file too big")?;
            if offset - file_end > MAX_PADDING {
                return Err(format!(
                    "its memory image reaches {:#x} bytes beyond its file; the new segment would need that much padding",
                    offset - file_end
                ));
            }
            (
                offset,
                offset
                    .checked_add(delta)
                    .ok_or("no address space left above")?,
            )
        } else {
            let vaddr = above
                .checked_add(file_end % align)
                .ok_or("no address space left above")?;
            (file_end, vaddr)
        };
        if vaddr.checked_add(region_size).is_none() {
            return Err("no address space left above its segments".into());
        }

        let mut out = Vec::with_capacity((offset + region_size) as usize);
        out.extend_from_slice(self.bytes);
        out.resize(offset as usize, 0);
        let last_load = self
            .phdrs
            .iter()
            .rposition(|p| p.p_type == PT_LOAD)
            .ok_or("no PT_LOAD segment")?;
        for (i, phdr) in self.phdrs.iter().enumerate() {
            let phdr = match phdr.p_type {
                PT_PHDR => phdr.moved_to(offset, vaddr, phdrs_size),
                PT_DYNAMIC => phdr.moved_to(offset + dynamic_at, vaddr + dynamic_at, dynamic_size),
                _ => *phdr,
            };
            phdr.write(&mut out);
            if i == last_load {
                Phdr {
                    p_type: PT_LOAD,
                    p_flags: PF_R | PF_W,
                    p_offset: offset,
                    p_vaddr: vaddr,
                    p_paddr: vaddr,
                    p_filesz: region_size,
                    p_memsz: region_size,
                    p_align: align,
                }
                .write(&mut out);
            }
        }
        let entries = kept
            .iter()
            .map(|&(t, value)| match t {
                DT_STRTAB => (t, vaddr + strtab_at),
                DT_STRSZ => (t, strtab_size as u64),
                _ => (t, value),
            })
            .chain([(tag, self.strtab_size as u64), (DT_NULL, 0)]);
        for (t, value) in entries {
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(
            &self.bytes[self.strtab_offset..self.strtab_offset + self.strtab_size],
        );
        out.extend_from_slice(new.as_bytes());
        out.push(0);
        debug_assert_eq!(out.len() as u64, offset + region_size);

        // The ELF header's program header table, and the section headers that name what moved.
        put_u64(&mut out, 32, offset);
        put_u16(&mut out, 56, (self.phdrs.len() + 1) as u16);
        for i in 0..self.shnum {
            let at = self.shoff + i * SHDR_SIZE;
            let sh_type = u32_at(&out, at + 4)?;
            let sh_addr = u64_at(&out, at + 16)?;
            let moved = match sh_type {
                SHT_DYNAMIC => Some((dynamic_at, dynamic_size)),
                SHT_STRTAB if sh_addr != 0 && sh_addr == self.strtab_vaddr => {
                    Some((strtab_at, strtab_size as u64))
                }
                _ => None,
            };
            if let Some((start, size)) = moved {
                put_u64(&mut out, at + 16, vaddr + start);
                put_u64(&mut out, at + 24, offset + start);
                put_u64(&mut out, at + 32, size);
            }
        }
        Ok(out)
    }
}

fn align_up(value: u64, align: u64) -> Option<u64> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

fn to_usize(value: u64) -> Result<usize, String> {
    usize::try_from(value).map_err(|_| format!("offset {value:#x} does not fit in memory"))
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], String> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| {
            format!("truncated: {N} bytes at offset {at:#x} are past the end of the file")
        })
}

fn u16_at(bytes: &[u8], at: usize) -> Result<u16, String> {
    field(bytes, at).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], at: usize) -> Result<u32, String> {
    field(bytes, at).map(u32::from_le_bytes)
}

pub(super) fn u64_at(bytes: &[u8], at: usize) -> Result<u64, String> {
    field(bytes, at).map(u64::from_le_bytes)
}

fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

pub(super) fn put_u64(bytes: &mut [u8], at: usize, value: u64) {
    bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
}
