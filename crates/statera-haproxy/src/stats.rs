//! `show stat` (CSV) → listener counters and states, member health.
//!
//! HAProxy's counters start from zero in every new worker (each reload, each
//! restart). [`Counters`] keeps the last values seen per worker and adds up
//! the workers that are gone, so what the provider reports only grows.

use statera_config::{ListenerState, MemberHealth, Stats};
use std::collections::HashMap;
use uuid::Uuid;

/// One row of `show stat`, with the columns this provider reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    pub proxy: String,
    pub name: String,
    pub status: String,
    pub scur: u64,
    pub stot: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub ereq: u64,
}

/// Parses `show stat` output. The header line (`# pxname,svname,…`) names
/// the columns, so their order does not matter; empty numbers read as 0.
pub fn parse_csv(text: &str) -> Result<Vec<Row>, String> {
    let mut lines = text.lines();
    let header = lines
        .by_ref()
        .find(|l| !l.trim().is_empty())
        .ok_or("empty show stat output")?;
    let header = header
        .strip_prefix("# ")
        .ok_or_else(|| format!("not show stat output: {header:?}"))?;
    let columns: Vec<&str> = header.split(',').collect();
    let index = |name: &str| {
        columns
            .iter()
            .position(|c| *c == name)
            .ok_or_else(|| format!("show stat has no {name} column"))
    };
    let (px, sv, status) = (index("pxname")?, index("svname")?, index("status")?);
    let (scur, stot, bin, bout, ereq) = (
        index("scur")?,
        index("stot")?,
        index("bin")?,
        index("bout")?,
        index("ereq")?,
    );
    let mut rows = Vec::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split(',').collect();
        let text = |i: usize| fields.get(i).copied().unwrap_or_default().to_string();
        let number = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        rows.push(Row {
            proxy: text(px),
            name: text(sv),
            status: text(status),
            scur: number(scur),
            stot: number(stot),
            bytes_in: number(bin),
            bytes_out: number(bout),
            ereq: number(ereq),
        });
    }
    Ok(rows)
}

/// A server's `status` column as the health HAProxy routes by: `UP 1/3`
/// (failing checks, not down yet) still takes traffic, `DOWN 1/2` (passing
/// checks, not up yet) still does not.
pub fn member_health(status: &str) -> Option<MemberHealth> {
    let status = status.trim();
    let word = status.split([' ', '(']).next().unwrap_or_default();
    match word {
        "UP" => Some(MemberHealth::Up),
        "DOWN" => Some(MemberHealth::Down),
        "NOLB" | "DRAIN" => Some(MemberHealth::Drain),
        "MAINT" => Some(MemberHealth::Maint),
        "no" if status == "no check" => Some(MemberHealth::NoCheck),
        _ => None,
    }
}

/// A frontend's `status` column.
pub fn listener_state(status: &str) -> ListenerState {
    match status.trim() {
        "OPEN" => ListenerState::Open,
        "FULL" => ListenerState::Full,
        _ => ListenerState::Down,
    }
}

/// The cumulative part of a frontend's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cumulative {
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub total: u64,
    pub request_errors: u64,
}

impl Cumulative {
    fn of(row: &Row) -> Cumulative {
        Cumulative {
            bytes_in: row.bytes_in,
            bytes_out: row.bytes_out,
            total: row.stot,
            request_errors: row.ereq,
        }
    }

    fn add(&mut self, other: &Cumulative) {
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.total += other.total;
        self.request_errors += other.request_errors;
    }

    fn max(self, other: Cumulative) -> Cumulative {
        Cumulative {
            bytes_in: self.bytes_in.max(other.bytes_in),
            bytes_out: self.bytes_out.max(other.bytes_out),
            total: self.total.max(other.total),
            request_errors: self.request_errors.max(other.request_errors),
        }
    }
}

