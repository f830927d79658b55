//! The architecture's invariants, checked mechanically (see ARCHITECTURE.md, "Invariants").
//!
//! Dependency rules read the resolved graph from `cargo metadata` (normal and
//! build dependencies, transitively; dev-dependencies are not linked into a
//! crate and are ignored). Source rules scan `crates/**/*.rs` with a small
//! lexer that separates code, comments and string literals.

use regex::Regex;
use serde_json::Value;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// The resolved dependency graph

struct Graph {
    /// package id → package name
    names: HashMap<String, String>,
    /// package id → ids of its normal/build dependencies
    deps: HashMap<String, Vec<String>>,
    /// workspace member name → package id
    members: HashMap<String, String>,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/statera has a workspace root two levels up")
        .to_path_buf()
}

fn graph() -> &'static Graph {
    static GRAPH: OnceLock<Graph> = OnceLock::new();
    GRAPH.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let out = Command::new(cargo)
            .args(["metadata", "--format-version", "1"])
            .current_dir(workspace_root())
            .output()
            .expect("running `cargo metadata`");
        assert!(
            out.status.success(),
            "`cargo metadata --format-version 1` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata prints JSON");
        let mut names = HashMap::new();
        for p in meta["packages"].as_array().expect("packages") {
            names.insert(
                p["id"].as_str().unwrap().to_string(),
                p["name"].as_str().unwrap().to_string(),
            );
        }
        let mut members = HashMap::new();
        for id in meta["workspace_members"]
            .as_array()
            .expect("workspace_members")
        {
            let id = id.as_str().unwrap().to_string();
            members.insert(names[&id].clone(), id);
        }
        let mut deps = HashMap::new();
        for node in meta["resolve"]["nodes"].as_array().expect("resolve.nodes") {
            let id = node["id"].as_str().unwrap().to_string();
            let mut out = Vec::new();
            for d in node["deps"].as_array().expect("deps") {
                // kind: null = normal, "build", "dev"
                let linked = d["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds (cargo >= 1.41)")
                    .iter()
                    .any(|k| k["kind"].as_str() != Some("dev"));
                if linked {
                    out.push(d["pkg"].as_str().unwrap().to_string());
                }
            }
            deps.insert(id, out);
        }
        Graph {
            names,
            deps,
            members,
        }
    })
}

/// The chain of package names from workspace crate `from` to the first
/// package whose name `forbidden` accepts, if any (breadth first, so the
/// shortest chain).
fn dependency_path(from: &str, forbidden: &dyn Fn(&str) -> bool) -> Option<Vec<String>> {
    let g = graph();
    let start = g
        .members
        .get(from)
        .unwrap_or_else(|| panic!("{from} is not a workspace member"));
    let mut parent: HashMap<&str, &str> = HashMap::new();
    let mut queue = VecDeque::from([start.as_str()]);
    parent.insert(start, "");
    while let Some(id) = queue.pop_front() {
        if id != start && forbidden(&g.names[id]) {
            let mut chain = vec![g.names[id].clone()];
            let mut cur = parent[id];
            while !cur.is_empty() {
                chain.push(g.names[cur].clone());
                cur = parent[cur];
            }
            chain.reverse();
            return Some(chain);
        }
        for d in g.deps.get(id).map(Vec::as_slice).unwrap_or(&[]) {
            if !parent.contains_key(d.as_str()) {
                parent.insert(d, id);
                queue.push_back(d);
            }
        }
    }
    None
}

fn family(base: &'static str) -> impl Fn(&str) -> bool {
    move |name: &str| name == base || name.strip_prefix(base).is_some_and(|r| r.starts_with('-'))
}

