//! Authorization by rule name, as oslo.policy does it for Octavia and
//! Neutron: [`Check`] parses and evaluates the rule language, [`defaults`]
//! holds both services' default rules by their real names, and [`Enforcer`]
//! is the effective rule set (defaults, overridden by an operator's policy
//! file) the API asks `enforce(rule, target, caller)`.

pub mod check;
pub mod defaults;

pub use check::{Check, Credentials, ParseError, Target};
pub use defaults::Service;

use statera_model::identity::Caller;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a policy cannot be loaded (the server refuses to start).
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("policy file {path}: {reason}")]
    Syntax { path: PathBuf, reason: String },
    #[error("policy rule {rule:?}: {reason}")]
    Rule { rule: String, reason: String },
}

/// One rule of the effective set.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub check_str: String,
    pub check: Check,
    /// `None` for a rule only the policy file defines.
    pub service: Option<Service>,
    /// Whether the policy file replaced (or added) it.
    pub overridden: bool,
}

/// The effective rules.
#[derive(Debug, Clone)]
pub struct Enforcer {
    rules: BTreeMap<String, Rule>,
}

impl check::RuleLookup for Enforcer {
    fn check(&self, name: &str) -> Option<&Check> {
        self.rules.get(name).map(|r| &r.check)
    }
}

/// Keystone's default implied roles (`admin` ⇒ `manager` ⇒ `member` ⇒
/// `reader`): a Keystone token lists them already; `noauth` headers may not.
const IMPLIED: &[(&str, &str)] = &[
    ("admin", "manager"),
    ("manager", "member"),
    ("member", "reader"),
];

impl Enforcer {
    /// Octavia's and Neutron's defaults.
    pub fn defaults() -> Enforcer {
        let rules = defaults::all()
            .into_iter()
            .map(|(service, name, check_str)| {
                let check =
                    Check::parse(&check_str).unwrap_or_else(|e| panic!("default rule {name}: {e}"));
                let rule = Rule {
                    name: name.clone(),
                    check_str,
                    check,
                    service: Some(service),
                    overridden: false,
                };
                (name, rule)
            })
            .collect();
        let e = Enforcer { rules };
        e.validate()
            .expect("default rules refer only to known rules");
        e
    }

    /// The defaults, overridden by the operator's policy file when given.
    pub fn load(path: Option<&Path>) -> Result<Enforcer, PolicyError> {
        let mut e = Enforcer::defaults();
        if let Some(path) = path {
            let text = std::fs::read_to_string(path).map_err(|source| PolicyError::Read {
                path: path.to_path_buf(),
                source,
            })?;
            let overrides = parse_file(&text).map_err(|reason| PolicyError::Syntax {
                path: path.to_path_buf(),
                reason,
            })?;
            e.override_with(overrides)?;
        }
        Ok(e)
    }

    /// Replace or add rules (name → check string); refused when a check
    /// string does not parse or refers to an unknown rule.
    pub fn override_with(&mut self, overrides: Vec<(String, String)>) -> Result<(), PolicyError> {
        for (name, check_str) in overrides {
            let check = Check::parse(&check_str).map_err(|e| PolicyError::Rule {
                rule: name.clone(),
                reason: e.0,
            })?;
            let service = self.rules.get(&name).and_then(|r| r.service);
            self.rules.insert(
                name.clone(),
                Rule {
                    name,
                    check_str,
                    check,
                    service,
                    overridden: true,
                },
            );
        }
        self.validate()
    }

    /// Every `rule:` reference names a rule, and no rule refers to itself
    /// through others.
    fn validate(&self) -> Result<(), PolicyError> {
        for rule in self.rules.values() {
            let mut refs = Vec::new();
            rule.check.references(&mut refs);
            if let Some(missing) = refs.iter().find(|r| !self.rules.contains_key(*r)) {
                return Err(PolicyError::Rule {
                    rule: rule.name.clone(),
                    reason: format!("refers to unknown rule {missing:?}"),
                });
            }
        }
        // Cycles: depth-first search with colours.
        let mut state: BTreeMap<&str, u8> = BTreeMap::new();
        for name in self.rules.keys() {
            self.visit(name, &mut state)?;
        }
        Ok(())
    }

