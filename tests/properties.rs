//! Property tests of every parser of outside input: whatever the bytes, mbx
//! answers (a value or an error), never panics, and keeps what it holds
//! bounded; where mbx writes what it reads (the run record), write → read
//! gives the same value back.
//!
//! Inputs are arbitrary bytes and structure-aware mutations of the real
//! captures in tests/data/ (rawjson streams, run records, cache API answers).
//! `cargo test` runs `MBX_FUZZ_CASES` cases per property (default 256);
//! `scripts/fuzz` runs a million or more per parser and prints the figures.
//! A crash found is fixed in src/ and kept below as a named regression test.

/// Bytes allocated by the current thread: the memory-bound tests measure
/// their own thread only, so tests running beside them do not count.
mod alloc_meter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    struct Meter;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn add(n: isize) {
        let _ = LIVE.try_with(|l| {
            let v = l.get() + n;
            l.set(v);
            let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
        });
    }

    unsafe impl GlobalAlloc for Meter {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            add(l.size() as isize);
            unsafe { System.alloc(l) }
        }
        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            add(-(l.size() as isize));
            unsafe { System.dealloc(p, l) }
        }
        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            add(new as isize - l.size() as isize);
            unsafe { System.realloc(p, l, new) }
        }
    }

    #[global_allocator]
    static METER: Meter = Meter;

    /// The most bytes `f` held at once above what the thread held before.
    pub fn peak_during(f: impl FnOnce()) -> usize {
        let base = LIVE.with(Cell::get);
        PEAK.with(|p| p.set(base));
        f();
        (PEAK.with(Cell::get) - base).max(0) as usize
    }
}

use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::Config;

use mbx::build::progress::{parse_rfc3339, Progress};
use mbx::gha_cache::{self, keys, prune, Entry};
use mbx::inputs::{self, ListOpts};
use mbx::platform::Platform;
use mbx::run::RunRecord;
use mbx::setup::qemu::{self, Handler};
use mbx::verify::elf;
use mbx::verify::layout::Layout;

fn config() -> Config {
    let cases = std::env::var("MBX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    Config {
        cases,
        // A failure is shrunk, reported, and then kept as a named test here.
        failure_persistence: None,
        max_global_rejects: cases,
        max_shrink_iters: 4096,
        ..Config::default()
    }
}

fn data(path: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(path),
    )
    .unwrap_or_else(|e| panic!("tests/data/{path}: {e}"))
}

const RAWJSON: &[&str] = &[
    "rawjson/fail-arm64.json",
    "rawjson/gha-v2-429.json",
    "rawjson/gha-v2-503.json",
    "rawjson/gha-v2-full.json",
    "rawjson/hello-amd64-nocache.json",
    "rawjson/hello-arm64-cached.json",
    "rawjson/hello-arm64-nocache.json",
];

const RECORDS: &[&str] = &[
    "report-arm64-fails.json",
    "report-hello-cold.json",
    "report-hello-registry.json",
    "report-hello-warm.json",
];

// ---------------------------------------------------------------- mutations

/// One edit of a byte string: the kinds of damage a cut upload, a flipped
/// bit or a hostile writer does, plus JSON's own punctuation.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let token = prop_oneof![
        prop::collection::vec(any::<u8>(), 1..8),
        prop::sample::select(vec![
            &b"{"[..],
            b"}",
            b"[",
            b"]",
            b"\"",
            b"\\",
            b",",
            b":",
            b"\n",
            b"null",
            b"-1",
            b"1e999",
            b"18446744073709551616",
            b"\\u0000",
            b"\xff\xfe",
            b"\xe2\x80",
        ])
        .prop_map(<[u8]>::to_vec),
    ];
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Flip(i, b)),
        (any::<usize>(), token).prop_map(|(i, t)| Edit::Insert(i, t)),
        (any::<usize>(), 1usize..64).prop_map(|(i, n)| Edit::Delete(i, n)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..256).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(mut b: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let at = |i: usize, len: usize| if len == 0 { 0 } else { i % (len + 1) };
        match e {
            Edit::Flip(i, x) if !b.is_empty() => {
                let i = i % b.len();
                b[i] ^= x | 1;
            }
            Edit::Flip(..) => {}
            Edit::Insert(i, t) => {
                let i = at(*i, b.len());
                b.splice(i..i, t.iter().copied());
            }
            Edit::Delete(i, n) => {
                let i = at(*i, b.len());
                let end = (i + n).min(b.len());
                b.drain(i..end);
            }
            Edit::Truncate(i) => b.truncate(at(*i, b.len())),
            Edit::Duplicate(i, n) => {
                let i = at(*i, b.len());
                let end = (i + n).min(b.len());
                let copy = b[i..end].to_vec();
                b.splice(end..end, copy);
            }
        }
    }
    b
}

/// A seed (one of `seeds`) with 1–8 byte-level edits.
fn mutated(seeds: Vec<Vec<u8>>) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(seeds),
        prop::collection::vec(edit(), 1..8),
    )
        .prop_map(|(s, e)| apply(s, &e))
}

/// A slice of up to `max` bytes of a seed, with edits: small inputs reach
/// more of a parser's states per second than whole captures do.
fn window(seeds: Vec<Vec<u8>>, max: usize) -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(seeds),
        any::<usize>(),
        1..max,
        prop::collection::vec(edit(), 0..8),
    )
        .prop_map(|(s, at, len, e)| {
            let at = at % s.len().max(1);
            let end = (at + len).min(s.len());
            apply(s[at..end].to_vec(), &e)
        })
}

/// A JSON value of any shape (what a hostile writer may put in a field).
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![
            ".{0,40}",
            Just(String::new()),
            Just("linux/arm64".to_string()),
            Just("sha256:".to_string()),
            Just("[1/1] RUN x".to_string()),
            Just("../../x".to_string()),
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,12}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// One edit of a JSON document at a place chosen by `pick`: replace a value,
/// drop a key, empty or repeat an array.
#[derive(Debug, Clone)]
enum JsonEdit {
    Replace(usize, serde_json::Value),
    Remove(usize),
    RepeatFirst(usize),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        4 => (any::<usize>(), json_value()).prop_map(|(i, v)| JsonEdit::Replace(i, v)),
        1 => any::<usize>().prop_map(JsonEdit::Remove),
        1 => any::<usize>().prop_map(JsonEdit::RepeatFirst),
    ]
}

