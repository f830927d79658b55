//! The accept loop outlives running out of descriptors: it pauses instead of
//! spinning on the connection it cannot take, and takes it once descriptors
//! are free again. Its own test binary (one test): it lowers the process's
//! `RLIMIT_NOFILE` and fills the descriptor table, which would break any test
//! running beside it.

#[allow(dead_code)]
#[path = "engine/support.rs"]
mod support;

use statera_model::ListenerProtocol;
use std::fs::File;
use std::time::Duration;
use support::*;

fn cpu_time() -> Duration {
    // SAFETY: getrusage writes into the struct we pass.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) }, 0);
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn set_soft_nofile(soft: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let before = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        before
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_accept_loop_pauses_when_out_of_descriptors_and_recovers() {
    bounded(async {
        let web1 = Backend::start("web1").await;
        let p = pool(vec![member(web1.addr, 1)]);
        let l = listener(ListenerProtocol::Tcp, 9000, Some(p.id));
        let config = lb(vip(240), vec![l], vec![p]);
        let h = Harness::new();
        h.apply(&config).await.unwrap();
        let to = addr(vip(240), 9000);
        let mut client = LineClient::connect(to).await.unwrap();
        assert_eq!(client.ask("before").await.unwrap(), "web1 before");
        drop(client);
        // That connection's descriptors (client, member, backend) are closed
        // by their tasks: let them go before counting.
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Fill the table: a low soft limit, then files until it is full.
        let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
        let before = set_soft_nofile(open + 64);
        let mut filler: Vec<File> = Vec::new();
        while let Ok(f) = File::open("/dev/null") {
            filler.push(f);
            assert!(filler.len() < 1000, "the soft limit did not hold");
        }
        // One place for the client's socket: the kernel queues the
        // connection, the engine's accept fails with EMFILE.
        filler.pop();
        let mut client = LineClient::connect(to).await.unwrap();
        client.send("during").await.unwrap();
        let cpu = cpu_time();
        let early = client.recv_within(Duration::from_millis(600)).await;
        let spent = cpu_time() - cpu;
        assert!(early.is_err(), "served without a descriptor: {early:?}");
        // A loop retrying at once would burn a core for the whole wait.
        assert!(
            spent < Duration::from_millis(200),
            "{spent:?} of CPU in 600 ms out of descriptors: the accept loop spins"
        );

        // Descriptors again: the queued connection is taken and served.
        drop(filler);
        set_soft_nofile(before);
        assert_eq!(
            client
                .recv_within(Duration::from_secs(3))
                .await
                .unwrap()
                .as_deref(),
            Some("web1 during")
        );
        assert_eq!(client.ask("after").await.unwrap(), "web1 after");
        drop(client);
        use statera_config::DataPlane;
        h.engine.remove(config.lb_id).await.unwrap();
    })
    .await;
}
