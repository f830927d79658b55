//! Reading a PKCS#12 bundle in a child process with CPU and memory limits.
//!
//! A bundle's encrypted contents may name further key derivations (shrouded
//! key bags, secret bags, each with its own PBKDF2 or scrypt parameters) that
//! no scan of the outer DER can see, and a parser library's own limits allow
//! seconds of CPU and a GiB of memory per derivation. So the serving process
//! never parses a tenant's bundle itself: `statera internal-read-pkcs12`
//! (the same binary) does, under `RLIMIT_CPU` ([`CPU_SECONDS`]) and
//! `RLIMIT_AS` ([`MEMORY_BYTES`]), killed past [`WALL`]; whatever stops it
//! is [`CertError::TooCostly`].
//!
//! The protocol is lines on stdout: `ok`, the key (base64 DER), then each
//! certificate (base64 DER), or `err <kind> <detail>`.

use crate::{CertBundle, CertError, MAX_CERTS, from_pkcs12};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::io::{Read as _, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const CPU_SECONDS: u64 = 2;
pub const MEMORY_BYTES: u64 = 512 << 20;
pub const WALL: Duration = Duration::from_secs(5);
/// The largest bundle read (the key manager's payloads are at most 20,000
/// bytes).
pub const MAX_INPUT: usize = 64 << 10;

/// How bundles are read.
#[derive(Debug, Clone)]
pub enum Isolation {
    /// In this process (tests, tools: the input is trusted).
    InProcess,
    /// `exe internal-read-pkcs12` under limits (`statera serve`).
    Subprocess { exe: PathBuf },
}

/// [`from_pkcs12`], isolated as `how` says.
pub fn read_pkcs12(data: &[u8], how: &Isolation) -> Result<CertBundle, CertError> {
    match how {
        Isolation::InProcess => from_pkcs12(data),
        Isolation::Subprocess { exe } => in_child(exe, data),
    }
}

fn too_costly() -> CertError {
    CertError::TooCostly("reading the bundle took more than its share of CPU time or memory".into())
}

fn in_child(exe: &PathBuf, data: &[u8]) -> Result<CertBundle, CertError> {
    if data.len() > MAX_INPUT {
        return Err(CertError::Pkcs12("the bundle is too large".into()));
    }
    let mut cmd = Command::new(exe);
    cmd.arg("internal-read-pkcs12")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_clear();
    // SAFETY: between fork and exec only async-signal-safe calls
    // (setrlimit) are made.
    unsafe {
        cmd.pre_exec(|| {
            limit(libc::RLIMIT_CPU, CPU_SECONDS, CPU_SECONDS + 1)?;
            limit(libc::RLIMIT_AS, MEMORY_BYTES, MEMORY_BYTES)?;
            limit(libc::RLIMIT_CORE, 0, 0)?;
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CertError::Pkcs12(format!("the bundle reader could not be started ({e})")))?;
    let mut stdin = child.stdin.take().expect("piped");
    let input = data.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout
            .by_ref()
            .take((MAX_INPUT * 4) as u64)
            .read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + WALL;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let _ = writer.join();
    let out = reader.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => parse_answer(&out),
        _ => Err(too_costly()),
    }
}

fn limit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> std::io::Result<()> {
    let r = libc::rlimit {
        rlim_cur: soft as libc::rlim_t,
        rlim_max: hard as libc::rlim_t,
    };
    // SAFETY: a plain system call on a stack value.
    if unsafe { libc::setrlimit(resource, &r) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn parse_answer(out: &[u8]) -> Result<CertBundle, CertError> {
    let text = std::str::from_utf8(out).map_err(|_| too_costly())?;
    let mut lines = text.lines();
    match lines.next() {
        Some("ok") => {}
        Some(err) => return Err(decode_error(err)),
        None => return Err(too_costly()),
    }
    let key = lines
        .next()
        .and_then(|l| B64.decode(l).ok())
        .and_then(|k| PrivateKeyDer::try_from(k).ok())
        .ok_or(CertError::UnreadableKey)?;
    let chain: Vec<CertificateDer<'static>> = lines
        .map(|l| B64.decode(l).map(CertificateDer::from))
        .collect::<Result<_, _>>()
        .map_err(|_| CertError::UnreadableCert)?;
    if chain.len() > MAX_CERTS {
        return Err(CertError::TooMany);
    }
    // Checked again here: the child's word is not taken for it.
    crate::checked(chain, key)
}

fn encode_error(e: &CertError) -> String {
    let (kind, detail) = match e {
        CertError::Pkcs12(d) => ("pkcs12", d.clone()),
        CertError::UnreadableCert => ("cert", String::new()),
        CertError::UnreadableKey => ("key", String::new()),
        CertError::NeedsPassphrase => ("passphrase", String::new()),
        CertError::WrongPassphrase => ("wrong-passphrase", String::new()),
        CertError::MismatchedKey => ("mismatch", String::new()),
        CertError::NoHostNames => ("no-names", String::new()),
        CertError::TooCostly(d) => ("costly", d.clone()),
        CertError::TooMany => ("too-many", String::new()),
    };
    format!("err {kind} {}", detail.replace('\n', " "))
}

fn decode_error(line: &str) -> CertError {
    let rest = line.strip_prefix("err ").unwrap_or("");
    let (kind, detail) = rest.split_once(' ').unwrap_or((rest, ""));
    let detail = detail.to_string();
    match kind {
        "pkcs12" => CertError::Pkcs12(detail),
        "cert" => CertError::UnreadableCert,
        "key" => CertError::UnreadableKey,
        "passphrase" => CertError::NeedsPassphrase,
        "wrong-passphrase" => CertError::WrongPassphrase,
        "mismatch" => CertError::MismatchedKey,
        "no-names" => CertError::NoHostNames,
        "too-many" => CertError::TooMany,
        _ => CertError::TooCostly(detail),
    }
}

/// The child's side (`statera internal-read-pkcs12`): a bundle on stdin,
/// the answer on stdout; the exit code is 0 whenever an answer was written.
pub fn child_main() -> i32 {
    let mut data = Vec::new();
    if std::io::stdin()
        .take(MAX_INPUT as u64 + 1)
        .read_to_end(&mut data)
        .is_err()
        || data.len() > MAX_INPUT
    {
        return 2;
    }
    let answer = match from_pkcs12(&data) {
        Ok(b) => {
            let mut s = String::from("ok\n");
            s.push_str(&B64.encode(b.key.secret_der()));
            s.push('\n');
            for c in &b.chain {
                s.push_str(&B64.encode(c.as_ref()));
                s.push('\n');
            }
            s
        }
        Err(e) => encode_error(&e) + "\n",
    };
    match std::io::stdout().write_all(answer.as_bytes()) {
        Ok(()) => 0,
        Err(_) => 2,
    }
}