fn count_nodes(v: &serde_json::Value) -> usize {
    1 + match v {
        serde_json::Value::Array(a) => a.iter().map(count_nodes).sum(),
        serde_json::Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Apply `e` at the `n`-th node (pre-order) of `v`.
fn json_apply(v: &mut serde_json::Value, e: &JsonEdit) {
    let total = count_nodes(v);
    let target = match e {
        JsonEdit::Replace(i, _) | JsonEdit::Remove(i) | JsonEdit::RepeatFirst(i) => i % total,
    };
    let mut n = 0;
    visit(v, target, &mut n, e);
}

fn visit(v: &mut serde_json::Value, target: usize, n: &mut usize, e: &JsonEdit) -> bool {
    use serde_json::Value;
    if *n == target {
        match e {
            JsonEdit::Replace(_, new) => *v = new.clone(),
            JsonEdit::Remove(_) => match v {
                Value::Object(o) => {
                    let k = o.keys().next().cloned();
                    if let Some(k) = k {
                        o.remove(&k);
                    }
                }
                Value::Array(a) => a.clear(),
                _ => *v = Value::Null,
            },
            JsonEdit::RepeatFirst(_) => {
                if let Value::Array(a) = v {
                    if let Some(f) = a.first().cloned() {
                        a.extend(std::iter::repeat_n(f, 3));
                    }
                }
            }
        }
        return true;
    }
    *n += 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|c| visit(c, target, n, e)),
        Value::Object(o) => o.values_mut().any(|c| visit(c, target, n, e)),
        _ => false,
    }
}

fn json_mutated(seeds: Vec<serde_json::Value>) -> impl Strategy<Value = serde_json::Value> {
    (
        prop::sample::select(seeds),
        prop::collection::vec(json_edit(), 1..6),
    )
        .prop_map(|(mut v, edits)| {
            for e in &edits {
                json_apply(&mut v, e);
            }
            v
        })
}

fn json_seeds(paths: &[&str]) -> Vec<serde_json::Value> {
    paths
        .iter()
        .map(|p| serde_json::from_slice(&data(p)).unwrap())
        .collect()
}

/// An empty directory for one case: one per test thread, emptied each
/// time (a new directory per case would cost more than most parsers).
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn path(&self) -> &Path {
        &self.0
    }
}

fn scratch() -> Scratch {
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().unwrap();
    }
    DIR.with(|d| {
        for e in std::fs::read_dir(d.path()).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                std::fs::remove_dir_all(&p).unwrap();
            } else {
                std::fs::remove_file(&p).unwrap();
            }
        }
        Scratch(d.path().to_path_buf())
    })
}

fn seeds(paths: &[&str]) -> Vec<Vec<u8>> {
    paths.iter().map(|p| data(p)).collect()
}

// ------------------------------------------------------- rawjson progress

fn progress_of(bytes: &[u8], chunk: usize) -> Progress {
    let mut p = Progress::new();
    for c in bytes.chunks(chunk.max(1)) {
        p.feed(c);
    }
    p.finish();
    // Everything a caller reads must be computable.
    let _ = p.steps();
    let _ = p.snapshot();
    let _ = p.text_tail();
    p
}

/// What the report shows of a stream, independent of how it was chunked.
fn progress_view(p: &Progress) -> String {
    format!(
        "{:?}|{:?}|{:?}|{}",
        p.steps()
            .iter()
            .map(|s| (&s.name, s.cached, &s.error, &s.log_tail))
            .collect::<Vec<_>>(),
        p.text_tail(),
        p.warnings,
        p.malformed
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn rawjson_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..512) {
        progress_of(&bytes, chunk);
    }

    #[test]
    fn rawjson_mutated_captures(bytes in mutated(seeds(RAWJSON)), chunk in 1usize..4096) {
        let p = progress_of(&bytes, chunk);
        // The cache failure read from the steps (gha-v2-*.json carry one).
        let gha = mbx::plan::Cache::Gha { prefix: "app".into() };
        let _ = mbx::build::cache_issue::find(&gha, &p.steps());
        for s in p.steps() {
            prop_assert!(s.log_tail.len() <= 41);
            prop_assert!(s.log_tail.iter().all(|l| l.len() <= 1024 + '…'.len_utf8()));
        }
        prop_assert!(p.text_tail().len() <= 40);
    }

    #[test]
    fn rawjson_windows(bytes in window(seeds(RAWJSON), 4096), chunk in 1usize..512) {
        let p = progress_of(&bytes, chunk);
        prop_assert!(p.text_tail().iter().all(|l| l.len() <= 4096));
    }

    #[test]
    fn rawjson_chunking_does_not_change_the_result(bytes in window(seeds(RAWJSON), 4096), chunk in 1usize..64) {
        let whole = progress_of(&bytes, bytes.len().max(1));
        let pieces = progress_of(&bytes, chunk);
        prop_assert_eq!(progress_view(&whole), progress_view(&pieces));
    }

    #[test]
    fn rawjson_structured_frames(status in json_mutated(rawjson_frames())) {
        let mut bytes = serde_json::to_vec(&status).unwrap();
        bytes.push(b'\n');
        progress_of(&bytes, 97);
    }

    #[test]
    fn rfc3339_timestamps(s in prop_oneof![
        ".{0,40}",
        (0i64..10_000, 0u32..100, 0u32..100, 0u32..100, 0u32..100, 0u32..100, "[0-9]{0,12}", "(Z|z|[+-][0-9]{2}:[0-9]{2}|.{0,3})")
            .prop_map(|(y, mo, d, h, mi, s, f, z)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{f}{z}")),
    ]) {
        if let Some(t) = parse_rfc3339(&s) {
            prop_assert!(t.is_finite(), "{s} → {t}");
        }
    }
}

/// Each object of the captured streams, as JSON values to mutate.
fn rawjson_frames() -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    for f in RAWJSON {
        let bytes = data(f);
        let mut de = serde_json::Deserializer::from_slice(&bytes).into_iter::<serde_json::Value>();
        while let Some(Ok(v)) = de.next() {
            out.push(v);
            if out.len() % 8 == 0 {
                break;
            }
        }
    }
    out
}

// ------------------------------------------------------------- binfmt_misc

