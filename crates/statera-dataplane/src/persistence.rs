//! Session persistence: sending a client back to the member it had.
//!
//! Three kinds, as Octavia names them (`PoolConfig::session_persistence`):
//!
//! - **`SOURCE_IP`**: a stick table from the client's IP to a member. Works on
//!   every listener (L4 per connection, HTTP per request).
//! - **`HTTP_COOKIE`** (HTTP listeners): the proxy inserts its own cookie,
//!   `SRV=<member id>; Path=/`, into a response when the request did not
//!   carry one naming the member that served it, and sends requests carrying
//!   it to that member. The member id is what Octavia's HAProxy provider
//!   puts there too (`cookie SRV insert indirect nocache`): opaque, and it
//!   says nothing of the member's address. The cookie is taken out of the
//!   request before it reaches the member (`indirect`), and a response that
//!   gets it is marked `Cache-Control: private` (`nocache`) so a shared
//!   cache does not hand one client's cookie to others. Nothing is stored:
//!   the cookie is the table.
//! - **`APP_COOKIE`** (HTTP listeners): the application's own session cookie
//!   (`cookie_name`). Its values are learnt from the members' `Set-Cookie`
//!   and from the clients' `Cookie` (a value the proxy has not seen yet sticks
//!   to the member chosen for it), into a stick table from value to member.
//!
//! On listeners that are not HTTP, the cookie kinds have nothing to read and
//! the pool balances as if without persistence (as HAProxy in TCP mode).
//!
//! Stick tables hold at most [`MAX_ENTRIES`] entries; an entry expires after
//! `persistence_timeout` seconds without use (default
//! [`DEFAULT_IDLE_TIMEOUT`]), and every request or connection that follows it
//! refreshes it. A full table first drops expired entries, then the least
//! recently used eighth. Entries name members by id: a table survives a new
//! config of its pool (while the persistence kind and cookie name stay),
//! entries of members that left are dropped then, and a remembered member
//! that cannot take the client (down, disabled, weight 0, a backup while a
//! primary is usable, or failing to connect) gives way to the algorithm's
//! choice, which is remembered instead.

use hyper::header::{self, HeaderMap, HeaderValue};
use statera_config::SessionPersistenceConfig;
use statera_model::SessionPersistenceType;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;

/// How long an unused stick table entry lasts when the pool does not say
/// (`persistence_timeout`): long enough for a user's session with pauses,
/// short enough that a table of departed clients empties.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Entries per stick table: Octavia's HAProxy provider sizes its tables
/// `10k`; the same here, so both providers forget clients alike under load.
pub const MAX_ENTRIES: usize = 10 * 1024;

/// Longest application cookie value kept, in bytes; longer values are cut
/// (as HAProxy's `len` on string tables), so a client cannot make entries
/// arbitrarily large.
pub const MAX_APP_COOKIE_LEN: usize = 256;

/// The cookie the proxy inserts for `HTTP_COOKIE` (the name Octavia's HAProxy
/// provider uses).
pub const HTTP_COOKIE_NAME: &str = "SRV";

/// A pool's persistence, carried from one config to the next.
#[derive(Debug)]
pub enum Persistence {
    SourceIp(StickTable<IpAddr>),
    HttpCookie,
    AppCookie {
        name: String,
        table: StickTable<Box<str>>,
    },
}

/// What one request (or L4 connection) carries that persistence reads.
#[derive(Debug, Default)]
pub struct Affinity {
    /// The member the client is remembered with, if any.
    pub remembered: Option<Uuid>,
    key: StickKey,
}

#[derive(Debug, Default)]
enum StickKey {
    #[default]
    None,
    Ip(IpAddr),
    /// An application cookie value the request carried.
    AppCookie(Box<str>),
}

