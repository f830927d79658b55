//! The oslo.policy check language: parsing a check string into a [`Check`]
//! tree and evaluating it against credentials and a target.
//!
//! Grammar (as oslo.policy reads it): checks separated by whitespace, joined
//! with `and`/`or` (keywords case-insensitive), negated with `not`, grouped
//! with parentheses; `not` binds tighter than `and`, `and` tighter than `or`.
//! A check is `@` (always), `!` (never), `rule:NAME`, `role:NAME` (roles
//! compared case-insensitively), or `KEY:MATCH` — MATCH is a literal or a
//! `%(target_key)s` substitution from the target, compared with the
//! credential KEY (credentials are flat; `roles`, a list, matches a member). A
//! literal KEY (`True:%(x)s`, `'abc':%(x)s`) compares the literal itself.
//! Neutron's `field:RESOURCE:ATTR=VALUE` reads the target's ATTR. An empty
//! check string means "always".

use std::collections::BTreeMap;

/// A parsed check string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    True,
    False,
    Rule(String),
    Role(String),
    /// `key:match` against the credentials.
    Generic {
        key: String,
        matcher: String,
    },
    /// Neutron's `field:resource:attr=value` against the target.
    Field {
        attr: String,
        value: FieldValue,
    },
    And(Vec<Check>),
    Or(Vec<Check>),
    Not(Box<Check>),
}

/// The right side of a field check: a value, or (`=~`) a regular expression.
#[derive(Debug, Clone)]
pub enum FieldValue {
    Equals(String),
    Matches(regex::Regex),
}

impl PartialEq for FieldValue {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (FieldValue::Equals(a), FieldValue::Equals(b)) => a == b,
            (FieldValue::Matches(a), FieldValue::Matches(b)) => a.as_str() == b.as_str(),
            _ => false,
        }
    }
}
impl Eq for FieldValue {}

/// Why a check string cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

/// The caller's side: what oslo.policy calls the credentials.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// Flat credential values (`user_id`, `project_id`, `domain_id`,
    /// `system_scope`, `is_admin_project`, `is_admin`, …).
    pub values: BTreeMap<String, String>,
    /// Role names, lowercase.
    pub roles: Vec<String>,
}

/// The object's side: a small map (`project_id`, `network:project_id`,
/// `shared`, …). Values are strings; booleans are `True`/`False` as Python
/// prints them.
pub type Target = BTreeMap<String, String>;

/// Resolves `rule:NAME` during evaluation.
pub trait RuleLookup {
    fn check(&self, name: &str) -> Option<&Check>;
}

/// Rules nest at most this deep (a cycle is refused at load; this guards
/// evaluation anyway).
const MAX_DEPTH: usize = 64;

impl Check {
    pub fn parse(s: &str) -> Result<Check, ParseError> {
        let tokens = tokenize(s);
        if tokens.is_empty() {
            return Ok(Check::True);
        }
        let mut p = Parser { tokens, pos: 0 };
        let c = p.or()?;
        if p.pos != p.tokens.len() {
            return Err(ParseError(format!(
                "unexpected {:?} in check string {s:?}",
                p.tokens[p.pos].text()
            )));
        }
        Ok(c)
    }

    /// Every `rule:NAME` this check refers to (directly).
    pub fn references(&self, out: &mut Vec<String>) {
        match self {
            Check::Rule(n) => out.push(n.clone()),
            Check::And(v) | Check::Or(v) => v.iter().for_each(|c| c.references(out)),
            Check::Not(c) => c.references(out),
            _ => {}
        }
    }

    pub fn eval(&self, target: &Target, creds: &Credentials, rules: &dyn RuleLookup) -> bool {
        self.eval_at(target, creds, rules, 0)
    }