fn binfmt_entry() -> impl Strategy<Value = String> {
    let hex = |n: usize| {
        prop::collection::vec(any::<u8>(), 0..n)
            .prop_map(|b| b.iter().map(|x| format!("{x:02x}")).collect::<String>())
    };
    (
        any::<bool>(),
        ".{0,30}",
        "[A-Z]{0,4}",
        prop_oneof![any::<usize>().prop_map(|n| n.to_string()), ".{0,6}"],
        hex(40),
        hex(40),
    )
        .prop_map(|(en, interp, flags, off, magic, mask)| {
            format!(
                "{}\ninterpreter {interp}\nflags: {flags}\noffset {off}\nmagic {magic}\nmask {mask}\n",
                if en { "enabled" } else { "disabled" }
            )
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn binfmt_entries(text in prop_oneof![
        binfmt_entry(),
        binfmt_entry().prop_flat_map(|t| mutated(vec![t.into_bytes()]).prop_map(|b| String::from_utf8_lossy(&b).into_owned())),
        ".{0,200}",
    ], header in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Some(h) = Handler::parse("qemu-x", &text) {
            let _ = h.matches(&header);
            for arch in ["amd64", "arm64", "arm", "386", "ppc64le", "s390x", "riscv64"] {
                let p = Platform::new("linux", arch, None);
                let _ = h.matches(&qemu::elf_header(&p).unwrap());
            }
        }
    }
}

// ------------------------------------------------------- ELF and layers

fn elf_bytes() -> impl Strategy<Value = Vec<u8>> {
    (
        1u8..3,
        0u8..4,
        any::<u16>(),
        any::<u16>(),
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(class, data, e_type, machine, rest)| {
            let mut h = vec![0x7f, b'E', b'L', b'F', class, data, 1, 0];
            h.extend([0u8; 8]);
            if data == 2 {
                h.extend(e_type.to_be_bytes());
                h.extend(machine.to_be_bytes());
            } else {
                h.extend(e_type.to_le_bytes());
                h.extend(machine.to_le_bytes());
            }
            h.extend(rest);
            h
        })
}

fn tar_of(files: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o755);
        h.set_cksum();
        // Names tar refuses (`..`, absolute) are simply not in the archive.
        let _ = b.append_data(&mut h, name, data.as_slice());
    }
    b.into_inner().unwrap()
}

fn layer() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        (
            "[a-z./]{1,20}",
            prop_oneof![elf_bytes(), prop::collection::vec(any::<u8>(), 0..64)],
        ),
        0..6,
    )
    .prop_map(|files| tar_of(&files))
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut e, b).unwrap();
    e.finish().unwrap()
}

/// A zstd frame of raw (uncompressed) blocks: the format's simplest valid
/// encoding, enough to reach the decoder (mbx only decodes zstd).
fn zstd_raw(b: &[u8]) -> Vec<u8> {
    let mut out = vec![0x28, 0xb5, 0x2f, 0xfd];
    // Frame header: single segment, 8-byte content size.
    out.push(0b1110_0000);
    out.extend((b.len() as u64).to_le_bytes());
    let chunks: Vec<&[u8]> = if b.is_empty() {
        vec![&[][..]]
    } else {
        b.chunks(100_000).collect()
    };
    for (i, c) in chunks.iter().enumerate() {
        let last = u32::from(i + 1 == chunks.len());
        let header = last | ((c.len() as u32) << 3);
        out.extend(&header.to_le_bytes()[..3]);
        out.extend(*c);
    }
    out
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn elf_headers(bytes in prop_oneof![elf_bytes(), prop::collection::vec(any::<u8>(), 0..64)]) {
        if let Some(m) = elf::elf_machine(&bytes) {
            prop_assert!(bytes.len() >= 20);
            let _ = elf::machine_name(m);
        }
    }

    #[test]
    fn tar_layers(t in layer(), edits in prop::collection::vec(edit(), 0..6), expected in any::<u16>()) {
        let whole = elf::scan_tar(t.as_slice(), expected);
        if let Ok(s) = &whole {
            prop_assert!(s.mismatches.len() <= 10 && s.mismatch_count >= s.mismatches.len());
        }
        let _ = elf::scan_tar(apply(t, &edits).as_slice(), expected);
    }

    #[test]
    fn compressed_layers(t in layer(), zstd in any::<bool>(), edits in prop::collection::vec(edit(), 0..6)) {
        let packed = if zstd { zstd_raw(&t) } else { gzip(&t) };
        let dir = scratch();
        let f = dir.path().join("layer");
        std::fs::write(&f, &packed).unwrap();
        let plain = elf::scan_tar(t.as_slice(), 183).unwrap();
        prop_assert_eq!(elf::scan_layer(&f, 183).unwrap(), plain);
        std::fs::write(&f, apply(packed, &edits)).unwrap();
        let _ = elf::scan_layer(&f, 183);
    }
}

// --------------------------------------------- manifests, indexes, layouts

fn digest_of(b: &[u8]) -> String {
    mbx::digest::sha256(b)
}

