//! `--check-binaries`: find the ELF executables and shared objects in an
//! image's layers and check their machine matches the platform (an "arm64"
//! image full of x86-64 binaries is the bug users find too late).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crate::platform::Platform;

/// ELF `e_machine` values (from the ELF specification / elf.h).
pub fn expected_machine(platform: &Platform) -> Option<u16> {
    Some(match platform.arch.as_str() {
        "amd64" => 62,
        "arm64" => 183,
        "arm" => 40,
        "386" => 3,
        "ppc64le" => 21,
        "s390x" => 22,
        "riscv64" => 243,
        "mips64le" | "mips64" => 8,
        "loong64" => 258,
        _ => return None,
    })
}

pub fn machine_name(m: u16) -> String {
    match m {
        3 => "Intel 80386".into(),
        8 => "MIPS".into(),
        21 => "PowerPC64".into(),
        22 => "IBM S/390".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        258 => "LoongArch".into(),
        other => format!("machine {other}"),
    }
}

/// The `e_machine` of an executable or shared object, None for anything else
/// (relocatable objects, core files, non-ELF).
pub fn elf_machine(header: &[u8]) -> Option<u16> {
    if header.len() < 20 || &header[..4] != b"\x7fELF" {
        return None;
    }
    let le = match header[5] {
        1 => true,
        2 => false,
        _ => return None,
    };
    let rd = |i: usize| {
        if le {
            u16::from_le_bytes([header[i], header[i + 1]])
        } else {
            u16::from_be_bytes([header[i], header[i + 1]])
        }
    };
    let e_type = rd(16);
    if e_type != 2 && e_type != 3 {
        return None;
    }
    Some(rd(18))
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct ElfScan {
    /// ELF executables and shared objects seen.
    pub checked: usize,
    /// (path, machine) of the first mismatches, at most 10.
    pub mismatches: Vec<(String, u16)>,
    pub mismatch_count: usize,
}

impl ElfScan {
    pub fn merge(&mut self, other: ElfScan) {
        self.checked += other.checked;
        self.mismatch_count += other.mismatch_count;
        for m in other.mismatches {
            if self.mismatches.len() < 10 {
                self.mismatches.push(m);
            }
        }
    }
}

/// Scan one layer (tar, gzip'd tar or zstd'd tar, told apart by magic bytes).
pub fn scan_layer(path: &Path, expected: u16) -> std::io::Result<ElfScan> {
    let mut f = BufReader::new(File::open(path)?);
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic)?;
    let f = BufReader::new(File::open(path)?);
    let reader: Box<dyn Read> = if n >= 2 && magic[..2] == [0x1f, 0x8b] {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if n == 4 && magic == [0x28, 0xb5, 0x2f, 0xfd] {
        Box::new(ruzstd::decoding::StreamingDecoder::new(f).map_err(|e| {
            std::io::Error::new(std::io::ErrorKind::InvalidData, format!("zstd: {e}"))
        })?)
    } else {
        Box::new(f)
    };
    scan_tar(reader, expected)
}

pub fn scan_tar<R: Read>(r: R, expected: u16) -> std::io::Result<ElfScan> {
    let mut scan = ElfScan::default();
    let mut archive = tar::Archive::new(r);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.header().entry_type() != tar::EntryType::Regular || entry.size() < 20 {
            continue;
        }
        let mut header = [0u8; 20];
        if entry.read_exact(&mut header).is_err() {
            continue;
        }
        let Some(machine) = elf_machine(&header) else {
            continue;
        };
        scan.checked += 1;
        if machine != expected {
            scan.mismatch_count += 1;
            if scan.mismatches.len() < 10 {
                let p = entry
                    .path()
                    .map(|p| format!("/{}", p.display().to_string().trim_start_matches("./")))
                    .unwrap_or_default();
                scan.mismatches.push((p, machine));
            }
        }
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf(machine: u16, e_type: u16) -> Vec<u8> {
        let mut h = vec![0x7f, b'E', b'L', b'F', 2, 1, 1, 0];
        h.extend([0u8; 8]);
        h.extend(e_type.to_le_bytes());
        h.extend(machine.to_le_bytes());
        h.extend([0u8; 40]);
        h
    }

    fn tar_of(files: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o755);
            h.set_cksum();
            b.append_data(&mut h, name, data.as_slice()).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn reads_elf_machine() {
        assert_eq!(elf_machine(&elf(183, 2)), Some(183));
        assert_eq!(elf_machine(&elf(62, 3)), Some(62));
        assert_eq!(
            elf_machine(&elf(62, 1)),
            None,
            "relocatable objects are not checked"
        );
        assert_eq!(elf_machine(b"#!/bin/sh\necho hello there"), None);
    }

    #[test]
    fn finds_the_foreign_binary_in_gzip_and_plain_layers() {
        let t = tar_of(&[
            ("bin/ok", elf(183, 2)),
            ("usr/lib/libok.so", elf(183, 3)),
            (
                "script.sh",
                b"#!/bin/sh\necho this is not an ELF file".to_vec(),
            ),
            ("usr/local/bin/x86tool", elf(62, 2)),
        ]);
        let s = scan_tar(t.as_slice(), 183).unwrap();
        assert_eq!(s.checked, 3);
        assert_eq!(
            s.mismatches,
            vec![("/usr/local/bin/x86tool".to_string(), 62)]
        );

        let d = tempfile::tempdir().unwrap();
        let gz = d.path().join("layer.tar.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        std::io::Write::write_all(&mut enc, &t).unwrap();
        enc.finish().unwrap();
        assert_eq!(scan_layer(&gz, 183).unwrap(), s);
        let plain = d.path().join("layer.tar");
        std::fs::write(&plain, &t).unwrap();
        assert_eq!(scan_layer(&plain, 183).unwrap(), s);
    }

    #[test]
    fn machines_of_platforms() {
        assert_eq!(expected_machine(&"linux/arm/v7".parse().unwrap()), Some(40));
        assert_eq!(machine_name(62), "x86-64");
    }
}
