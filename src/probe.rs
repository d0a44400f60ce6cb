//! The programs that tell whether a builder can run another system's code: a tiny static
//! executable per Nix system, which only exits with status [`STATUS`]. A step that builds for a system
//! other than the builder's own writes the one for its target into its scratch directory and runs
//! it first (`runs_here` in `step/store.rs`): the kernel either runs it (natively, or through a binfmt_misc emulator such as
//! qemu-user-static on the builder's host) or refuses it (`Exec format error`), and the step
//! then lets Nix only substitute and use remote builders, and says so when that is not enough.
//!
//! Each probe is one ELF header, one loadable segment and three instructions (`exit(73)`),
//! written here rather than shipped as a binary so that what runs is readable. The status is
//! not 0 because a shell (and glibc's `execvp`) runs a file the kernel refuses as a shell
//! script: whatever that does, it does not exit with 73.

/// The status a probe exits with when it ran.
pub const STATUS: u8 = 73;

/// The probe executable for Nix system `system`, if one is known.
pub fn executable(system: &str) -> Option<Vec<u8>> {
    let (machine, code): (u16, &[u8]) = match system {
        // mov edi, 73; mov eax, 60 (exit); syscall
        "x86_64-linux" => (0x3e, &[0xbf, STATUS, 0, 0, 0, 0xb8, 60, 0, 0, 0, 0x0f, 0x05]),
        // movz x0, #73 (73 << 5 | 0 in the low half-word: 0x0920); movz x8, #93 (exit); svc #0
        "aarch64-linux" => (0xb7, &[0x20, 0x09, 0x80, 0xd2, 0xa8, 0x0b, 0x80, 0xd2, 0x01, 0x00, 0x00, 0xd4]),
        _ => return None,
    };
    Some(elf64(machine, code))
}

/// The file name of `system`'s probe in a step's scratch directory.
pub fn file_name(system: &str) -> String {
    format!("probe-{system}")
}

/// A little-endian ELF64 executable whose one segment, loaded at `BASE`, holds the headers and
/// `code`, which starts right after them.
fn elf64(machine: u16, code: &[u8]) -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const EHDR: u16 = 64;
    const PHDR: u16 = 56;
    let headers = u64::from(EHDR + PHDR);
    let size = headers + code.len() as u64;
    let mut f = Vec::with_capacity(size as usize);
    // e_ident: magic, 64-bit, little-endian, version 1, System V ABI, padding.
    f.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    f.extend_from_slice(&2u16.to_le_bytes()); // e_type: ET_EXEC
    f.extend_from_slice(&machine.to_le_bytes());
    f.extend_from_slice(&1u32.to_le_bytes()); // e_version
    f.extend_from_slice(&(BASE + headers).to_le_bytes()); // e_entry
    f.extend_from_slice(&u64::from(EHDR).to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes()); // e_flags
    f.extend_from_slice(&EHDR.to_le_bytes());
    f.extend_from_slice(&PHDR.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // e_shentsize, e_shnum, e_shstrndx
    f.extend_from_slice(&1u32.to_le_bytes()); // p_type: PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // p_flags: R + X
    f.extend_from_slice(&0u64.to_le_bytes()); // p_offset
    f.extend_from_slice(&BASE.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&BASE.to_le_bytes()); // p_paddr
    f.extend_from_slice(&size.to_le_bytes()); // p_filesz
    f.extend_from_slice(&size.to_le_bytes()); // p_memsz
    f.extend_from_slice(&0x1000u64.to_le_bytes()); // p_align
    f.extend_from_slice(code);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_system_has_a_probe_and_others_none() {
        for system in ["x86_64-linux", "aarch64-linux"] {
            let elf = executable(system).unwrap();
            assert_eq!(&elf[..4], b"\x7fELF");
            assert_eq!(elf.len(), 64 + 56 + 12);
        }
        assert!(executable("riscv64-linux").is_none());
        assert_eq!(u16::from_le_bytes([executable("aarch64-linux").unwrap()[18], 0]), 0xb7);
    }

    #[test]
    fn the_native_probe_runs_and_exits_with_its_status() {
        use std::os::unix::fs::PermissionsExt;
        let system = match std::env::consts::ARCH {
            "x86_64" => "x86_64-linux",
            "aarch64" => "aarch64-linux",
            _ => return,
        };
        let dir = std::env::temp_dir().join(format!("nixfront-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(file_name(system));
        std::fs::write(&path, executable(system).unwrap()).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        let status = std::process::Command::new(&path).status().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(status.code(), Some(i32::from(STATUS)), "{status}");
    }
}
