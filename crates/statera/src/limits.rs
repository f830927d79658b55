//! The process's descriptor limit: raised to the hard limit at start, then
//! shared out by `statera_dataplane::FdBudget` (serve.rs).

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Used when the hard limit is unlimited and the kernel's ceiling cannot be
/// read (the kernel's default `fs.nr_open`).
const NR_OPEN_DEFAULT: u64 = 1 << 20;

/// `RLIMIT_NOFILE` before and after [`raise_nofile`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nofile {
    pub soft_before: u64,
    pub soft: u64,
    /// `None`: unlimited.
    pub hard: Option<u64>,
}

/// Raises the soft descriptor limit to the hard one (to `fs.nr_open` when
/// the hard limit is unlimited: the kernel refuses more). The soft limit is
/// often 1024 while the hard one is far higher; the budget is computed from
/// what we actually get. A refusal leaves the soft limit as it was.
pub fn raise_nofile() -> Nofile {
    let limit = getrlimit(Resource::Nofile);
    let before = limit.current.unwrap_or(u64::MAX);
    let target = limit.maximum.unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(NR_OPEN_DEFAULT)
    });
    let mut soft = before;
    if target > before {
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => soft = target,
            Err(error) => {
                tracing::warn!(%error, from = before, to = target, "cannot raise the descriptor limit");
            }
        }
    }
    Nofile {
        soft_before: before,
        soft,
        hard: limit.maximum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_the_soft_limit_to_the_hard_one() {
        // Lower the soft limit first (always allowed), then raise it back.
        let limit = getrlimit(Resource::Nofile);
        let hard = limit
            .maximum
            .expect("Linux's hard RLIMIT_NOFILE is finite (at most fs.nr_open)");
        let low = hard.min(512);
        setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(low),
                maximum: Some(hard),
            },
        )
        .unwrap();
        let n = raise_nofile();
        assert_eq!((n.soft_before, n.soft, n.hard), (low, hard, Some(hard)));
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
    }
}
