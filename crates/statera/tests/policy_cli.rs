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