impl Persistence {
    /// The persistence for `config`, reusing `prev` (the pool's previous
    /// persistence) when it is of the same kind, without the entries of
    /// members not in `members`.
    pub fn build(
        config: Option<&SessionPersistenceConfig>,
        prev: Option<&std::sync::Arc<Persistence>>,
        members: &HashSet<Uuid>,
    ) -> Option<std::sync::Arc<Persistence>> {
        let config = config?;
        let timeout = config
            .persistence_timeout
            .filter(|s| *s > 0)
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_IDLE_TIMEOUT);
        let reusable = prev.filter(|p| match (&***p, config.kind) {
            (Persistence::SourceIp(_), SessionPersistenceType::SourceIp) => true,
            (Persistence::HttpCookie, SessionPersistenceType::HttpCookie) => true,
            (Persistence::AppCookie { name, .. }, SessionPersistenceType::AppCookie) => {
                config.cookie_name.as_deref() == Some(name.as_str())
            }
            _ => false,
        });
        if let Some(prev) = reusable {
            prev.retain_members(members);
            prev.set_timeout(timeout);
            return Some(prev.clone());
        }
        let persistence = match config.kind {
            SessionPersistenceType::SourceIp => Persistence::SourceIp(StickTable::new(timeout)),
            SessionPersistenceType::HttpCookie => Persistence::HttpCookie,
            SessionPersistenceType::AppCookie => {
                // Octavia requires a cookie name for APP_COOKIE; without one
                // there is nothing to follow.
                let name = config.cookie_name.clone().filter(|n| !n.is_empty())?;
                Persistence::AppCookie {
                    name,
                    table: StickTable::new(timeout),
                }
            }
        };
        Some(std::sync::Arc::new(persistence))
    }

    fn retain_members(&self, members: &HashSet<Uuid>) {
        match self {
            Persistence::SourceIp(table) => table.retain_members(members),
            Persistence::AppCookie { table, .. } => table.retain_members(members),
            Persistence::HttpCookie => {}
        }
    }

    fn set_timeout(&self, timeout: Duration) {
        match self {
            Persistence::SourceIp(table) => table.set_timeout(timeout),
            Persistence::AppCookie { table, .. } => table.set_timeout(timeout),
            Persistence::HttpCookie => {}
        }
    }

    /// What a request or connection from `client` carries: `headers` are the
    /// request's on HTTP listeners, `None` on L4 listeners.
    pub fn affinity(&self, client: IpAddr, headers: Option<&HeaderMap>, now: Instant) -> Affinity {
        match self {
            Persistence::SourceIp(table) => {
                let ip = client.to_canonical();
                Affinity {
                    remembered: table.get(&ip, now),
                    key: StickKey::Ip(ip),
                }
            }
            Persistence::HttpCookie => Affinity {
                remembered: headers
                    .and_then(|h| request_cookie(h, HTTP_COOKIE_NAME))
                    .and_then(|v| Uuid::try_parse(v).ok()),
                key: StickKey::None,
            },
            Persistence::AppCookie { name, table } => {
                let Some(value) = headers.and_then(|h| request_cookie(h, name)) else {
                    return Affinity::default();
                };
                let value = app_cookie_key(value);
                Affinity {
                    remembered: table.get(&value, now),
                    key: StickKey::AppCookie(value),
                }
            }
        }
    }

    /// Takes the proxy's own cookie out of a request before it goes to a
    /// member (`HTTP_COOKIE` only): it is the proxy's business, not the
    /// application's.
    pub fn strip_request(&self, headers: &mut HeaderMap) {
        if matches!(self, Persistence::HttpCookie) {
            remove_request_cookie(headers, HTTP_COOKIE_NAME);
        }
    }

    /// Remembers that the client of `affinity` is served by `member` (after
    /// a connection to it succeeded, or it answered): refreshes or re-sticks
    /// the entry.
    pub fn stick(&self, affinity: &Affinity, member: Uuid, now: Instant) {
        match (self, &affinity.key) {
            (Persistence::SourceIp(table), StickKey::Ip(ip)) => table.stick(*ip, member, now),
            (Persistence::AppCookie { table, .. }, StickKey::AppCookie(value)) => {
                table.stick(value.clone(), member, now)
            }
            _ => {}
        }
    }

    /// Does what persistence does to a member's response (HTTP listeners):
    /// learns application cookie values, inserts the proxy's cookie.
    pub fn on_response(
        &self,
        affinity: &Affinity,
        member: Uuid,
        headers: &mut HeaderMap,
        now: Instant,
    ) {
        match self {
            Persistence::SourceIp(_) => {}
            Persistence::HttpCookie => {
                if affinity.remembered == Some(member) {
                    return;
                }
                let cookie = format!("{HTTP_COOKIE_NAME}={member}; Path=/");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    headers.append(header::SET_COOKIE, value);
                }
                let private = headers
                    .get_all(header::CACHE_CONTROL)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(|v| v.split(','))
                    .any(|d| {
                        let d = d.trim();
                        d.eq_ignore_ascii_case("private") || d.eq_ignore_ascii_case("no-store")
                    });
                if !private {
                    headers.append(header::CACHE_CONTROL, HeaderValue::from_static("private"));
                }
            }
            Persistence::AppCookie { name, table } => {
                for value in response_cookies(headers, name) {
                    table.stick(app_cookie_key(value), member, now);
                }
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        match self {
            Persistence::SourceIp(table) => table.len(),
            Persistence::AppCookie { table, .. } => table.len(),
            Persistence::HttpCookie => 0,
        }
    }
}