/// Listener counters kept monotonic across HAProxy workers.
#[derive(Debug)]
pub struct Counters {
    /// This run of counters (see `ListenerReport::epoch`): from the first
    /// HAProxy this process started for the load balancer.
    pub epoch: u64,
    /// Sum of the last values of workers that are gone, per listener.
    retired: HashMap<Uuid, Cumulative>,
    /// The last values seen of each live worker (by pid), per listener.
    live: HashMap<u32, HashMap<Uuid, Cumulative>>,
    /// Active connections of the current worker, per listener.
    active: HashMap<Uuid, u64>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            epoch: statera_config::counter_epoch(),
            retired: HashMap::new(),
            live: HashMap::new(),
            active: HashMap::new(),
        }
    }
}

impl Counters {
    /// Records what worker `pid` shows now. `current` says whether it is the
    /// worker serving new connections (its `scur` is the active count).
    pub fn observe(&mut self, pid: u32, current: bool, rows: &[Row]) {
        let seen = self.live.entry(pid).or_default();
        for row in rows.iter().filter(|r| r.name == "FRONTEND") {
            let Ok(id) = row.proxy.parse::<Uuid>() else {
                continue;
            };
            let now = Cumulative::of(row);
            let last = seen.entry(id).or_default();
            // A worker's own counters only grow; `max` guards against a
            // counter HAProxy clears (`clear counters`).
            *last = last.max(now);
            if current {
                self.active.insert(id, row.scur);
            }
        }
    }

    /// Folds every worker not in `alive` into the retired totals.
    pub fn retain_workers(&mut self, alive: &[u32]) {
        let gone: Vec<u32> = self
            .live
            .keys()
            .filter(|pid| !alive.contains(pid))
            .copied()
            .collect();
        for pid in gone {
            if let Some(last) = self.live.remove(&pid) {
                for (id, values) in last {
                    self.retired.entry(id).or_default().add(&values);
                }
            }
        }
    }

    /// No worker serves any more (the process is gone): nothing is active.
    pub fn all_gone(&mut self) {
        self.retain_workers(&[]);
        self.active.clear();
    }

    /// The cumulative stats of one listener.
    pub fn stats(&self, listener: Uuid) -> Stats {
        let mut sum = self.retired.get(&listener).copied().unwrap_or_default();
        for worker in self.live.values() {
            if let Some(values) = worker.get(&listener) {
                sum.add(values);
            }
        }
        Stats {
            bytes_in: sum.bytes_in,
            bytes_out: sum.bytes_out,
            active_connections: self.active.get(&listener).copied().unwrap_or(0),
            total_connections: sum.total,
            request_errors: sum.request_errors,
        }
    }
}

/// A worker as `show proc` on the master CLI lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Worker {
    pub pid: u32,
    /// 0 for the worker started by the latest (re)load: the current one.
    pub reloads: u32,
}