fn index_json() -> impl Strategy<Value = serde_json::Value> {
    let desc = (
        prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
        ]),
        ".{0,8}",
        prop::sample::select(vec!["linux", "unknown", "windows"]),
        prop::sample::select(vec!["amd64", "arm64", "arm", "unknown", "riscv64"]),
        prop::option::of("v[0-9]"),
        any::<bool>(),
    )
        .prop_map(|(mt, seed, os, arch, variant, att)| {
            let mut d = serde_json::json!({
                "mediaType": mt,
                "digest": digest_of(seed.as_bytes()),
                "size": seed.len(),
                "platform": {"os": os, "architecture": arch},
            });
            if let Some(v) = variant {
                d["platform"]["variant"] = v.into();
            }
            if att {
                d["annotations"] = serde_json::json!({
                    "vnd.docker.reference.type": "attestation-manifest",
                    "vnd.docker.reference.digest": digest_of(b"x"),
                });
            }
            d
        });
    prop::collection::vec(desc, 0..5).prop_map(|m| {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": m,
        })
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn manifests_and_indexes(v in index_json().prop_flat_map(|v| json_mutated(vec![v])), edits in prop::collection::vec(edit(), 0..4)) {
        let bytes = apply(serde_json::to_vec(&v).unwrap(), &edits);
        if let Ok(m) = serde_json::from_slice::<mbx::oci::Manifest>(&bytes) {
            for d in m.manifests.iter().flatten().chain(m.config.iter()).chain(&m.layers) {
                let _ = d.is_attestation();
                if let Some(p) = d.platform() {
                    let _ = p.to_string();
                    slug_is_one_file_name(&p)?;
                }
            }
        }
    }

    #[test]
    fn layout_index_json(v in index_json().prop_flat_map(|v| json_mutated(vec![v])), edits in prop::collection::vec(edit(), 0..4)) {
        let dir = scratch();
        std::fs::write(dir.path().join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        std::fs::write(dir.path().join("index.json"), apply(serde_json::to_vec(&v).unwrap(), &edits)).unwrap();
        let l = Layout::open(dir.path()).unwrap();
        let _ = l.top();
    }

    #[test]
    fn layout_blob_paths_stay_inside_the_layout(d in prop_oneof![
        ".{0,30}",
        "[a-z0-9./]{0,8}:[a-z0-9./]{0,8}",
        Just("..:evil".to_string()),
        Just("sha256:".to_string()),
        "sha256:[0-9a-f]{64}",
    ]) {
        let dir = scratch();
        let root = dir.path().join("layout");
        std::fs::create_dir_all(root.join("blobs/sha256")).unwrap();
        std::fs::write(root.join("oci-layout"), "{}").unwrap();
        std::fs::write(root.join("index.json"), "{}").unwrap();
        let l = Layout::open(&root).unwrap();
        if let Ok(p) = l.blob_path(&d) {
            blob_path_is_inside(&root, &p)?;
        }
        let _ = l.blob(&d);
    }

    #[test]
    fn image_references(s in prop_oneof![
        ".{0,60}",
        "[a-z0-9.:/@_-]{0,60}",
        ("[a-z0-9.-]{1,12}(:[0-9]{1,5})?", "[a-z0-9/_.-]{1,30}", "(:[A-Za-z0-9_.-]{1,20})?", "(@sha256:[0-9a-f]{64})?")
            .prop_map(|(h, p, t, d)| format!("{h}/{p}{t}{d}")),
    ]) {
        let _ = mbx::oci::parse_reference(&s);
        if let Ok(r) = mbx::plan::ImageRef::parse(&s) {
            prop_assert!(!r.repository.is_empty() || s.trim().is_empty(), "{s}: {r:?}");
        }
    }
}

fn slug_is_one_file_name(p: &Platform) -> Result<(), TestCaseError> {
    let slug = p.slug();
    let parts: Vec<_> = Path::new(&slug).components().collect();
    prop_assert!(
        matches!(parts.as_slice(), [std::path::Component::Normal(n)] if *n == std::ffi::OsStr::new(&slug)),
        "slug {slug:?} of {p:?} is not one file name"
    );
    Ok(())
}

fn blob_path_is_inside(root: &Path, p: &Path) -> Result<(), TestCaseError> {
    let rel = p.strip_prefix(root);
    prop_assert!(rel.is_ok(), "{} outside {}", p.display(), root.display());
    let parts: Vec<_> = rel.unwrap().components().collect();
    prop_assert!(
        parts.len() == 3
            && parts
                .iter()
                .all(|c| matches!(c, std::path::Component::Normal(_))),
        "{} is not blobs/ALGO/HEX",
        p.display()
    );
    Ok(())
}

// --------------------------------------------------- run records and parts

fn record_seeds() -> Vec<serde_json::Value> {
    json_seeds(RECORDS)
}

fn render_all(r: &RunRecord) {
    let opts = mbx::report::ReportOptions::default();
    let _ = mbx::report::markdown::render(r, &opts);
    let _ = mbx::report::terminal::render(r, &opts, false);
    let _ = mbx::report::github::annotations(r, &opts);
    let _ = mbx::report::github::outputs(r, &opts);
    let _ = mbx::report::emulation::model(r, None);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn run_records_mutated(v in json_mutated(record_seeds()), edits in prop::collection::vec(edit(), 0..3)) {
        let bytes = apply(serde_json::to_vec(&v).unwrap(), &edits);
        if let Ok(r) = RunRecord::from_json(&bytes) {
            render_all(&r);
        }
    }

    #[test]
    fn run_records_arbitrary_bytes(bytes in mutated(seeds(RECORDS))) {
        if let Ok(r) = RunRecord::from_json(&bytes) {
            render_all(&r);
        }
    }

    /// What mbx writes, mbx reads back unchanged (`--json` → `mbx report`, parts → merge).
    #[test]
    fn run_records_round_trip(v in json_mutated(record_seeds())) {
        let Ok(r) = RunRecord::from_json(&serde_json::to_vec(&v).unwrap()) else { return Ok(()) };
        let dir = scratch();
        let f = dir.path().join("r.json");
        mbx::report::write_json(&r, &f).unwrap();
        let back = mbx::report::read_json(&f);
        prop_assert!(back.is_ok(), "mbx cannot read what it wrote: {:?}", back.err());
        prop_assert_eq!(
            serde_json::to_value(back.unwrap()).unwrap(),
            serde_json::to_value(&r).unwrap()
        );
    }

    #[test]
    fn parts_directories(parts in prop::collection::vec(json_mutated(record_seeds()), 1..3)) {
        let dir = scratch();
        for (i, p) in parts.iter().enumerate() {
            std::fs::write(dir.path().join(format!("part-{i}.json")), serde_json::to_vec(p).unwrap()).unwrap();
        }
        if let Ok(loaded) = mbx::build::parts::load(dir.path()) {
            // A merge never goes ahead without a pushed digest for each platform.
            prop_assert!(loaded.platforms.iter().all(|p| p.build_digest.is_some() && p.error.is_none()));
        }
    }
}

// ------------------------------------------- action inputs and platforms