/// A bounded map from a client key to a member, with idle expiry.
#[derive(Debug)]
pub struct StickTable<K> {
    /// Idle expiry in milliseconds (changes with the pool's config).
    timeout_ms: AtomicU64,
    capacity: usize,
    /// Held for one lookup or insert, never across an await.
    entries: Mutex<HashMap<K, Entry>>,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    member: Uuid,
    last_used: Instant,
}

impl<K: Hash + Eq + Clone> StickTable<K> {
    pub fn new(timeout: Duration) -> Self {
        Self::with_capacity(timeout, MAX_ENTRIES)
    }

    fn with_capacity(timeout: Duration, capacity: usize) -> Self {
        StickTable {
            timeout_ms: AtomicU64::new(timeout.as_millis() as u64),
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry>> {
        // A poisoned table is still a table of plain values.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.load(Ordering::Relaxed))
    }

    fn set_timeout(&self, timeout: Duration) {
        self.timeout_ms
            .store(timeout.as_millis() as u64, Ordering::Relaxed);
    }

    fn expired(&self, entry: &Entry, now: Instant) -> bool {
        now.saturating_duration_since(entry.last_used) >= self.timeout()
    }

    /// The member remembered for `key`, unless it expired.
    pub fn get(&self, key: &K, now: Instant) -> Option<Uuid> {
        let mut entries = self.lock();
        let entry = *entries.get(key)?;
        if self.expired(&entry, now) {
            entries.remove(key);
            return None;
        }
        Some(entry.member)
    }

    /// Remembers `member` for `key` from `now` on (a new entry, a refreshed
    /// one, or one that now names another member).
    pub fn stick(&self, key: K, member: Uuid, now: Instant) {
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&key) {
            self.make_room(&mut entries, now);
        }
        entries.insert(
            key,
            Entry {
                member,
                last_used: now,
            },
        );
    }

    /// Drops expired entries and, if the table is still full, the least
    /// recently used eighth: one sort per `capacity / 8` inserts, not a scan
    /// per insert.
    fn make_room(&self, entries: &mut HashMap<K, Entry>, now: Instant) {
        entries.retain(|_, e| !self.expired(e, now));
        if entries.len() < self.capacity {
            return;
        }
        let mut ages: Vec<Instant> = entries.values().map(|e| e.last_used).collect();
        let evict = (self.capacity / 8).max(1);
        let (_, cutoff, _) = ages.select_nth_unstable(evict - 1);
        let cutoff = *cutoff;
        entries.retain(|_, e| e.last_used > cutoff);
    }

    fn retain_members(&self, members: &HashSet<Uuid>) {
        self.lock().retain(|_, e| members.contains(&e.member));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

/// The key an application cookie value is stored under (cut to
/// [`MAX_APP_COOKIE_LEN`] bytes).
fn app_cookie_key(value: &str) -> Box<str> {
    let mut end = value.len().min(MAX_APP_COOKIE_LEN);
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    value[..end].into()
}

/// Pairs of a request's `Cookie` headers (`a=b; c=d`).
fn request_cookie_pairs(headers: &HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            Some((name.trim(), value.trim()))
        })
}

/// The first non-empty value of cookie `name` in a request.
fn request_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    request_cookie_pairs(headers)
        .find(|(n, v)| *n == name && !v.is_empty())
        .map(|(_, v)| v)
}