/// Parses the master CLI's `show proc`: the worker lines (current and old).
pub fn parse_show_proc(text: &str) -> Vec<Worker> {
    let mut workers = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() >= 3
            && fields[1] == "worker"
            && let (Ok(pid), Ok(reloads)) = (fields[0].parse(), fields[2].parse())
        {
            workers.push(Worker { pid, reloads });
        }
    }
    workers
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,";

    fn csv(rows: &[&str]) -> String {
        let mut text = format!("{HEADER}\n");
        for row in rows {
            text.push_str(row);
            text.push('\n');
        }
        text
    }

    const L: &str = "6f0f4a3e-54d9-4c1e-8a52-7c1a2c1d0001";

    #[test]
    fn parses_rows_by_header_names() {
        let text = csv(&[
            &format!("{L},FRONTEND,,,3,10,50000,120,4000,9000,0,0,7,,,,,OPEN,,,,"),
            "p:l,m1,0,0,1,2,,40,100,200,,0,,0,0,0,0,UP 1/3,1,1,0,",
            "p:l,BACKEND,0,0,1,2,,40,100,200,,0,,0,0,0,0,UP,1,1,0,",
        ]);
        let rows = parse_csv(&text).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[0],
            Row {
                proxy: L.into(),
                name: "FRONTEND".into(),
                status: "OPEN".into(),
                scur: 3,
                stot: 120,
                bytes_in: 4000,
                bytes_out: 9000,
                ereq: 7,
            }
        );
        assert_eq!(rows[1].status, "UP 1/3");
        assert_eq!(rows[1].ereq, 0, "an empty field reads as 0");
        assert!(parse_csv("Unknown command\n").is_err());
        assert!(parse_csv("").is_err());
    }

    #[test]
    fn member_health_follows_what_haproxy_routes_by() {
        assert_eq!(member_health("UP"), Some(MemberHealth::Up));
        assert_eq!(member_health("UP 1/3"), Some(MemberHealth::Up));
        assert_eq!(member_health("DOWN"), Some(MemberHealth::Down));
        assert_eq!(member_health("DOWN 1/2"), Some(MemberHealth::Down));
        assert_eq!(member_health("NOLB"), Some(MemberHealth::Drain));
        assert_eq!(member_health("NOLB 1/2"), Some(MemberHealth::Drain));
        assert_eq!(member_health("DRAIN"), Some(MemberHealth::Drain));
        assert_eq!(member_health("MAINT"), Some(MemberHealth::Maint));
        assert_eq!(member_health("MAINT(via)"), Some(MemberHealth::Maint));
        assert_eq!(
            member_health("MAINT (resolution)"),
            Some(MemberHealth::Maint)
        );
        assert_eq!(member_health("no check"), Some(MemberHealth::NoCheck));
        assert_eq!(member_health("no"), None);
        assert_eq!(member_health(""), None);
    }

    #[test]
    fn listener_states() {
        assert_eq!(listener_state("OPEN"), ListenerState::Open);
        assert_eq!(listener_state("FULL"), ListenerState::Full);
        assert_eq!(listener_state("STOP"), ListenerState::Down);
    }

    fn frontend(stot: u64, scur: u64) -> Vec<Row> {
        parse_csv(&csv(&[&format!(
            "{L},FRONTEND,,,{scur},0,0,{stot},{},{},0,0,1,,,,,OPEN,,,,",
            stot * 10,
            stot * 20
        )]))
        .unwrap()
    }

    #[test]
    fn counters_add_up_workers_across_reloads() {
        let id: Uuid = L.parse().unwrap();
        let mut c = Counters::default();
        c.observe(100, true, &frontend(5, 2));
        assert_eq!(c.stats(id).total_connections, 5);
        assert_eq!(c.stats(id).active_connections, 2);
        // Reload: worker 200 takes over, 100 drains and still counts.
        c.observe(100, false, &frontend(7, 1));
        c.observe(200, true, &frontend(1, 1));
        let s = c.stats(id);
        assert_eq!(s.total_connections, 8);
        assert_eq!(s.bytes_in, 80);
        assert_eq!(s.bytes_out, 160);
        assert_eq!(s.request_errors, 2);
        assert_eq!(s.active_connections, 1);
        // Worker 100 leaves: its last values stay.
        c.retain_workers(&[200]);
        c.observe(200, true, &frontend(3, 0));
        assert_eq!(c.stats(id).total_connections, 10);
        // The process dies: nothing active, totals stay.
        c.all_gone();
        assert_eq!(c.stats(id).total_connections, 10);
        assert_eq!(c.stats(id).active_connections, 0);
        c.observe(300, true, &frontend(0, 0));
        assert_eq!(c.stats(id).total_connections, 10);
    }

    #[test]
    fn show_proc_lists_workers() {
        let text = "#<PID>          <type>          <reloads>       <uptime>        <version>\n\
                    20412           master          10 [failed: 0]  0d00h10m17s     2.6.12\n\
                    # workers\n\
                    11063           worker          0               0d00h00m02s     2.6.12\n\
                    # old workers\n\
                    11006           worker          1               0d00h00m03s     2.6.12\n\
                    # programs\n";
        assert_eq!(
            parse_show_proc(text),
            vec![
                Worker {
                    pid: 11063,
                    reloads: 0
                },
                Worker {
                    pid: 11006,
                    reloads: 1
                }
            ]
        );
    }
}
