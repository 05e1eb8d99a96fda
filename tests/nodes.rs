//! Multi-node builders, for real: two plain `buildkitd` processes on
//! loopback (the chain's own BuildKit binaries), reached over mutual TLS with
//! certificates this test makes with openssl, one started with
//! `--oci-worker-platform linux/amd64` and the other with
//! `--oci-worker-platform linux/arm64`. The "arm64 node" runs on this amd64
//! host, so its arm64 steps still run under the host's QEMU handlers (read,
//! never changed here): what is checked is routing and accounting — each
//! platform built on the node whose worker has it first, the record naming
//! that node, neither platform counted as emulated, no emulation cost — not
//! speed. A multi-node builder cannot write an OCI layout, so the results are
//! pushed to the loopback registry.
//!
//! Needs root (buildkitd's OCI worker). Ports 12340-12359 are this file's.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

/// Base image of the test Dockerfile (in the loopback registry).
const BASE: &str = "127.0.0.1:5000/mbx/busybox:latest";

/// A cross-compiling Dockerfile in miniature: the `build` stage runs on the
/// build platform, the final stage on the target platform.
fn dockerfile() -> String {
    format!(
        "FROM --platform=$BUILDPLATFORM {BASE} AS build\nARG TARGETPLATFORM\n\
RUN echo \"for $TARGETPLATFORM\" > /out\n\
FROM {BASE}\nCOPY --from=build /out /out\nRUN uname -m > /arch\n"
    )
}

/// Two BuildKit daemons with their certificates, a docker config of their
/// own (buildx's instance files) and a builder name; everything is stopped
/// and removed on drop.
struct Nodes {
    dir: tempfile::TempDir,
    ports: [u16; 2],
    daemons: Vec<Option<Child>>,
    builder: String,
}