    fn eval_at(&self, t: &Target, c: &Credentials, rules: &dyn RuleLookup, depth: usize) -> bool {
        if depth > MAX_DEPTH {
            return false;
        }
        match self {
            Check::True => true,
            Check::False => false,
            Check::Rule(name) => rules
                .check(name)
                .is_some_and(|r| r.eval_at(t, c, rules, depth + 1)),
            // Credentials carry roles lowercase (`Enforcer::credentials`).
            Check::Role(m) => substitute(m, t).is_some_and(|role| {
                let role = role.to_lowercase();
                c.roles.contains(&role)
            }),
            Check::Generic { key, matcher } => {
                let Some(m) = substitute(matcher, t) else {
                    return false;
                };
                if let Some(lit) = literal(key) {
                    return m == lit;
                }
                if key == "roles" {
                    // A list credential: membership, as oslo tests it.
                    return c.roles.contains(&m);
                }
                c.values.get(key).is_some_and(|v| *v == m)
            }
            Check::Field { attr, value } => t.get(attr).is_some_and(|v| match value {
                FieldValue::Equals(x) => v == x || (is_bool(x) && v.eq_ignore_ascii_case(x)),
                FieldValue::Matches(re) => re.is_match(v),
            }),
            Check::And(v) => v.iter().all(|x| x.eval_at(t, c, rules, depth + 1)),
            Check::Or(v) => v.iter().any(|x| x.eval_at(t, c, rules, depth + 1)),
            Check::Not(x) => !x.eval_at(t, c, rules, depth + 1),
        }
    }
}

fn is_bool(v: &str) -> bool {
    v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false")
}

/// A literal on the left of `:` (oslo evaluates it as a Python literal):
/// `True`, `False`, a number or a quoted string.
fn literal(key: &str) -> Option<String> {
    if key == "True" || key == "False" || key.parse::<f64>().is_ok() {
        return Some(key.to_string());
    }
    let b = key.as_bytes();
    if b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0] {
        return Some(key[1..key.len() - 1].to_string());
    }
    None
}