fn opts() -> impl Strategy<Value = ListOpts> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::option::of(prop::sample::select(vec!['#', ';'])),
    )
        .prop_map(|(commas, quote, comment)| ListOpts {
            commas,
            quote,
            comment,
            trim: true,
        })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn action_input_lists(s in prop_oneof![".{0,80}", "[a-z\",\\n\\r# =]{0,80}"], o in opts()) {
        if let Ok(items) = inputs::list(&s, o) {
            prop_assert!(items.iter().all(|i| !i.is_empty() && i.trim() == i));
        }
    }

    /// Quoted items, one a line, come back as written (the toolkit's rules).
    #[test]
    fn action_input_lists_round_trip(items in prop::collection::vec("[^\"\r\n]{0,20}(\"[^\r\n]{0,5})?", 0..6)) {
        let want: Vec<String> = items.iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
        let text: String = items.iter().map(|i| format!("\"{}\"\n", i.replace('"', "\"\""))).collect();
        let o = ListOpts { commas: false, quote: true, comment: None, trim: true };
        prop_assert_eq!(inputs::list(&text, o), Ok(want));
    }

    #[test]
    fn action_inputs(values in prop::collection::vec((prop::sample::select(inputs::INPUTS.iter().map(|i| i.name).collect::<Vec<_>>()), prop_oneof![".{0,40}", "[a-z0-9/:,\"\\n=]{0,40}", Just("true".to_string()), Just("false".to_string())]), 0..6)) {
        let env: BTreeMap<String, String> = values
            .into_iter()
            .map(|(k, v)| (inputs::var_name(k), v))
            .collect();
        let _ = inputs::expand(&env, "/tmp");
    }

    #[test]
    fn platform_strings(s in prop_oneof![".{0,30}", "[a-zA-Z0-9_/, \\n-]{0,30}"]) {
        if let Ok(p) = s.parse::<Platform>() {
            // Display → parse gives the same platform; the slug is one file name.
            prop_assert_eq!(p.to_string().parse::<Platform>(), Ok(p.clone()));
            slug_is_one_file_name(&p)?;
        }
        if let Ok(ps) = Platform::parse_list(&s) {
            prop_assert!(!ps.is_empty());
        }
    }

    #[test]
    fn platforms_from_documents(os in ".{0,12}", arch in ".{0,12}", variant in prop::option::of(".{0,12}")) {
        // Index descriptors, image configs and buildx's instance files name
        // platforms in free text: whatever they say, the slug is a file name.
        let p = Platform::new(&os, &arch, variant.as_deref());
        slug_is_one_file_name(&p)?;
        let _ = p.to_string();
    }
}

// ------------------------- buildx, builders, versions, docker config files

proptest! {
    #![proptest_config(config())]

    #[test]
    fn buildx_inspect_text(s in prop_oneof![".{0,200}", "((Name|Driver|Nodes|Status|Platforms|BuildKit version|Driver Options):[ -~]{0,30}\\n){0,8}"]) {
        let _ = mbx::docker::buildx::parse_inspect(&s);
    }

    #[test]
    fn buildx_instance_files(v in json_mutated(vec![serde_json::json!({
        "Name": "b", "Driver": "docker-container", "Dynamic": false,
        "Nodes": [{"Name": "b0", "Endpoint": "unix:///var/run/docker.sock",
                   "Platforms": [{"os": "linux", "architecture": "arm64", "variant": "v8"}],
                   "DriverOpts": {"image": "127.0.0.1:5000/moby/buildkit:v0.25", "network": "host"},
                   "Files": {"buildkitd.toml": "W3JlZ2lzdHJ5XQ=="}}]
    })]), edits in prop::collection::vec(edit(), 0..4)) {
        let text = String::from_utf8_lossy(&apply(serde_json::to_vec(&v).unwrap(), &edits)).into_owned();
        let _ = mbx::setup::builder::settings_from_instance(&text);
        let _ = mbx::setup::builder::local_container(&text, "unix:///var/run/docker.sock");
    }

    #[test]
    fn tool_versions(s in prop_oneof![".{0,30}", "v?[0-9.]{0,12}[-+~a-z0-9.]{0,10}"]) {
        let _ = mbx::setup::preflight::parse_version(&s);
    }

    #[test]
    fn docker_config_files(v in json_mutated(vec![serde_json::json!({
        "auths": {"127.0.0.1:5001": {"auth": "dXNlcjpwYXNz"}, "127.0.0.1:5002": {"username": "u", "password": "p"}},
        "identitytoken": "x"
    })]), edits in prop::collection::vec(edit(), 0..4)) {
        let dir = scratch();
        let bytes = apply(serde_json::to_vec(&v).unwrap(), &edits);
        // Never a helper here: a fuzzed name would run a program from PATH.
        prop_assume!(!String::from_utf8_lossy(&bytes).contains("cred"));
        std::fs::write(dir.path().join("config.json"), bytes).unwrap();
        let env = |k: &str| (k == "DOCKER_CONFIG").then(|| dir.path().display().to_string());
        let _ = mbx::oci::registry::docker_config("127.0.0.1:5001", &env);
    }
}

// ---------------------------------------------- GitHub Actions cache API

fn entry_seeds() -> Vec<serde_json::Value> {
    json_seeds(&["gha-cache/act-cache-entries.json"])
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn cache_keys(k in prop_oneof![
        ".{0,60}",
        "(index-|buildkit-blob-)[a-z0-9:#-]{0,60}",
    ]) {
        let _ = keys::parse(&k);
        let _ = keys::mbx_scope(&k);
        let _ = keys::scope_glob(&k);
        let _ = prune::parse_age(&k);
        let _ = prune::normalize_ref(&k);
    }

    #[test]
    fn cache_index_contents(bytes in mutated(seeds(&["gha-cache/index-content-7.json", "gha-cache/index-content-13.json"]))) {
        let _ = gha_cache::index_blobs(&bytes);
    }

    #[test]
    fn cache_link_headers(s in prop_oneof![".{0,80}", "(<[ -~]{0,20}>(; *rel=\"?(next|last)\"?)*, ?){0,4}"]) {
        let mut h = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(&s) {
            h.insert(http::header::LINK, v);
        }
        let _ = gha_cache::github::next_link(&h);
    }

    /// The caches API's list, damaged: whatever entries come back, the usage
    /// summary and the prune plan are computed without a panic.
    #[test]
    fn cache_entries(v in json_mutated(entry_seeds()), limit in any::<u64>(), age in 0i64..1_000_000) {
        let list = v.get("actions_caches").cloned().unwrap_or(v);
        let Ok(entries) = serde_json::from_value::<Vec<Entry>>(list) else { return Ok(()) };
        let contents = gha_cache::IndexContents::new();
        let u = gha_cache::summarize("o/r", None, &entries, limit, &contents);
        let _ = mbx::report::cache::render_usage(&u);
        let _ = mbx::report::cache::markdown(&u);
        let f = prune::Filters {
            older_than: chrono::Duration::seconds(age),
            git_ref: None,
            scope: None,
            now: chrono::Utc::now(),
        };
        let plan = prune::plan(&entries, &f, &contents);
        let _ = mbx::report::cache::render_prune("o/r", &plan, None);
    }
}

// ------------------------------------------------------- memory bounds

