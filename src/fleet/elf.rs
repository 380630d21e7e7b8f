//! Which CPU a kiln binary is built for, read from its ELF header, and the node architecture names
//! (`uname -m`) it is compared with.
//!
//! The file name of a binary says nothing reliable; the ELF header's class, data encoding and
//! `e_machine` (System V ABI, "ELF Header") say what the kernel will load it for.

use std::io::Read;
use std::path::Path;

/// Bytes of the ELF header that say what a file is: `e_ident` (16), `e_type` (2), `e_machine` (2).
pub const HEADER_LEN: usize = 20;

const EM_386: u16 = 3;
const EM_PPC64: u16 = 21;
const EM_S390: u16 = 22;
const EM_X86_64: u16 = 62;
const EM_AARCH64: u16 = 183;
const EM_RISCV: u16 = 243;

const ET_EXEC: u16 = 2;
const ET_DYN: u16 = 3;

/// Why a file is not a binary kiln can push.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ElfError {
    #[error("not an ELF file (it starts with {0})")]
    NotElf(String),
    #[error("shorter than an ELF header ({0} bytes)")]
    Short(usize),
    #[error("an ELF file but not an executable (e_type {0})")]
    NotExecutable(u16),
    #[error("an ELF executable for machine {machine} ({class}-bit), which kiln does not know")]
    UnknownMachine { machine: u16, class: u8 },
    #[error("an ELF header with a bad {field} byte ({value})")]
    BadIdent { field: &'static str, value: u8 },
}

/// The architecture, in `uname -m`'s words (`x86_64`, `aarch64`), of the
/// ELF executable whose first bytes are `header`.
pub fn arch_of(header: &[u8]) -> Result<&'static str, ElfError> {
    if header.len() < 4 || &header[..4] != b"\x7fELF" {
        let shown: String = header.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(ElfError::NotElf(if shown.is_empty() { "nothing".into() } else { format!("0x{shown}") }));
    }
    if header.len() < HEADER_LEN {
        return Err(ElfError::Short(header.len()));
    }
    let class = match header[4] {
        1 => 32,
        2 => 64,
        v => return Err(ElfError::BadIdent { field: "EI_CLASS", value: v }),
    };
    let little = match header[5] {
        1 => true,
        2 => false,
        v => return Err(ElfError::BadIdent { field: "EI_DATA", value: v }),
    };
    let half = |at: usize| {
        let b = [header[at], header[at + 1]];
        if little {
            u16::from_le_bytes(b)
        } else {
            u16::from_be_bytes(b)
        }
    };
    let e_type = half(16);
    if e_type != ET_EXEC && e_type != ET_DYN {
        return Err(ElfError::NotExecutable(e_type));
    }
    let machine = half(18);
    let arch = match (machine, class, little) {
        (EM_X86_64, 64, true) => "x86_64",
        (EM_AARCH64, 64, true) => "aarch64",
        (EM_AARCH64, 64, false) => "aarch64_be",
        (EM_386, 32, true) => "i686",
        (EM_PPC64, 64, true) => "ppc64le",
        (EM_PPC64, 64, false) => "ppc64",
        (EM_S390, 64, false) => "s390x",
        (EM_RISCV, 64, true) => "riscv64",
        _ => return Err(ElfError::UnknownMachine { machine, class }),
    };
    Ok(arch)
}

/// Reads the header of the file at `path` and returns its architecture.
pub fn file_arch(path: &Path) -> Result<&'static str, FileArchError> {
    let mut header = Vec::with_capacity(HEADER_LEN);
    crate::input::open_regular(path, crate::input::Input::Artifact)
        .and_then(|f| f.take(HEADER_LEN as u64).read_to_end(&mut header))
        .map_err(FileArchError::Read)?;
    arch_of(&header).map_err(FileArchError::Elf)
}

#[derive(Debug, thiserror::Error)]
pub enum FileArchError {
    #[error("read its ELF header")]
    Read(#[source] std::io::Error),
    #[error(transparent)]
    Elf(ElfError),
}

/// A node's `uname -m` in the words `arch_of` uses: Linux says `aarch64`
/// and `x86_64`, other systems' names for the same CPUs are mapped to them,
/// and every 32-bit x86 name runs an `i686` binary.
pub fn node_arch(uname_m: &str) -> String {
    match uname_m.trim() {
        "arm64" => "aarch64".into(),
        "amd64" => "x86_64".into(),
        "i386" | "i486" | "i586" | "i686" => "i686".into(),
        other => other.to_string(),
    }
}

/// The Rust target that builds a kiln for `arch` (what `cargo xtask dist
/// --target` and `rustup target add` take).
pub fn rust_target(arch: &str) -> String {
    match arch {
        "ppc64le" => "powerpc64le-unknown-linux-gnu".into(),
        "ppc64" => "powerpc64-unknown-linux-gnu".into(),
        "riscv64" => "riscv64gc-unknown-linux-gnu".into(),
        other => format!("{other}-unknown-linux-gnu"),
    }
}

/// An ELF header written from the System V ABI's layout: `e_ident`
/// (magic, class, data, version 1, OS ABI 0, padding), `e_type`,
/// `e_machine`, `e_version` 1, then the 64-bit entry/phoff/shoff words.
#[cfg(test)]
pub(crate) fn test_header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
    let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
    h.extend_from_slice(&[0; 8]);
    let half = |v: u16| if data == 1 { v.to_le_bytes() } else { v.to_be_bytes() };
    h.extend_from_slice(&half(e_type));
    h.extend_from_slice(&half(machine));
    h.extend_from_slice(&if data == 1 { 1u32.to_le_bytes() } else { 1u32.to_be_bytes() });
    h.extend_from_slice(&[0; 24]);
    h
}