impl Nodes {
    /// `first_port` and `first_port + 1` (within 12340-12359).
    fn start(first_port: u16, builder: &str) -> Nodes {
        require_chain();
        hold_binfmt_shared();
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "tests/nodes.rs starts buildkitd (OCI worker), which needs root: run the suite as root (scripts/test)"
        );
        let dir = tempfile::Builder::new()
            .prefix("mbx-nodes-")
            .tempdir()
            .unwrap();
        make_certs(dir.path());
        let bin = buildkit_bin(dir.path());
        // A docker config of its own, with the lane's plugin directories.
        let cfg = dir.path().join("docker");
        std::fs::create_dir_all(&cfg).unwrap();
        let lane_cfg = std::env::var_os("DOCKER_CONFIG")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".docker"));
        if let Ok(c) = std::fs::read(lane_cfg.join("config.json")) {
            std::fs::write(cfg.join("config.json"), c).unwrap();
        }
        let mut n = Nodes {
            dir,
            ports: [first_port, first_port + 1],
            daemons: Vec::new(),
            builder: format!("nod-{builder}-{}", std::process::id()),
        };
        for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
            let d = n.spawn(&bin, i, platform);
            n.daemons.push(Some(d));
        }
        for i in 0..2 {
            n.wait_listening(i);
        }
        n
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn endpoint(&self, i: usize) -> String {
        format!("tcp://127.0.0.1:{}", self.ports[i])
    }

    fn spawn(&self, bin: &Path, i: usize, platform: &str) -> Child {
        let root = self.path(&format!("root{i}"));
        std::fs::create_dir_all(&root).unwrap();
        let log = std::fs::File::create(self.path(&format!("buildkitd{i}.log"))).unwrap();
        let addr = format!("tcp://127.0.0.1:{}", self.ports[i]);
        // The chain's config, with a trace socket of this daemon's own: every
        // buildkitd binds /run/buildkit/otel-grpc.sock by default, and daemons
        // of tests running side by side raced for it ("address already in
        // use"), as BuildKit's own integration tests avoid the same way.
        let config = self.path(&format!("buildkitd{i}.toml"));
        let chain = std::fs::read_to_string(chain_dir().join("buildkitd.toml")).unwrap_or_default();
        let otel = self.path(&format!("otel{i}.sock"));
        std::fs::write(
            &config,
            format!(
                "{chain}\n[otel]\n  socketPath = {:?}\n",
                otel.display().to_string()
            ),
        )
        .unwrap();
        Command::new(bin.join("buildkitd"))
            .arg("--root")
            .arg(&root)
            .args(["--addr", &addr])
            .arg("--tlscacert")
            .arg(self.path("ca.pem"))
            .arg("--tlscert")
            .arg(self.path("server.pem"))
            .arg("--tlskey")
            .arg(self.path("server.key"))
            .args(["--oci-worker-platform", platform])
            .arg("--containerd-worker=false")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start buildkitd")
    }

    fn wait_listening(&self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.ports[i])).is_err() {
            assert!(
                Instant::now() < deadline,
                "buildkitd {i} did not listen on {} within 30 s:\n{}",
                self.ports[i],
                std::fs::read_to_string(self.path(&format!("buildkitd{i}.log")))
                    .unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop node `i` (SIGKILL, as a machine that went away).
    fn stop(&mut self, i: usize) {
        if let Some(mut c) = self.daemons[i].take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// The client side of the mTLS: `cacert=…`, `cert=…`, `key=…`.
    fn tls_opts(&self) -> Vec<String> {
        vec![
            format!("cacert={}", self.path("ca.pem").display()),
            format!("cert={}", self.path("client.pem").display()),
            format!("key={}", self.path("client.key").display()),
        ]
    }

    fn docker(&self) -> Command {
        let mut c = Command::new("docker");
        c.env("DOCKER_CONFIG", self.path("docker"));
        c
    }

    fn mbx(&self) -> Command {
        let mut c = mbx();
        c.env("DOCKER_CONFIG", self.path("docker"))
            .env("MBX_STATE_DIR", self.path("state"))
            .env("MBX_BUILDER", &self.builder);
        c
    }

    /// `docker buildx create` the builder, node by node, pinned.
    fn buildx_create(&self) {
        for (i, platform) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
            let mut c = self.docker();
            c.args([
                "buildx",
                "create",
                "--name",
                &self.builder,
                "--driver",
                "remote",
            ]);
            if i > 0 {
                c.arg("--append");
            }
            c.args(["--driver-opt", &self.tls_opts().join(",")]);
            c.args(["--platform", platform, &self.endpoint(i)]);
            let out = c.output().unwrap();
            assert!(out.status.success(), "buildx create: {}", stderr(&out));
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        let _ = self.docker().args(["buildx", "rm", &self.builder]).output();
        for i in 0..self.daemons.len() {
            self.stop(i);
        }
    }
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate.
fn make_certs(dir: &Path) {
    let ssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl is installed");
        assert!(out.status.success(), "openssl {args:?}: {}", stderr(&out));
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=mbx-test-ca",
    ]);
    ssl(&ca);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").unwrap();
    for who in ["server", "client"] {
        let (key, csr, pem, ext) = (
            format!("{who}.key"),
            format!("{who}.csr"),
            format!("{who}.pem"),
            format!("{who}.ext"),
        );
        let mut req = vec!["req"];
        req.extend(ec);
        req.extend(["-keyout", &key, "-out", &csr, "-subj"]);
        let subj = format!("/CN={who}");
        req.push(&subj);
        ssl(&req);
        ssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "1",
            "-extfile",
            &ext,
        ]);
    }
}

/// The chain's buildkitd and buildctl: the lane's build, else the chain's,
/// else copied out of the chain's BuildKit image.
fn buildkit_bin(tmp: &Path) -> PathBuf {
    let lane = std::env::var("MBX_CHAIN_LANE").unwrap_or_else(|_| "current".into());
    for d in [
        chain_dir().join("lanes").join(&lane).join("buildkit/bin"),
        chain_dir().join("buildkit/bin"),
    ] {
        if d.join("buildkitd").is_file() {
            return d;
        }
    }
    let image = std::env::var("MBX_BUILDKIT_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/moby/buildkit:local".into());
    let out = Command::new("docker")
        .args(["create", &image])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "docker create {image}: {}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_string();
    let bin = tmp.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["buildkitd", "buildctl"] {
        let out = Command::new("docker")
            .args(["cp", &format!("{id}:/usr/bin/{b}")])
            .arg(bin.join(b))
            .output()
            .unwrap();
        assert!(out.status.success(), "docker cp {b}: {}", stderr(&out));
    }
    let _ = Command::new("docker").args(["rm", &id]).output();
    bin
}

/// `mbx ci` pushing `repo:tag`, its record in `json`.
fn ci(
    n: &Nodes,
    ctx: &Path,
    repo: &str,
    tag: &str,
    json: &Path,
    extra: &[String],
) -> std::process::Output {
    run({
        let mut c = n.mbx();
        c.args([
            "ci",
            "--local",
            "--registry",
            REGISTRY,
            "--image",
            repo,
            "--tag",
            tag,
        ])
        .arg("--context")
        .arg(ctx)
        .arg("--json")
        .arg(json)
        .args(extra);
        c
    })
}

