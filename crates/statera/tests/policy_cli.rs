//! `statera policy list`: the effective rules, from the real binary; a bad
//! policy file stops it (and `statera serve`) with the reason.

use std::process::Command;

fn statera() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_statera"));
    c.env_remove("STATERA_POLICY_FILE");
    c
}

#[test]
fn policy_list_prints_defaults_and_marks_overrides() {
    let out = statera().args(["policy", "list"]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(
            "\"os_load-balancer_api:loadbalancer:get_one\": \"rule:load-balancer:read\"\n"
        )
    );
    assert!(text.contains("\"create_port:fixed_ips:ip_address\": "));
    assert!(!text.contains("# overridden"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "\"load-balancer:read\": \"role:auditor\"\n").unwrap();
    let out = statera()
        .args(["policy", "list", "--policy-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("\"load-balancer:read\": \"role:auditor\"  # overridden\n"));
    assert_eq!(text.matches("# overridden").count(), 1);

    // The same file through the environment.
    let out = statera()
        .args(["policy", "list"])
        .env("STATERA_POLICY_FILE", &file)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(out.stdout)
            .unwrap()
            .matches("# overridden")
            .count(),
        1
    );
}

#[test]
fn a_bad_policy_file_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, "\"load-balancer:read\": \"rule:nope\"\n").unwrap();
    let out = statera()
        .args(["policy", "list", "--policy-file"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("load-balancer:read") && err.contains("unknown rule \"nope\""),
        "{err}"
    );

    // `statera serve` refuses to start on it (before serving anything).
    let data = dir.path().join("data");
    let out = statera()
        .args(["serve", "--listen", "127.0.0.1:0", "--policy-file"])
        .arg(&file)
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("unknown rule \"nope\""), "{err}");
}

/// A `statera serve` child, killed and reaped when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start `statera serve` (noauth, no default roles) on a free loopback port
/// with `extra` arguments; its address once it answers.
fn serve(data: &std::path::Path, extra: &[&std::ffi::OsStr]) -> (Server, std::net::SocketAddr) {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let child = statera()
        .args(["serve", "--auth", "noauth", "--listen", &addr.to_string()])
        .arg("--data-dir")
        .arg(data)
        .args(["--host-subnet", "127.171.0.0/24"])
        .args(extra)
        .env("STATERA_NOAUTH_DEFAULT_ROLES", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "statera serve did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    (server, addr)
}

/// The status of `GET path` as project `project` with no roles.
fn status_of(addr: std::net::SocketAddr, path: &str, project: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nX-Project-Id: {project}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {out:?}"))
}

#[test]
fn serve_enforces_the_policy_file_over_real_sockets() {
    let dir = tempfile::tempdir().unwrap();
    let project = "d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4";
    // Defaults: a caller without roles reads nothing.
    {
        let (_server, addr) = serve(&dir.path().join("a"), &[]);
        assert_eq!(status_of(addr, "/v2/lbaas/loadbalancers", project), 403);
    }
    // Octavia's legacy "owner or admin" file: its own project's objects it may.
    let legacy = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../statera-policy/tests/legacy-owner-or-admin.yaml");
    let (_server, addr) = serve(
        &dir.path().join("b"),
        &["--policy-file".as_ref(), legacy.as_os_str()],
    );
    assert_eq!(status_of(addr, "/v2/lbaas/loadbalancers", project), 200);
    assert_eq!(
        status_of(addr, &format!("/v2/lbaas/quotas/{project}"), project),
        200
    );
    // … but not the global view, which stays the admin's.
    assert_eq!(
        status_of(addr, "/v2/lbaas/loadbalancers?project_id=other", project),
        403
    );
}