/// A stream of text with no newline (a runaway tool's output between the
/// JSON objects) is not kept whole: memory stays bounded.
#[test]
fn rawjson_text_without_newlines_is_bounded() {
    let chunk = vec![b'x'; 64 * 1024];
    let peak = alloc_meter::peak_during(|| {
        let mut p = Progress::new();
        for _ in 0..(64 * 1024 * 1024 / chunk.len()) {
            p.feed(&chunk);
        }
        p.finish();
        assert!(p.text_tail().iter().all(|l| l.len() <= 4096 + 8));
    });
    assert!(peak < 8 * 1024 * 1024, "64 MiB of text held {peak} bytes");
}

/// One log entry of many short lines is read in linear time and bounded memory.
#[test]
fn rawjson_one_huge_log_entry_is_bounded() {
    use base64::Engine;
    let log = "a\n".repeat(4 * 1024 * 1024);
    let frame = format!(
        "{{\"vertexes\":[{{\"digest\":\"d\",\"name\":\"[1/1] RUN x\"}}],\"logs\":[{{\"vertex\":\"d\",\"data\":\"{}\"}}]}}\n",
        base64::engine::general_purpose::STANDARD.encode(&log)
    );
    let started = std::time::Instant::now();
    let mut p = Progress::new();
    p.feed(frame.as_bytes());
    p.finish();
    assert_eq!(p.steps()[0].log_tail.len(), 40);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// A Dockerfile of 200k steps (or a builder announcing as many vertices):
/// mbx keeps at most `MAX_STEPS` in full, folds the rest into counts, and the
/// record's totals stay right.
#[test]
fn rawjson_200k_steps_are_bounded() {
    let n = 200_000usize;
    let mut record: mbx::run::PlatformRecord = serde_json::from_value(serde_json::json!({
        "platform": "linux/amd64", "emulated": false, "digest": null, "build_digest": null,
        "wall_seconds": 1.0, "executed_seconds": 0.0, "steps_total": 0, "steps_cached": 0
    }))
    .unwrap();
    let outcome = mbx::docker::BuildOutcome {
        success: true,
        status: Some(0),
        command: "docker buildx build".into(),
        metadata: Some(serde_json::json!({"containerimage.digest": "sha256:0"})),
        stdout_tail: Vec::new(),
    };
    let started = std::time::Instant::now();
    let peak = alloc_meter::peak_during(|| {
        let mut p = Progress::new();
        for first in (1..=n).step_by(100) {
            let vertexes: Vec<String> = (first..first + 100)
                .map(|i| {
                    format!(
                        r#"{{"digest":"sha256:{i:064x}","name":"[{i}/{n}] RUN step {i}","started":"2026-01-01T00:00:00Z","completed":"2026-01-01T00:00:00.{:03}Z","cached":{}}}"#,
                        i % 1000,
                        i % 2 == 0
                    )
                })
                .collect();
            p.feed(format!("{{\"vertexes\":[{}]}}\n", vertexes.join(",")).as_bytes());
        }
        p.finish();
        assert!(p.steps().len() <= mbx::build::progress::MAX_STEPS * 5 / 4);
        mbx::build::fill_from_outcome(&mut record, &outcome, &p);
        let snap = p.snapshot();
        assert_eq!((snap.done, snap.total), (n, n));
    });
    assert_eq!((record.steps_total, record.steps_cached), (n, n / 2));
    let want: f64 = (1..=n)
        .filter(|i| i % 2 == 1)
        .map(|i| (i % 1000) as f64 / 1000.0)
        .sum();
    assert!(
        (record.executed_seconds - want).abs() < 1e-3,
        "{} vs {want}",
        record.executed_seconds
    );
    // The slowest steps that ran are the ones kept.
    assert!(record
        .steps
        .iter()
        .any(|s| s.name.ends_with("RUN step 999")));
    eprintln!("200k steps: peak {peak} bytes in {:?}", started.elapsed());
    assert!(peak < 16 << 20, "200k steps held {peak} bytes");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
}

/// Step names of megabytes (a RUN with a huge inline script, or a hostile
/// builder) are cut at `NAME_MAX`: 64 of 1 MiB hold little; one of just
/// under the object cap holds the cap once (not copied); one of 16 MiB is
/// over the cap and dropped, never held twice.
#[test]
fn rawjson_huge_step_names_are_bounded() {
    use mbx::build::progress::{MAX_OBJECT_BYTES, NAME_MAX};
    let frame = |i: usize, len: usize| {
        let mut f = format!(r#"{{"vertexes":[{{"digest":"sha256:{i}","started":"2026-01-01T00:00:00Z","name":"[{i}/64] RUN "#).into_bytes();
        f.resize(f.len() + len, b'x');
        f.extend_from_slice(b"\"}]}\n");
        f
    };
    let mib = frame(0, 1 << 20);
    let peak = alloc_meter::peak_during(|| {
        let mut p = Progress::new();
        for i in 1..=64 {
            let f = String::from_utf8(mib.clone())
                .unwrap()
                .replace("sha256:0", &format!("sha256:{i}"));
            for chunk in f.as_bytes().chunks(64 * 1024) {
                p.feed(chunk);
            }
        }
        p.finish();
        let steps = p.steps();
        assert_eq!(steps.len(), 64);
        assert!(steps
            .iter()
            .all(|s| s.name.len() <= NAME_MAX + 3 && s.instruction));
    });
    eprintln!("64 names of 1 MiB: peak {peak} bytes");
    assert!(peak < 8 << 20, "64 names of 1 MiB held {peak} bytes");
    for (len, kept) in [(MAX_OBJECT_BYTES - 200, 1), (16 << 20, 0)] {
        let big = frame(1, len);
        let peak = alloc_meter::peak_during(|| {
            let mut p = Progress::new();
            for chunk in big.chunks(64 * 1024) {
                p.feed(chunk);
            }
            p.finish();
            assert_eq!(p.steps().len(), kept);
            assert_eq!(p.malformed, 1 - kept);
            assert!(p.log.as_str().len() < 2 * NAME_MAX);
        });
        eprintln!("a name of {len} bytes: peak {peak} bytes");
        assert!(
            peak < MAX_OBJECT_BYTES + (4 << 20),
            "a name of {len} bytes held {peak} bytes"
        );
    }
}

/// A hostile registry, a stand-in on loopback (no real registry serves this):
/// `/v2/` answers 200, every other request gets `head` and then, when
/// `endless`, bytes until mbx hangs up.
fn hostile_registry(head: &'static str, endless: bool) -> String {
    use std::io::{BufRead, BufReader, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let mut first = String::new();
                    if r.read_line(&mut first).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut line = String::new();
                    while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                        line.clear();
                    }
                    if first.starts_with("GET /v2/ ") {
                        let _ = w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                        continue;
                    }
                    let _ = w.write_all(head.as_bytes());
                    let chunk = vec![b' '; 64 * 1024];
                    // 4 GiB at most, should mbx never hang up.
                    for _ in 0..(endless as usize * 65_536) {
                        if w.write_all(&chunk).is_err() {
                            break;
                        }
                    }
                    return;
                }
            });
        }
    });
    addr
}