    fn visit<'a>(
        &'a self,
        name: &'a str,
        state: &mut BTreeMap<&'a str, u8>,
    ) -> Result<(), PolicyError> {
        match state.get(name) {
            Some(2) => return Ok(()),
            Some(1) => {
                return Err(PolicyError::Rule {
                    rule: name.to_string(),
                    reason: "refers to itself (a cycle of rule: references)".into(),
                });
            }
            _ => {}
        }
        state.insert(name, 1);
        let mut refs = Vec::new();
        self.rules[name].check.references(&mut refs);
        for r in &refs {
            let (key, _) = self.rules.get_key_value(r.as_str()).expect("validated");
            self.visit(key, state)?;
        }
        state.insert(name, 2);
        Ok(())
    }

    pub fn knows(&self, rule: &str) -> bool {
        self.rules.contains_key(rule)
    }

    /// The effective rules as `statera policy list` prints them: one
    /// `"name": "check string"` line per rule, by name, an overridden one
    /// followed by `  # overridden` (the output is itself a policy file).
    pub fn listing(&self) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        let mut out = String::new();
        for r in self.rules.values() {
            out.push_str(&quote(&r.name));
            out.push_str(": ");
            out.push_str(&quote(&r.check_str));
            if r.overridden {
                out.push_str("  # overridden");
            }
            out.push('\n');
        }
        out
    }

    /// The effective rules, by name.
    pub fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.rules.values()
    }

    /// The credentials oslo.policy would build for `caller`: its ids, scope,
    /// roles (with Keystone's default implications), and `is_admin` =
    /// `context_is_admin` (as Octavia's and Neutron's contexts compute it).
    pub fn credentials(&self, caller: &Caller) -> Credentials {
        let mut roles: Vec<String> = caller.roles.iter().map(|r| r.to_lowercase()).collect();
        let mut i = 0;
        while i < roles.len() {
            for (from, to) in IMPLIED {
                if roles[i] == *from && !roles.iter().any(|r| r == to) {
                    roles.push(to.to_string());
                }
            }
            i += 1;
        }
        let mut values = BTreeMap::new();
        let mut put = |k: &str, v: Option<&String>| {
            if let Some(v) = v {
                values.insert(k.to_string(), v.clone());
            }
        };
        put("user_id", caller.user_id.as_ref());
        put("project_id", caller.project_id.as_ref());
        put("tenant_id", caller.project_id.as_ref());
        put("domain_id", caller.domain_id.as_ref());
        put("user_domain_id", caller.user_domain_id.as_ref());
        put("project_domain_id", caller.project_domain_id.as_ref());
        put("system_scope", caller.system_scope.as_ref());
        values.insert("is_admin_project".into(), py_bool(caller.is_admin_project));
        let mut creds = Credentials { values, roles };
        let admin = self.eval("context_is_admin", &Target::new(), &creds);
        creds.values.insert("is_admin".into(), py_bool(admin));
        creds
    }

    fn eval(&self, rule: &str, target: &Target, creds: &Credentials) -> bool {
        self.rules
            .get(rule)
            .is_some_and(|r| r.check.eval(target, creds, self))
    }

    /// Whether `rule` allows `creds` on `target`. An unknown rule allows
    /// nothing.
    pub fn enforce(&self, rule: &str, target: &Target, creds: &Credentials) -> bool {
        self.eval(rule, target, creds)
    }

    /// [`Enforcer::enforce`] for a caller.
    pub fn enforce_caller(&self, rule: &str, target: &Target, caller: &Caller) -> bool {
        self.enforce(rule, target, &self.credentials(caller))
    }
}

fn py_bool(b: bool) -> String {
    if b { "True" } else { "False" }.to_string()
}

/// A policy file: JSON (an object of strings) or YAML (a flat mapping of
/// rule names to check strings, plain or quoted, with comments) — the form
/// `oslopolicy-sample-generator` writes and operators edit.
pub fn parse_file(text: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') {
        let map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))?;
        return map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => Ok((k, s)),
                other => Err(format!(
                    "rule {k:?}: the check must be a string, not {other}"
                )),
            })
            .collect();
    }
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = raw.trim_end();
        let body = line.trim_start();
        if body.is_empty() || body.starts_with('#') || body == "---" {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            return Err(format!(
                "line {line_no}: only a flat mapping of rule names to check strings is understood"
            ));
        }
        let (key, rest) = yaml_scalar(body, true).map_err(|e| format!("line {line_no}: {e}"))?;
        let rest = rest.trim_start();
        let Some(rest) = rest.strip_prefix(':') else {
            return Err(format!(
                "line {line_no}: expected \"rule name\": \"check string\""
            ));
        };
        let (value, tail) =
            yaml_scalar(rest.trim_start(), false).map_err(|e| format!("line {line_no}: {e}"))?;
        let tail = tail.trim_start();
        if !(tail.is_empty() || tail.starts_with('#')) {
            return Err(format!(
                "line {line_no}: unexpected {tail:?} after the check string"
            ));
        }
        if out.iter().any(|(k, _)| *k == key) {
            return Err(format!("line {line_no}: rule {key:?} is given twice"));
        }
        out.push((key, value));
    }
    Ok(out)
}

/// One YAML scalar at the start of `s`: single-quoted (`''` escapes a
/// quote), double-quoted (`\"` and `\\` escapes), or plain (a key ends at
/// `: `; a value at ` #`). Returns the scalar and the rest.
fn yaml_scalar(s: &str, is_key: bool) -> Result<(String, &str), String> {
    if let Some(body) = s.strip_prefix('\'') {
        let mut out = String::new();
        let mut chars = body.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if let Some((_, '\'')) = chars.peek() {
                    chars.next();
                    out.push('\'');
                } else {
                    return Ok((out, &body[i + 1..]));
                }
            } else {
                out.push(c);
            }
        }
        return Err("unterminated single-quoted string".into());
    }
    if let Some(body) = s.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = body.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => return Ok((out, &body[i + 1..])),
                '\\' => match chars.next() {
                    Some((_, '"')) => out.push('"'),
                    Some((_, '\\')) => out.push('\\'),
                    Some((_, other)) => return Err(format!("unsupported escape \\{other}")),
                    None => return Err("unterminated double-quoted string".into()),
                },
                c => out.push(c),
            }
        }
        return Err("unterminated double-quoted string".into());
    }
    if s.starts_with(['[', '{', '|', '>', '&', '*', '!']) {
        return Err(format!("unsupported YAML {s:?} (quote the check string)"));
    }
    let end = if is_key {
        s.find(": ")
            .or_else(|| s.strip_suffix(':').map(|x| x.len()))
    } else {
        s.find(" #")
    }
    .unwrap_or(s.len());
    Ok((s[..end].trim_end().to_string(), &s[end..]))
}