/// Each platform on its own node, native there; the report claims no cost.
fn assert_routed(n: &Nodes, out: &std::process::Output, json: &Path) {
    assert!(out.status.success(), "mbx ci failed: {}", stderr(out));
    let r = read_json(json);
    let nodes = &r["setup"]["builder"]["nodes"];
    assert_eq!(nodes.as_array().map(Vec::len), Some(2), "{nodes}");
    assert_eq!(nodes[1]["endpoint"], n.endpoint(1));
    assert_eq!(nodes[1]["platforms"][0], "linux/arm64", "{nodes}");
    for (i, p) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let rec = r["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["platform"] == *p)
            .unwrap_or_else(|| panic!("no {p} in the record"));
        assert_eq!(
            rec["node"],
            format!("{}{i}", n.builder),
            "{p} built on the wrong node"
        );
        assert_eq!(rec["emulated"], false, "{p} counted as emulated");
    }
    // No QEMU handler is this builder's business.
    assert_eq!(r["setup"]["binfmt"], serde_json::json!([]));
    let report = stdout(out);
    assert!(!report.contains("under QEMU"), "{report}");
    assert!(!report.contains("emulation cost:"), "{report}");
    assert!(report.contains("every platform ran natively"), "{report}");
    let summary = json.with_extension("md");
    let rep = run({
        let mut c = n.mbx();
        c.arg("report")
            .arg("--record")
            .arg(json)
            .arg("--summary")
            .arg(&summary);
        c
    });
    assert!(rep.status.success(), "mbx report: {}", stderr(&rep));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("every build was native"), "{md}");
}

#[test]
fn a_two_node_builder_made_by_buildx_builds_each_platform_on_its_node() {
    let n = Nodes::start(12340, "bx");
    n.buildx_create();
    let ctx = context(dockerfile());
    let repo = format!("{REGISTRY}/nod/nodes-bx-{}", std::process::id());
    let json = n.path("record.json");
    let out = ci(&n, ctx.path(), &repo, "v1", &json, &[]);
    assert_routed(&n, &out, &json);
    // Used as it is: no difference recorded, not taken for mbx's.
    let r = read_json(&json);
    assert_eq!(r["setup"]["builder"]["action"], "reused");
    assert_eq!(r["setup"]["builder"]["created_by_mbx"], false);
    assert!(tag_exists(&format!("{repo}:v1")));

    // A platform no node's worker lists: named, alone, before any build.
    let out = run({
        let mut c = n.mbx();
        c.args([
            "setup",
            "--platforms",
            "linux/amd64,linux/arm64,linux/s390x",
        ]);
        c
    });
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot build linux/s390x:"), "{err}");
    assert!(!err.contains("cannot build linux/arm64"), "{err}");
}

#[test]
fn mbx_makes_the_builder_from_nodes_and_names_a_stopped_node() {
    let mut n = Nodes::start(12342, "mk");
    let mut extra: Vec<String> = vec!["--driver".into(), "remote".into()];
    for i in 0..2 {
        let p = ["linux/amd64", "linux/arm64"][i];
        extra.extend(["--node".into(), format!("{}={p}", n.endpoint(i))]);
    }
    for o in n.tls_opts() {
        extra.extend(["--driver-opt".into(), o]);
    }
    let ctx = context(dockerfile());
    let repo = format!("{REGISTRY}/nod/nodes-mk-{}", std::process::id());
    let json = n.path("record.json");
    let out = ci(&n, ctx.path(), &repo, "v1", &json, &extra);
    assert_routed(&n, &out, &json);
    assert_eq!(read_json(&json)["setup"]["builder"]["action"], "created");

    // The arm64 node goes away: named with its endpoint within seconds,
    // before any build; nothing tagged.
    n.stop(1);
    let started = Instant::now();
    let out = ci(&n, ctx.path(), &repo, "v2", &n.path("down.json"), &extra);
    let took = started.elapsed();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(took < Duration::from_secs(10), "took {took:?}: {err}");
    assert!(err.contains(&format!("`{}1`", n.builder)), "{err}");
    assert!(err.contains(&n.endpoint(1)), "{err}");
    assert!(!err.contains("building"), "a build started: {err}");
    assert!(!tag_exists(&format!("{repo}:v2")), "a tag moved");
}