/// The TLS provider main.rs installs (the library leaves the choice to its binary).
fn tls() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn verify_against(addr: &str) -> mbx::error::Result<mbx::verify::Verification> {
    tls();
    let opts = mbx::verify::Options {
        timeout: std::time::Duration::from_secs(60),
        ..Default::default()
    };
    let checks = mbx::plan::Checks::default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(mbx::verify::run(
            &format!("{addr}/fuzz/app:v1"),
            &[],
            &checks,
            &opts,
        ))
}

/// What a read that fails at once holds (the runtime, both HTTP clients,
/// the TLS roots): the peaks below are measured above it.
fn baseline_peak() -> usize {
    static PEAK: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PEAK.get_or_init(|| {
        let addr = hostile_registry("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false);
        // The first read in a process also pays one-time set-up (~20 MB): not counted.
        assert!(verify_against(&addr).is_err());
        alloc_meter::peak_during(|| assert!(verify_against(&addr).is_err()))
    })
}

/// A manifest that never ends is refused at the cap, holding no more than it.
#[test]
fn registry_endless_manifest_is_capped() {
    let addr = hostile_registry(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nConnection: close\r\n\r\n{",
        true,
    );
    let base = baseline_peak();
    let mut result = None;
    // The whole read runs on this thread (a current-thread runtime): measured.
    let peak = alloc_meter::peak_during(|| result = Some(verify_against(&addr)));
    let e = result
        .unwrap()
        .expect_err("an endless manifest is an error");
    assert!(e.to_string().contains("larger than"), "{e}");
    let cap = mbx::oci::MAX_DOCUMENT_BYTES as usize;
    assert!(
        peak < base + cap + (4 << 20),
        "held {peak} bytes ({base} at rest) for a cap of {cap}"
    );
}

/// A `Content-Length` over the cap is refused before the body is read.
#[test]
fn registry_huge_content_length_is_refused_unread() {
    let addr = hostile_registry(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.index.v1+json\r\nContent-Length: 1099511627776\r\n\r\n",
        false,
    );
    let started = std::time::Instant::now();
    let e = verify_against(&addr).expect_err("refused");
    assert!(e.to_string().contains("larger than"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// An endless error body (a 500) is read only as far as its message needs.
#[test]
fn registry_endless_error_body_is_capped() {
    let addr = hostile_registry(
        "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html>",
        true,
    );
    let base = baseline_peak();
    let mut result = None;
    let peak = alloc_meter::peak_during(|| result = Some(verify_against(&addr)));
    let e = result.unwrap().expect_err("404");
    assert!(e.to_string().contains("not found"), "{e}");
    assert!(
        peak < base + (2 << 20),
        "held {peak} bytes ({base} at rest) of an error page"
    );
}

/// `mbx cache`'s REST client against a hostile STAND-IN FOR GITHUB on
/// loopback (github.com cannot be reached here; the same server as above):
/// the cache list, read as `client` does it.
fn gha_list_against(addr: &str) -> mbx::error::Result<Vec<Entry>> {
    tls();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let gh = gha_cache::github::GitHub::new(&format!("http://{addr}"), "o/r", "t".into())?;
            gh.list().await
        })
}

/// A cache list whose body never ends is refused at the cap, holding no more than it.
#[test]
fn github_endless_cache_list_is_capped() {
    let refused = hostile_registry("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false);
    assert!(gha_list_against(&refused).is_err());
    let base = alloc_meter::peak_during(|| assert!(gha_list_against(&refused).is_err()));
    let addr = hostile_registry(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"actions_caches\": [",
        true,
    );
    let started = std::time::Instant::now();
    let mut result = None;
    let peak = alloc_meter::peak_during(|| result = Some(gha_list_against(&addr)));
    let e = result.unwrap().expect_err("an endless list is an error");
    let cap = gha_cache::github::MAX_BODY_BYTES;
    assert!(
        e.to_string().contains(&format!("larger than {cap} bytes")),
        "{e}"
    );
    assert_eq!(e.exit_code(), 1);
    assert!(
        peak < base + cap + (2 << 20),
        "held {peak} bytes ({base} at rest) for a cap of {cap}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
}

/// A `Content-Length` over the cap is refused before the body is read; an
/// endless error page is read only as far as its message needs.
#[test]
fn github_huge_content_length_and_endless_error_are_bounded() {
    let addr = hostile_registry(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1099511627776\r\n\r\n",
        false,
    );
    let started = std::time::Instant::now();
    let e = gha_list_against(&addr).expect_err("refused");
    assert!(e.to_string().contains("larger than"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    let addr = hostile_registry(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nConnection: close\r\n\r\n<html>",
        true,
    );
    let mut result = None;
    let peak = alloc_meter::peak_during(|| result = Some(gha_list_against(&addr)));
    let e = result.unwrap().expect_err("500");
    assert!(e.to_string().contains("500"), "{e}");
    assert!(peak < 8 << 20, "held {peak} bytes of an error page");
}

/// A part (or `--record`) file of gigabytes is refused, not read whole.
#[test]
fn record_file_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("part.json");
    let file = std::fs::File::create(&f).unwrap();
    file.set_len(RunRecord::MAX_FILE_BYTES + 1).unwrap(); // sparse: no disk used
    let peak = alloc_meter::peak_during(|| {
        let e = mbx::build::parts::load(dir.path()).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
        let e = mbx::report::read_json(&f).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    });
    assert!(peak < 1 << 20, "read {peak} bytes of a file it refuses");
}

/// A Docker config file of gigabytes (`config.json`: logins) is refused, not read whole.
#[test]
fn docker_config_over_the_cap_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("config.json")).unwrap();
    file.set_len(mbx::error::MAX_CONFIG_BYTES + 1).unwrap(); // sparse: no disk used
    let d = dir.path().to_str().unwrap().to_string();
    let env = move |k: &str| (k == "DOCKER_CONFIG").then(|| d.clone());
    let peak = alloc_meter::peak_during(|| {
        let e = mbx::oci::registry::docker_config("127.0.0.1:5000", &env)
            .err()
            .expect("refused");
        assert!(e.contains("larger than"), "{e}");
    });
    assert!(
        peak < (mbx::error::MAX_CONFIG_BYTES as usize) + (1 << 20),
        "{peak}"
    );
}

/// A layout whose index names `/dev/zero` through `..` is not read from.
#[test]
fn layout_digest_cannot_name_a_file_outside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("oci-layout"), "{}").unwrap();
    let index = r#"{"manifests":[{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"../../../../../../dev:zero","size":1}]}"#;
    std::fs::write(dir.path().join("index.json"), index).unwrap();
    let l = Layout::open(dir.path()).unwrap();
    let peak = alloc_meter::peak_during(|| {
        let e = l.top().expect_err("refused");
        assert!(e.to_string().contains("is not a digest"), "{e}");
    });
    assert!(peak < 1 << 20, "{peak}");
}

// ------------------------------------------- crashes found, kept as tests

/// Found by `binfmt_entries`: a non-ASCII byte in `magic` sliced a str
/// inside a character (panic in `unhex`).
#[test]
fn regression_binfmt_magic_with_non_ascii() {
    let text = "enabled\ninterpreter /usr/bin/qemu-aarch64\nflags: F\noffset 0\nmagic 4b030d74892dd901cc65351876f1\u{fffd}b86f\nmask ff\n";
    assert_eq!(Handler::parse("qemu-aarch64", text), None);
    assert_eq!(Handler::parse("x", "enabled\nmagic é0\n"), None);
    assert_eq!(Handler::parse("x", "enabled\nmagic +f\n"), None, "not hex");
}

/// Found by `binfmt_entries`: `offset` near usize::MAX overflowed in `matches`.
#[test]
fn regression_binfmt_offset_overflow() {
    let text = format!("enabled\noffset {}\nmagic 7f454c46\n", usize::MAX);
    let h = Handler::parse("x", &text).unwrap();
    assert!(!h.matches(&[0x7f, b'E', b'L', b'F']));
}

/// Found in review of the record renderers: `digest::short` cut a digest
/// at byte 12, inside a character of a record's (or index's) hostile digest.
#[test]
fn regression_short_digest_with_non_ascii() {
    assert_eq!(
        mbx::digest::short("sha256:ééééééééééééé"),
        "sha256:éééééééééééé"
    );
    let mut r: serde_json::Value = serde_json::from_slice(&data(RECORDS[2])).unwrap();
    r["index_digest"] = "sha256:0123456789aé".into();
    let r = RunRecord::from_json(r.to_string().as_bytes()).unwrap();
    render_all(&r);
}

/// Found in review of verify: a platform in a hostile index (`os` with
/// slashes) became a directory path outside verify's temporary directory.
#[test]
fn regression_index_platform_names_a_path() {
    let p = Platform::new("linux/../../../../home/u", "amd64", Some("/../../.ssh"));
    slug_is_one_file_name(&p).unwrap();
}

/// Found in review of verify: a layer digest from a hostile manifest named a
/// file (`tmp.join(digest)`); refused before any request or file.
#[test]
fn regression_layer_digest_names_a_path() {
    tls();
    let addr = hostile_registry(
        "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
        false,
    );
    let src =
        mbx::verify::Source::open(&format!("{addr}/fuzz/app:v1"), &Default::default()).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for d in [
        "authorized_keys",
        "sha256:../../x",
        "../../../../tmp/evil:x",
    ] {
        let e = rt
            .block_on(src.layer_file(d, 1, tmp.path(), 1 << 20))
            .unwrap_err();
        assert!(e.to_string().contains("is not a digest"), "{d}: {e}");
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

/// Found by `rawjson_windows`: a text line capped at 4096 bytes grew past
/// the cap when its invalid UTF-8 became U+FFFD (3 bytes each).
#[test]
fn regression_rawjson_text_line_of_invalid_utf8() {
    let mut p = Progress::new();
    p.feed(&[0xff; 10_000]);
    p.feed(b"\n{\"vertexes\": [");
    p.feed(&[0xfe; 10_000]);
    p.finish();
    let tail = p.text_tail();
    assert_eq!(tail.len(), 2);
    assert!(
        tail.iter().all(|l| l.len() <= 4096),
        "{:?}",
        tail.iter().map(String::len).collect::<Vec<_>>()
    );
}

/// Found by `run_records_round_trip`: a seconds field holding a u64 read
/// back one ULP off after mbx wrote it (serde_json's fast float parsing);
/// records now parse floats exactly.
#[test]
fn regression_record_float_round_trip() {
    let mut v: serde_json::Value = serde_json::from_slice(&data(RECORDS[1])).unwrap();
    v["wall_seconds"] = serde_json::json!(11720790833024893953u64);
    let r = RunRecord::from_json(v.to_string().as_bytes()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("r.json");
    mbx::report::write_json(&r, &f).unwrap();
    let back = mbx::report::read_json(&f).unwrap();
    assert_eq!(back.wall_seconds.to_bits(), r.wall_seconds.to_bits());
}

/// Found by scripts/fuzz (run_records_mutated, run_records_arbitrary_bytes):
/// a step that starts at the far end of time put its gantt bar's start at
/// u64::MAX and its end at one past it (an overflow; a wrapped bar in a
/// release build). Bars now stop at the end of time.
#[test]
fn regression_record_step_at_the_end_of_time() {
    let mut v: serde_json::Value = serde_json::from_slice(&data(RECORDS[1])).unwrap();
    // A step that ran (an instruction, not cached): it gets a bar.
    let i = v["platforms"][0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .position(|s| s["instruction"] == true && s["cached"] != true)
        .expect("a step that ran in the seed");
    for (started, completed) in [(1e30, 1e30), (1e300, 2e300), (-1e30, 1e30)] {
        v["platforms"][0]["steps"][i]["started"] = serde_json::json!(started);
        v["platforms"][0]["steps"][i]["completed"] = serde_json::json!(completed);
        let r = RunRecord::from_json(v.to_string().as_bytes()).unwrap();
        render_all(&r);
    }
}
