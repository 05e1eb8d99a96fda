//! Parser throughput and memory on a synthetic rawjson stream.
//! `cargo bench --bench progress` (MB = 10^6 bytes; MBX_BENCH_MB to change the size).
//!
//! The stream repeats real objects from tests/data/rawjson (two uncached builds
//! and a failing one) plus log-heavy objects, so the vertices stay as many as
//! in a real build while updates and logs keep flowing: memory must not grow
//! with the length. Peak RSS is read from /proc/self/status before and after.

use std::io::Read;
use std::time::Instant;

use mbx::build::progress::Progress;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// An endless reader repeating `unit`, `total` bytes in all.
struct Repeat {
    unit: Vec<u8>,
    pos: usize,
    left: usize,
}

impl Read for Repeat {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let n = buf.len().min(self.left).min(self.unit.len() - self.pos);
        buf[..n].copy_from_slice(&self.unit[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.unit.len();
        self.left -= n;
        Ok(n)
    }
}

fn main() {
    let mb: usize = std::env::var("MBX_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rawjson");
    let mut unit = Vec::new();
    for f in [
        "hello-amd64-nocache.json",
        "hello-arm64-nocache.json",
        "fail-arm64.json",
    ] {
        unit.extend(std::fs::read(root.join(f)).expect("fixture"));
    }
    // Log-heavy objects, as a chatty RUN step produces.
    let line = "compiling module with a fairly long log line, as compilers print it\n".repeat(40);
    let data = base64_encode(line.as_bytes());
    for i in 0..50 {
        unit.extend(format!("{{\"logs\":[{{\"vertex\":\"sha256:log{i}\",\"stream\":1,\"data\":\"{data}\",\"timestamp\":\"2026-11-23T18:28:12.1Z\"}}]}}\n").as_bytes());
    }
    let total = mb * 1_000_000;
    for (label, size) in [("small (10 MB)", total / 10), ("full", total)] {
        let before = vm_hwm_kib();
        let t = Instant::now();
        let mut p = Progress::new();
        p.read_from(Repeat {
            unit: unit.clone(),
            pos: 0,
            left: size,
        })
        .unwrap();
        let secs = t.elapsed().as_secs_f64();
        let steps = p.steps().len();
        println!(
            "{label}: {:.0} MB in {:.2} s = {:.0} MB/s; {} steps; peak RSS {} KiB (was {} KiB)",
            size as f64 / 1e6,
            secs,
            size as f64 / 1e6 / secs,
            steps,
            vm_hwm_kib(),
            before
        );
    }
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(b)
}