/// Two docker-container nodes of one builder on this host's dockerd, each
/// pinned (`buildx create --append --node …`): buildx reaches them itself,
/// so each platform is asked of the node buildx routes it to. Both workers
/// are amd64-first here, so linux/arm64 is emulated on its node — decided
/// per node, and the record names both nodes.
#[test]
fn a_docker_container_builder_with_two_nodes_is_accounted_per_node() {
    require_chain();
    hold_binfmt_shared();
    let dir = tempfile::tempdir().unwrap();
    let name = format!("nod-dc-{}", std::process::id());
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let _ = Command::new("docker")
                .args(["buildx", "rm", &self.0])
                .output();
        }
    }
    let _rm = Rm(name.clone());
    let image = std::env::var("MBX_BUILDKIT_IMAGE")
        .unwrap_or_else(|_| "127.0.0.1:5000/moby/buildkit:local".into());
    for (i, p) in ["linux/amd64", "linux/arm64"].iter().enumerate() {
        let mut c = Command::new("docker");
        c.args([
            "buildx",
            "create",
            "--name",
            &name,
            "--driver",
            "docker-container",
        ]);
        if i > 0 {
            c.arg("--append");
        }
        // One dockerd, two spellings of its socket: buildx refuses an
        // endpoint twice in one builder.
        let endpoint = ["unix:///var/run/docker.sock", "unix:///run/docker.sock"][i];
        c.args(["--node", &format!("{name}{i}"), "--platform", p])
            .args(["--driver-opt", &format!("image={image},network=host")])
            .arg("--buildkitd-config")
            .arg(chain_dir().join("buildkitd.toml"))
            .arg(endpoint);
        let out = c.output().unwrap();
        assert!(out.status.success(), "buildx create: {}", stderr(&out));
    }
    // Made by buildx with a buildkitd config, no config file on mbx's side
    // (a new shell after scripts/demo): used as it is.
    let empty = dir.path().join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let setup = |extra: &[&str]| {
        run({
            let mut c = mbx();
            c.env("MBX_CONFIG", &empty)
                .env("MBX_STATE_DIR", dir.path().join("state"))
                .args(["setup", "--builder", &name])
                .args(extra);
            c
        })
    };
    let o = setup(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains(&format!("{name} reused")),
        "{}",
        stdout(&o)
    );
    // Asked for a setting it lacks: that one difference, nothing else.
    let o = setup(&["--driver-opt", "network=none"]);
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(
        e.contains("driver option network is `host`, wanted `none`"),
        "{e}"
    );
    assert!(
        !e.contains("buildkitd config") && !e.contains("image"),
        "{e}"
    );

    let ctx = context(dockerfile());
    let repo = format!("{REGISTRY}/nod/nodes-dc-{}", std::process::id());
    let json = dir.path().join("record.json");
    let out = run({
        let mut c = mbx();
        c.env("MBX_STATE_DIR", dir.path().join("state"))
            .args(["ci", "--local", "--builder", &name, "--registry", REGISTRY])
            .args(["--image", &repo, "--tag", "v1", "--json"])
            .arg(&json)
            .arg("--context")
            .arg(ctx.path());
        c
    });
    assert!(out.status.success(), "mbx ci: {}", stderr(&out));
    let r = read_json(&json);
    let nodes = r["setup"]["builder"]["nodes"].as_array().unwrap().clone();
    let names: Vec<&str> = nodes.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, [format!("{name}0"), format!("{name}1")], "{nodes:?}");
    let p = |arch: &str| {
        r["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["platform"] == format!("linux/{arch}"))
            .unwrap()
            .clone()
    };
    assert_eq!(p("amd64")["node"], format!("{name}0"));
    assert_eq!(p("arm64")["node"], format!("{name}1"));
    assert_eq!(p("amd64")["emulated"], false);
    assert_eq!(p("arm64")["emulated"], true, "amd64-first worker");
    // The `build` stage ran on the build platform: not a QEMU step.
    assert_eq!(
        r["inputs"]["build_platform_stages"],
        serde_json::json!(["build"])
    );
    let report = stdout(&out);
    // (The table lists only steps that ran slower: timing decides if it shows.)
    if let Some(t) = report.split("SLOWEST UNDER EMULATION").nth(1) {
        let qemu = t.split("SLOWEST STEPS").next().unwrap();
        assert!(!qemu.contains("RUN echo"), "{report}");
    }
}