/// `%(key)s` substitutions from the target; `None` when a key is missing
/// (oslo: the check fails).
fn substitute(m: &str, t: &Target) -> Option<String> {
    let mut out = String::new();
    let mut rest = m;
    while let Some(i) = rest.find("%(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find(")s")?;
        out.push_str(t.get(&after[..end])?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Open,
    Close,
    And,
    Or,
    Not,
    Check(String),
}

impl Token {
    fn text(&self) -> &str {
        match self {
            Token::Open => "(",
            Token::Close => ")",
            Token::And => "and",
            Token::Or => "or",
            Token::Not => "not",
            Token::Check(s) => s,
        }
    }
}

/// oslo's tokenizer: split on whitespace, peel parentheses off both ends of
/// each word.
fn tokenize(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    for word in s.split_whitespace() {
        let mut w = word;
        while let Some(r) = w.strip_prefix('(') {
            out.push(Token::Open);
            w = r;
        }
        let mut closes = 0;
        while let Some(r) = w.strip_suffix(')') {
            closes += 1;
            w = r;
        }
        if !w.is_empty() {
            out.push(match w.to_ascii_lowercase().as_str() {
                "and" => Token::And,
                "or" => Token::Or,
                "not" => Token::Not,
                _ => Token::Check(w.to_string()),
            });
        }
        out.extend(std::iter::repeat_n(Token::Close, closes));
    }
    out
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn or(&mut self) -> Result<Check, ParseError> {
        let mut v = vec![self.and()?];
        while self.peek() == Some(&Token::Or) {
            self.pos += 1;
            v.push(self.and()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Check::Or(v)
        })
    }

    fn and(&mut self) -> Result<Check, ParseError> {
        let mut v = vec![self.not()?];
        while self.peek() == Some(&Token::And) {
            self.pos += 1;
            v.push(self.not()?);
        }
        Ok(if v.len() == 1 {
            v.remove(0)
        } else {
            Check::And(v)
        })
    }

    fn not(&mut self) -> Result<Check, ParseError> {
        if self.peek() == Some(&Token::Not) {
            self.pos += 1;
            return Ok(Check::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Check, ParseError> {
        let Some(tok) = self.peek().cloned() else {
            return Err(ParseError(
                "check string ends where a check is expected".into(),
            ));
        };
        self.pos += 1;
        match tok {
            Token::Open => {
                let c = self.or()?;
                if self.peek() != Some(&Token::Close) {
                    return Err(ParseError("unbalanced parenthesis".into()));
                }
                self.pos += 1;
                Ok(c)
            }
            Token::Check(s) => parse_check(&s),
            other => Err(ParseError(format!(
                "{:?} where a check is expected",
                other.text()
            ))),
        }
    }
}

fn parse_check(s: &str) -> Result<Check, ParseError> {
    match s {
        "@" => return Ok(Check::True),
        "!" => return Ok(Check::False),
        _ => {}
    }
    let Some((kind, m)) = s.split_once(':') else {
        return Err(ParseError(format!(
            "{s:?} is not a check (expected @, !, or KIND:MATCH)"
        )));
    };
    if m.is_empty() || kind.is_empty() {
        return Err(ParseError(format!("{s:?}: empty kind or match")));
    }
    Ok(match kind {
        "rule" => Check::Rule(m.to_string()),
        "role" => Check::Role(m.to_string()),
        "field" => {
            let (path, value) = m.split_once('=').ok_or_else(|| {
                ParseError(format!("{s:?}: a field check is field:RESOURCE:ATTR=VALUE"))
            })?;
            let attr = path.split_once(':').map_or(path, |(_, a)| a);
            let value = match value.strip_prefix('~') {
                Some(re) => FieldValue::Matches(
                    regex::Regex::new(re)
                        .map_err(|e| ParseError(format!("{s:?}: bad regular expression: {e}")))?,
                ),
                None => FieldValue::Equals(value.to_string()),
            };
            Check::Field {
                attr: attr.to_string(),
                value,
            }
        }
        "http" | "https" => {
            return Err(ParseError(format!(
                "{s:?}: remote (http) checks are not supported"
            )));
        }
        _ => Check::Generic {
            key: kind.to_string(),
            matcher: m.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoRules;
    impl RuleLookup for NoRules {
        fn check(&self, _: &str) -> Option<&Check> {
            None
        }
    }

    fn creds(project: &str, roles: &[&str]) -> Credentials {
        let mut c = Credentials::default();
        c.values.insert("project_id".into(), project.into());
        c.values.insert("is_admin".into(), "False".into());
        c.roles = roles.iter().map(|r| r.to_string()).collect();
        c
    }

    fn eval(s: &str, project: &str, roles: &[&str]) -> bool {
        let t: Target = [("project_id".to_string(), "p1".to_string())].into();
        Check::parse(s)
            .unwrap()
            .eval(&t, &creds(project, roles), &NoRules)
    }

    #[test]
    fn precedence_and_parentheses() {
        assert!(eval("role:a or role:b and role:c", "x", &["a"]));
        assert!(!eval("(role:a or role:b) and role:c", "x", &["a"]));
        assert!(eval("not role:a and role:b", "x", &["b"]));
        assert!(eval("NOT (role:a) AND role:b", "x", &["b"]));
        assert!(eval("((role:b))", "x", &["b"]));
    }

    #[test]
    fn owner_roles_and_literals() {
        assert!(eval("project_id:%(project_id)s", "p1", &[]));
        assert!(!eval("project_id:%(project_id)s", "p2", &[]));
        assert!(!eval("project_id:%(missing)s", "p1", &[]));
        assert!(eval("role:Member", "x", &["member"]));
        assert!(eval("is_admin:False", "x", &[]));
        assert!(!eval("is_admin:True", "x", &[]));
        assert!(eval("'p1':%(project_id)s", "x", &[]));
        assert!(eval("roles:member", "x", &["member"]) && !eval("roles:Member", "x", &["member"]));
        assert!(eval("@", "x", &[]) && !eval("!", "x", &[]) && eval("", "x", &[]));
    }

    #[test]
    fn bad_strings_are_refused() {
        for s in [
            "role:a or",
            "(role:a",
            "role:a)",
            "and role:a",
            "nocolon",
            "http://x",
        ] {
            assert!(Check::parse(s).is_err(), "{s}");
        }
    }
}