/// The header of a 64-bit little-endian PIE for `arch` (`x86_64`, `aarch64`, `riscv64`).
#[cfg(test)]
pub(crate) fn test_pie(arch: &str) -> Vec<u8> {
    let machine = match arch {
        "x86_64" => EM_X86_64,
        "aarch64" => EM_AARCH64,
        "riscv64" => EM_RISCV,
        other => panic!("no test header for {other}"),
    };
    test_header(2, 1, ET_DYN, machine)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(class: u8, data: u8, e_type: u16, machine: u16) -> Vec<u8> {
        test_header(class, data, e_type, machine)
    }

    #[test]
    fn a_hand_built_aarch64_header_is_aarch64() {
        // ELFCLASS64, ELFDATA2LSB, ET_DYN (a PIE, as rustc links), EM_AARCH64.
        let h = header(2, 1, 3, 183);
        assert_eq!(&h[..4], b"\x7fELF");
        assert_eq!(h[18..20], [0xb7, 0x00], "EM_AARCH64 is 183 = 0xb7, little-endian");
        assert_eq!(arch_of(&h), Ok("aarch64"));
        assert_eq!(arch_of(&header(2, 1, 2, 183)), Ok("aarch64"), "ET_EXEC (static) too");
    }

    #[test]
    fn the_running_test_binary_is_this_machine() {
        let exe = std::env::current_exe().expect("current exe");
        assert_eq!(file_arch(&exe).expect("arch"), std::env::consts::ARCH);
    }

    #[test]
    fn other_machines_and_byte_orders() {
        assert_eq!(arch_of(&header(2, 1, 3, 62)), Ok("x86_64"));
        assert_eq!(arch_of(&header(1, 1, 2, 3)), Ok("i686"));
        assert_eq!(arch_of(&header(2, 1, 2, 21)), Ok("ppc64le"));
        assert_eq!(arch_of(&header(2, 2, 2, 21)), Ok("ppc64"));
        assert_eq!(arch_of(&header(2, 2, 2, 22)), Ok("s390x"));
        // The machine field is read in the file's byte order: 183 big-endian
        // is 0x00b7, which read little-endian would be 46848.
        assert_eq!(arch_of(&header(2, 2, 3, 183)), Ok("aarch64_be"));
        // A 32-bit Arm binary is not an aarch64 one.
        assert_eq!(arch_of(&header(1, 1, 2, 40)), Err(ElfError::UnknownMachine { machine: 40, class: 32 }));
        assert_eq!(arch_of(&header(1, 1, 2, 62)), Err(ElfError::UnknownMachine { machine: 62, class: 32 }));
    }

    #[test]
    fn what_is_not_an_executable_is_refused() {
        assert!(matches!(arch_of(b"#!/bin/sh\necho kiln\n"), Err(ElfError::NotElf(s)) if s == "0x23212f62"));
        assert_eq!(arch_of(b""), Err(ElfError::NotElf("nothing".into())));
        assert_eq!(arch_of(&header(2, 1, 3, 183)[..12]), Err(ElfError::Short(12)));
        // ET_REL: an object file, not something to run.
        assert_eq!(arch_of(&header(2, 1, 1, 183)), Err(ElfError::NotExecutable(1)));
        assert_eq!(arch_of(&header(3, 1, 3, 183)), Err(ElfError::BadIdent { field: "EI_CLASS", value: 3 }));
        assert_eq!(arch_of(&header(2, 0, 3, 183)), Err(ElfError::BadIdent { field: "EI_DATA", value: 0 }));
    }

    #[test]
    fn node_names_map_to_elf_names() {
        assert_eq!(node_arch("aarch64\n"), "aarch64");
        assert_eq!(node_arch("arm64"), "aarch64");
        assert_eq!(node_arch("amd64"), "x86_64");
        assert_eq!(node_arch("i586"), "i686");
        assert_eq!(node_arch("riscv64"), "riscv64");
        assert_eq!(rust_target("aarch64"), "aarch64-unknown-linux-gnu");
        assert_eq!(rust_target("ppc64le"), "powerpc64le-unknown-linux-gnu");
    }
}