/// Fail with every violation of "`from` must not depend on any of `forbidden`".
fn assert_no_dependency(rule: &str, from: &str, forbidden: &[&'static str]) {
    let mut violations = Vec::new();
    for f in forbidden {
        if let Some(chain) = dependency_path(from, &family(f)) {
            violations.push(format!("  {from} depends on {f}: {}", chain.join(" -> ")));
        }
    }
    assert!(
        violations.is_empty(),
        "architecture rule ({rule}) violated:\n{}",
        violations.join("\n")
    );
}

#[test]
fn a_dataplane_links_neither_sqlx_nor_axum() {
    assert_no_dependency(
        "a: the data plane never links sqlx or axum",
        "statera-dataplane",
        &["sqlx", "axum"],
    );
}

#[test]
fn b_api_links_neither_dataplane_nor_controller() {
    assert_no_dependency(
        "b: the API never links the data plane or the controller",
        "statera-api",
        &["statera-dataplane", "statera-controller"],
    );
}

#[test]
fn k_the_agent_protocol_links_no_store() {
    assert_no_dependency(
        "k: the agent protocol (what an agent process runs) knows no store and no controller",
        "statera-agent",
        &["sqlx", "statera-store", "statera-controller", "statera-api"],
    );
}

#[test]
fn c_controller_does_not_link_axum() {
    assert_no_dependency(
        "c: the controller knows nothing about HTTP serving (no axum)",
        "statera-controller",
        &["axum"],
    );
}

#[test]
fn i_service_links_no_http_stack() {
    assert_no_dependency(
        "i: the service layer knows nothing about HTTP (no axum, no hyper) nor the data plane",
        "statera-service",
        &["axum", "hyper", "statera-dataplane", "statera-controller"],
    );
}

#[test]
fn d_config_and_model_link_no_io_stack() {
    for krate in ["statera-config", "statera-model"] {
        assert_no_dependency(
            "d: statera-config and statera-model never link sqlx, axum or hyper",
            krate,
            &["sqlx", "axum", "hyper"],
        );
    }
}

#[test]
fn g_one_rustls_crypto_provider() {
    let g = graph();
    let present: BTreeSet<&str> = g
        .deps
        .keys()
        .map(|id| g.names[id].as_str())
        .filter(|n| matches!(*n, "ring" | "aws-lc-rs" | "aws-lc-sys"))
        .collect();
    let ring = present.contains("ring");
    let aws = present.contains("aws-lc-rs") || present.contains("aws-lc-sys");
    if ring && aws {
        let mut why = Vec::new();
        for member in g.members.keys() {
            for f in ["ring", "aws-lc-rs", "aws-lc-sys"] {
                if let Some(chain) = dependency_path(member, &|n: &str| n == f) {
                    why.push(format!("  {}", chain.join(" -> ")));
                }
            }
        }
        why.sort();
        why.dedup();
        panic!(
            "architecture rule (g: one rustls crypto provider) violated: the resolved graph has both \
             ring and aws-lc ({present:?}); pick one (rustls default-features = false + one provider feature):\n{}",
            why.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

/// A Rust source file split into code (comments and literals blanked) and
/// string literals (with their line numbers).
struct Lexed {
    code_lines: Vec<String>,
    strings: Vec<(usize, String)>,
}

/// A small lexer, enough to tell code from comments and string literals:
/// `//` and nested `/* */` comments, "…" with escapes, raw r#"…"# strings
/// (b/c prefixes fall out naturally), char literals vs lifetimes.
fn lex(src: &str) -> Lexed {
    let chars: Vec<char> = src.chars().collect();
    let mut code = String::with_capacity(src.len());
    let mut strings = Vec::new();
    let mut line = 1usize;
    let mut i = 0;
    let n = chars.len();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    // Keep line structure in `code`: every skipped newline is written back.
    while i < n {
        let c = chars[i];
        if c == '/' && i + 1 < n && chars[i + 1] == '/' {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && i + 1 < n && chars[i + 1] == '*' {
            let mut depth = 0;
            while i < n {
                if chars[i] == '/' && i + 1 < n && chars[i + 1] == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && i + 1 < n && chars[i + 1] == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                        code.push('\n');
                    }
                    i += 1;
                }
            }
            continue;
        }
        // Raw string: r"…", r#"…"#, br"…", cr"…" (an `r` that does not end another identifier).
        let raw_prefix = i == 0
            || !is_ident(chars[i - 1])
            || (matches!(chars[i - 1], 'b' | 'c') && (i < 2 || !is_ident(chars[i - 2])));
        if c == 'r' && raw_prefix {
            let mut j = i + 1;
            while j < n && chars[j] == '#' {
                j += 1;
            }
            if j < n && chars[j] == '"' {
                let hashes = j - i - 1;
                let closes = |k: usize| {
                    chars[k] == '"' && (1..=hashes).all(|h| chars.get(k + h) == Some(&'#'))
                };
                let start_line = line;
                let mut lit = String::new();
                let mut k = j + 1;
                while k < n && !closes(k) {
                    if chars[k] == '\n' {
                        line += 1;
                        code.push('\n');
                    }
                    lit.push(chars[k]);
                    k += 1;
                }
                strings.push((start_line, lit));
                code.push_str("\"\"");
                i = k + 1 + hashes;
                continue;
            }
        }
        if c == '"' {
            let start_line = line;
            let mut lit = String::new();
            let mut k = i + 1;
            while k < n && chars[k] != '"' {
                if chars[k] == '\\' && k + 1 < n {
                    if chars[k + 1] == '\n' {
                        line += 1;
                        code.push('\n');
                        // A line continuation also skips the next line's leading whitespace.
                        k += 2;
                        while k < n && chars[k].is_whitespace() {
                            if chars[k] == '\n' {
                                line += 1;
                                code.push('\n');
                            }
                            k += 1;
                        }
                        lit.push(' ');
                        continue;
                    }
                    lit.push(match chars[k + 1] {
                        'n' | 't' | 'r' => ' ',
                        other => other,
                    });
                    k += 2;
                    continue;
                }
                if chars[k] == '\n' {
                    line += 1;
                    code.push('\n');
                }
                lit.push(chars[k]);
                k += 1;
            }
            strings.push((start_line, lit));
            code.push_str("\"\"");
            i = k + 1;
            continue;
        }
        if c == '\'' {
            // '\…' is an escaped char literal; 'x' a char literal; anything else a lifetime.
            if i + 1 < n && chars[i + 1] == '\\' {
                let mut k = i + 3;
                while k < n && chars[k] != '\'' {
                    k += 1;
                }
                code.push_str("' '");
                i = k + 1;
                continue;
            }
            if i + 2 < n && chars[i + 2] == '\'' {
                code.push_str("' '");
                i += 3;
                continue;
            }
        }
        if c == '\n' {
            line += 1;
        }
        code.push(c);
        i += 1;
    }
    Lexed {
        code_lines: code.lines().map(str::to_string).collect(),
        strings,
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&p, out);
            }
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

fn rel(p: &Path) -> String {
    p.strip_prefix(workspace_root())
        .unwrap_or(p)
        .display()
        .to_string()
}

fn lexed(p: &Path) -> Lexed {
    let src = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
    lex(&src)
}

/// SQL statements as they appear in a string literal (case-sensitive: SQL is written upper-case
/// here, and prose like "select a pool from the list" must not match).
fn sql_regex() -> Regex {
    Regex::new(
        r"\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bDELETE\s+FROM\b|\bCREATE\s+(TABLE|INDEX|UNIQUE\s+INDEX)\b|\bDROP\s+TABLE\b|\bALTER\s+TABLE\b|\bSELECT\b.*\bFROM\b|\bUPDATE\s+\w+\s+SET\b",
    )
    .unwrap()
}

/// Writing ACTIVE or ERROR: an assignment (`x = …`, not `==`/`!=`/`<=`/`>=`) or a struct field
/// initialiser.
fn settle_regex() -> Regex {
    Regex::new(
        r"(^|[^=!<>])=\s*ProvisioningStatus::(Active|Error)\b|\bprovisioning_status\s*:\s*ProvisioningStatus::(Active|Error)\b",
    )
    .unwrap()
}

#[test]
fn e_only_the_store_has_sql() {
    let root = workspace_root();
    let store_dir = root.join("crates/statera-store");
    let this_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/architecture.rs");
    let sqlx_use = Regex::new(r"\bsqlx\s*::").unwrap();
    let sql = sql_regex();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    assert!(
        files.len() > 20,
        "found only {} .rs files under crates/",
        files.len()
    );
    let mut violations = Vec::new();
    for f in files
        .iter()
        .filter(|f| !f.starts_with(&store_dir) && **f != this_file)
    {
        let lx = lexed(f);
        for (i, l) in lx.code_lines.iter().enumerate() {
            if sqlx_use.is_match(l) {
                violations.push(format!("  {}:{}: uses sqlx: {}", rel(f), i + 1, l.trim()));
            }
        }
        for (line, s) in &lx.strings {
            let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
            if let Some(m) = sql.find(&flat) {
                violations.push(format!(
                    "  {}:{line}: SQL in a string literal: {:?}",
                    rel(f),
                    m.as_str()
                ));
            }
        }
    }
    // SQL files (migrations) belong to the store too.
    let mut sql_files = Vec::new();
    find_ext(&root.join("crates"), "sql", &mut sql_files);
    for f in sql_files.iter().filter(|f| !f.starts_with(&store_dir)) {
        violations.push(format!("  {}: an .sql file outside statera-store", rel(f)));
    }
    assert!(
        violations.is_empty(),
        "architecture rule (e: only crates/statera-store has SQL) violated:\n{}",
        violations.join("\n")
    );
}

fn find_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for p in entries.flatten().map(|e| e.path()) {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if p.is_dir() {
            if name != "target" && !name.starts_with('.') {
                find_ext(&p, ext, out);
            }
        } else if p.extension().and_then(|e| e.to_str()) == Some(ext) {
            out.push(p);
        }
    }
}

#[test]
fn f_api_never_settles_a_status() {
    let root = workspace_root();
    let settle = settle_regex();
    let mut files = Vec::new();
    rust_files(&root.join("crates/statera-api/src"), &mut files);
    assert!(!files.is_empty(), "no sources under crates/statera-api/src");
    let mut violations = Vec::new();
    for f in &files {
        let lx = lexed(f);
        // Join the code so an assignment split over two lines is still seen; report its line.
        let joined = lx.code_lines.join("\n");
        for m in settle.find_iter(&joined) {
            let line = joined[..m.start()].matches('\n').count()
                + 1
                + usize::from(m.as_str().starts_with('\n'));
            violations.push(format!(
                "  {}:{line}: {}",
                rel(f),
                m.as_str().split_whitespace().collect::<Vec<_>>().join(" ")
            ));
        }
    }
    assert!(
        violations.is_empty(),
        "architecture rule (f: only the controller moves objects out of PENDING_*) violated — \
         the API writes ACTIVE/ERROR:\n{}",
        violations.join("\n")
    );
}

/// The load-balancer, network and identity-admin APIs are wire only: every
/// operation of `crates/statera-api/src/{octavia,neutron,keystone/admin}`
/// lives in `statera_service::{octavia,neutron,identity}` (ARCHITECTURE.md,
/// "The service layer"). These files may name the store's types (the image a handler
/// renders from, the transaction it hands the service), never use them to
/// read or write on their own.
const NAMES_STORE_TYPES: &[&str] = &[
    // `State`/`Txn` for the generic wire traits' signatures.
    "crates/statera-api/src/octavia/mod.rs",
    "crates/statera-api/src/neutron/mod.rs",
    // `Record`: an object rendered by its key after the service's write.
    "crates/statera-api/src/octavia/resource.rs",
    // `State`: what a rendering reads (a network's subnets, a port's IPs).
    "crates/statera-api/src/neutron/render.rs",
    // `Txn`: the transaction the Keystone admin handlers hand the service
    // (`service_write`'s signature).
    "crates/statera-api/src/keystone/admin/mod.rs",
];

#[test]
fn j_the_octavia_neutron_and_identity_admin_apis_leave_the_store_and_the_policy_to_the_service() {
    // In code (comments and strings aside): no write of a row, no read of the
    // transaction's tables, no work enqueued, no policy check — a handler
    // calls the service inside `store.write` (or on a snapshot) and renders
    // what it returns. Outside NAMES_STORE_TYPES, not even the store's path.
    let acts =
        Regex::new(r"\btxn\.(put|delete|enqueue|state)\b|\.authorize\(|\ballowed(_on)?\(").unwrap();
    let names = Regex::new(r"\bstatera_store::").unwrap();
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in [
        "crates/statera-api/src/octavia",
        "crates/statera-api/src/neutron",
    ] {
        rust_files(&root.join(dir), &mut files);
    }
    assert!(
        files.len() > 25,
        "found only {} files under the Octavia and Neutron APIs",
        files.len()
    );
    // The built-in Keystone's admin API: its operations are
    // statera_service::identity's.
    let before = files.len();
    rust_files(
        &root.join("crates/statera-api/src/keystone/admin"),
        &mut files,
    );
    assert!(
        files.len() - before >= 9,
        "found only {} files under the built-in Keystone's admin API",
        files.len() - before
    );
    let mut violations = Vec::new();
    for f in &files {
        let name = rel(f);
        let may_name = NAMES_STORE_TYPES.contains(&name.as_str());
        let lx = lexed(f);
        for (i, line) in lx.code_lines.iter().enumerate() {
            let m = acts
                .find(line)
                .or_else(|| (!may_name).then(|| names.find(line)).flatten());
            if let Some(m) = m {
                violations.push(format!("  {name}:{}: {}", i + 1, m.as_str()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "architecture rule (j: the Octavia, Neutron and Keystone admin APIs are wire only; the \
         service reads and writes the store and asks the policy) violated:\n{}",
        violations.join("\n")
    );
}

#[test]
fn h_only_statera_net_enters_a_namespace() {
    let root = workspace_root();
    let net_dir = root.join("crates/statera-net");
    let this_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/architecture.rs");
    // setns(2), unshare(2), or `ip netns exec` spelled out in a command.
    let enter = Regex::new(r"\b(setns|unshare)\s*\(|CLONE_NEWNET").unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    let mut violations = Vec::new();
    for f in files
        .iter()
        .filter(|f| !f.starts_with(&net_dir) && **f != this_file)
    {
        let lx = lexed(f);
        for (i, l) in lx.code_lines.iter().enumerate() {
            if enter.is_match(l) {
                violations.push(format!("  {}:{}: {}", rel(f), i + 1, l.trim()));
            }
        }
        for (line, s) in &lx.strings {
            if s.contains("netns exec") {
                violations.push(format!("  {}:{line}: runs `ip netns exec`", rel(f)));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "architecture rule (h: only crates/statera-net enters a network namespace) violated:\n{}",
        violations.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks' own tools

#[test]
fn lexer_separates_code_comments_and_strings() {
    let src = concat!(
        "// INSERT INTO comment\n",
        "let a = \"DELETE FROM t\"; /* sqlx::query */ let b = 'x';\n",
        "fn f<'a>(s: &'a str) -> char { '\"' }\n",
        "let r = r#\"SELECT id FROM \"t\"\"#; let q = '\\'';\n",
        "let c = \"two \\\n   lines\"; sqlx::query(x);\n",
    );
    let lx = lex(src);
    let strings: Vec<&str> = lx.strings.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        strings,
        ["DELETE FROM t", "SELECT id FROM \"t\"", "two  lines"]
    );
    assert_eq!(
        lx.strings.iter().map(|s| s.0).collect::<Vec<_>>(),
        [2, 4, 5]
    );
    assert_eq!(lx.code_lines.len(), 6);
    assert!(!lx.code_lines[1].contains("sqlx"), "{:?}", lx.code_lines[1]);
    assert!(
        lx.code_lines[2].contains("fn f<'a>(s: &'a str)"),
        "{:?}",
        lx.code_lines[2]
    );
    assert!(
        lx.code_lines[5].contains("sqlx::query"),
        "{:?}",
        lx.code_lines[5]
    );
}

#[test]
fn dependency_walk_finds_known_edges() {
    // The binary links everything: if these are not found, the walk is broken, not the rules.
    for f in ["sqlx", "axum", "statera-dataplane", "statera-controller"] {
        assert!(
            dependency_path("statera", &family(f)).is_some(),
            "expected statera -> … -> {f} in the resolved graph"
        );
    }
    assert!(family("sqlx")("sqlx-core") && family("axum")("axum-core"));
    assert!(!family("sqlx")("sqlxish") && !family("ring")("ringbuf"));
}

#[test]
fn source_patterns_match_what_they_should() {
    let sql = sql_regex();
    for yes in [
        "INSERT INTO lb (id, doc) VALUES (?1, ?2)",
        "SELECT id, doc FROM listener",
        "DELETE FROM pool WHERE id = ?1",
        "CREATE TABLE member (id TEXT PRIMARY KEY)",
        "UPDATE lb SET doc = ?1",
        "INSERT OR REPLACE INTO x VALUES (1)",
    ] {
        assert!(sql.is_match(yes), "should be SQL: {yes}");
    }
    for no in [
        "select a pool from the list",
        "Invalid input for field/attribute delete. Value: 'DELETE'.",
        "SELECT",
        "Provisioning status PENDING_UPDATE: cannot DELETE",
        "ROUND_ROBIN, LEAST_CONNECTIONS, SOURCE_IP",
    ] {
        assert!(!sql.is_match(no), "should not be SQL: {no}");
    }
    let settle = settle_regex();
    for yes in [
        "lb.provisioning_status = ProvisioningStatus::Active;",
        "Member { provisioning_status: ProvisioningStatus::Error, ..m }",
        "let st =\n    ProvisioningStatus::Active;",
    ] {
        assert!(
            settle.is_match(yes),
            "should be a write of ACTIVE/ERROR: {yes}"
        );
    }
    for no in [
        "if pool.provisioning_status != ProvisioningStatus::Active {",
        "if lb.provisioning_status == ProvisioningStatus::Active {",
        "matches!(s, ProvisioningStatus::Active | ProvisioningStatus::Error)",
        "lb.provisioning_status = ProvisioningStatus::PendingUpdate;",
    ] {
        assert!(
            !settle.is_match(no),
            "should not be a write of ACTIVE/ERROR: {no}"
        );
    }
}

/// Invariant: every handler authorizes by rule name through
/// `RequestContext::authorize` / `allowed` (statera-policy's enforcer); no
/// role is tested by hand outside the context and the policy crate.
///
/// One exception, named here: the token-subject rule of `/v3/auth/tokens`
/// (validate, check, revoke) in `keystone/auth.rs`, which is to move into
/// statera-policy's `identity:*` defaults like the admin API's rules.
#[test]
fn i_handlers_authorize_by_rule_name() {
    let root = workspace_root();
    let by_hand = Regex::new(
        r"\.(has_role|check_read|check_write|check_admin|check_quota_admin|can_read|can_write|can_read_neutron|can_read_global)\s*\(",
    )
    .unwrap();
    let mut files = Vec::new();
    rust_files(&root.join("crates/statera-api/src"), &mut files);
    rust_files(&root.join("crates/statera/src"), &mut files);
    assert!(!files.is_empty());
    let exempt = [
        root.join("crates/statera-api/src/context.rs"),
        root.join("crates/statera-api/src/keystone/auth.rs"),
    ];
    let mut violations = Vec::new();
    for f in files.iter().filter(|f| !exempt.contains(f)) {
        for (i, line) in lexed(f).code_lines.iter().enumerate() {
            if let Some(m) = by_hand.find(line) {
                violations.push(format!("  {}:{}: {}", rel(f), i + 1, m.as_str()));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "architecture rule (i: handlers authorize by rule name through \
         RequestContext::authorize) violated — roles checked by hand:\n{}",
        violations.join("\n")
    );
    assert!(by_hand.is_match("if ctx.has_role(\"admin\") {"));
    assert!(!by_hand.is_match("ctx.authorize(\"os_load-balancer_api:pool:get_one\", &p)"));
}