/// Removes cookie `name` from a request's `Cookie` headers, keeping the
/// others (and dropping a header left empty).
fn remove_request_cookie(headers: &mut HeaderMap, name: &str) {
    if !request_cookie_pairs(headers).any(|(n, _)| n == name) {
        return;
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| !pair.is_empty())
        .filter(|pair| pair.split_once('=').is_none_or(|(n, _)| n.trim() != name))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(value) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
}

/// Non-empty values a response sets for cookie `name` (`Set-Cookie:
/// name=value; attributes`).
fn response_cookies<'h>(headers: &'h HeaderMap, name: &'h str) -> impl Iterator<Item = &'h str> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(move |v| {
            let first = v.split(';').next()?;
            let (n, value) = first.split_once('=')?;
            let value = value.trim();
            (n.trim() == name && !value.is_empty()).then_some(value)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    fn sp(kind: SessionPersistenceType, name: Option<&str>) -> SessionPersistenceConfig {
        SessionPersistenceConfig {
            kind,
            cookie_name: name.map(str::to_string),
            persistence_timeout: None,
            persistence_granularity: None,
        }
    }

    #[test]
    fn stick_table_expires_refreshes_and_stays_bounded() {
        let t0 = Instant::now();
        let table: StickTable<u32> = StickTable::with_capacity(Duration::from_secs(10), 16);
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        table.stick(1, a, t0);
        assert_eq!(table.get(&1, t0 + Duration::from_secs(9)), Some(a));
        // Refreshed on use: lives 10 s from the refresh.
        table.stick(1, a, t0 + Duration::from_secs(9));
        assert_eq!(table.get(&1, t0 + Duration::from_secs(18)), Some(a));
        assert_eq!(table.get(&1, t0 + Duration::from_secs(19)), None);
        // Re-stuck to another member.
        table.stick(1, a, t0);
        table.stick(1, b, t0);
        assert_eq!(table.get(&1, t0), Some(b));

        // Full: the least recently used go first, the newest stay.
        for k in 0..100u32 {
            table.stick(k, a, t0 + Duration::from_millis(u64::from(k)));
            assert!(table.len() <= 16);
        }
        assert_eq!(table.get(&99, t0 + Duration::from_millis(100)), Some(a));
        assert_eq!(table.get(&0, t0 + Duration::from_millis(100)), None);
    }

    #[test]
    fn request_cookies_are_found_and_the_proxy_cookie_removed() {
        // (Cookie headers, name looked up, value found, Cookie headers left
        // after removing SRV)
        type Case = (
            &'static [&'static str],
            &'static str,
            Option<&'static str>,
            &'static [&'static str],
        );
        let table: &[Case] = &[
            (&["SRV=abc"], "SRV", Some("abc"), &[]),
            (&["a=1; SRV=abc; b=2"], "SRV", Some("abc"), &["a=1; b=2"]),
            (&["a=1", "SRV=x"], "SRV", Some("x"), &["a=1"]),
            (&["xSRV=1; SRVx=2"], "SRV", None, &["xSRV=1; SRVx=2"]),
            (
                &["JSESSIONID=s1; o=z"],
                "JSESSIONID",
                Some("s1"),
                &["JSESSIONID=s1; o=z"],
            ),
            (&["JSESSIONID="], "JSESSIONID", None, &["JSESSIONID="]),
            (&[], "SRV", None, &[]),
        ];
        for (cookies, name, found, left) in table {
            let mut h = HeaderMap::new();
            for c in *cookies {
                h.append(header::COOKIE, HeaderValue::from_static(c));
            }
            assert_eq!(request_cookie(&h, name), *found, "{cookies:?}");
            remove_request_cookie(&mut h, HTTP_COOKIE_NAME);
            let now: Vec<&str> = h
                .get_all(header::COOKIE)
                .iter()
                .map(|v| v.to_str().unwrap())
                .collect();
            assert_eq!(&now, left, "{cookies:?}");
        }
    }

    #[test]
    fn response_cookies_are_learnt_by_name() {
        let h = headers(&[
            ("set-cookie", "JSESSIONID=abc; Path=/; HttpOnly"),
            ("set-cookie", "other=1"),
            ("set-cookie", "JSESSIONID=; Max-Age=0"),
        ]);
        let found: Vec<&str> = response_cookies(&h, "JSESSIONID").collect();
        assert_eq!(found, ["abc"]);
    }

    #[test]
    fn http_cookie_is_inserted_only_when_the_request_lacks_it() {
        let p = Persistence::build(
            Some(&sp(SessionPersistenceType::HttpCookie, None)),
            None,
            &HashSet::new(),
        )
        .unwrap();
        let member = Uuid::from_u128(7);
        let now = Instant::now();
        let client: IpAddr = "127.0.0.1".parse().unwrap();

        let fresh = p.affinity(client, Some(&HeaderMap::new()), now);
        let mut response = HeaderMap::new();
        p.on_response(&fresh, member, &mut response, now);
        let set: Vec<&str> = response
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(set, [format!("SRV={member}; Path=/")]);
        assert_eq!(response.get(header::CACHE_CONTROL).unwrap(), "private");

        let cookie = HeaderValue::from_str(&format!("SRV={member}")).unwrap();
        let mut with = HeaderMap::new();
        with.insert(header::COOKIE, cookie);
        let sticky = p.affinity(client, Some(&with), now);
        assert_eq!(sticky.remembered, Some(member));
        let mut response = HeaderMap::new();
        p.on_response(&sticky, member, &mut response, now);
        assert!(response.is_empty());
        // The same cookie, served by another member (it gave way): re-stuck.
        p.on_response(&sticky, Uuid::from_u128(8), &mut response, now);
        assert_eq!(response.get_all(header::SET_COOKIE).iter().count(), 1);
    }

    #[test]
    fn tables_survive_a_config_of_the_same_kind_without_departed_members() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let config = sp(SessionPersistenceType::SourceIp, None);
        let both: HashSet<Uuid> = [a, b].into();
        let p = Persistence::build(Some(&config), None, &both).unwrap();
        let now = Instant::now();
        let c1: IpAddr = "127.0.0.1".parse().unwrap();
        let c2: IpAddr = "127.0.0.2".parse().unwrap();
        p.stick(&p.affinity(c1, None, now), a, now);
        p.stick(&p.affinity(c2, None, now), b, now);
        assert_eq!(p.len(), 2);

        let only_a: HashSet<Uuid> = [a].into();
        let next = Persistence::build(Some(&config), Some(&p), &only_a).unwrap();
        assert!(Arc::ptr_eq(&p, &next));
        assert_eq!(next.affinity(c1, None, now).remembered, Some(a));
        assert_eq!(next.affinity(c2, None, now).remembered, None);

        // Another kind, or another cookie name: a fresh start.
        let app = sp(SessionPersistenceType::AppCookie, Some("A"));
        let q = Persistence::build(Some(&app), Some(&next), &only_a).unwrap();
        assert!(!Arc::ptr_eq(&q, &next));
        let renamed = sp(SessionPersistenceType::AppCookie, Some("B"));
        let r = Persistence::build(Some(&renamed), Some(&q), &only_a).unwrap();
        assert!(!Arc::ptr_eq(&q, &r));
        assert!(Persistence::build(None, Some(&r), &only_a).is_none());
    }
}
