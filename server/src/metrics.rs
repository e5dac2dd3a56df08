//! `GET /metrics`: Prometheus text exposition.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use crate::daemon::Daemon;

pub(crate) fn render(d: &Daemon) -> String {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, v) in samples {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let m = &d.metrics;
    let hub = d.hub.stats();
    let (materializations, leases) = d.counts();
    metric(
        "rindle_commits_total",
        "counter",
        "Write transactions committed through /execute-sql-txn.",
        &[("", m.commits.load(Ordering::Relaxed))],
    );
    metric(
        "rindle_commit_version",
        "gauge",
        "The commit version of the last committed transaction.",
        &[("", d.cluster.cv())],
    );
    metric(
        "rindle_transactions_failed_total",
        "counter",
        "Transactions rolled back because a statement failed.",
        &[("", m.failed_transactions.load(Ordering::Relaxed))],
    );
    metric(
        "rindle_mutations_rejected_total",
        "counter",
        "Mutations advanced by /reject-mutation.",
        &[("", m.rejected_mutations.load(Ordering::Relaxed))],
    );
    metric(
        "rindle_changes_derived_total",
        "counter",
        "Query results changed by a transaction, folded into row operations.",
        &[("", hub.derived)],
    );
    metric(
        "rindle_ops_sent_total",
        "counter",
        "Row operations queued for subscribers.",
        &[("", hub.ops_sent)],
    );
    metric(
        "rindle_query_faults_total",
        "counter",
        "Queries torn down by a fault in their derivation.",
        &[("", hub.faults)],
    );
    metric(
        "rindle_subscribers_shed_total",
        "counter",
        "Subscriptions dropped because their connection fell behind.",
        &[("", hub.shed)],
    );
    metric(
        "rindle_materializations",
        "gauge",
        "Live materializations.",
        &[("", materializations as u64)],
    );
    metric(
        "rindle_leases",
        "gauge",
        "Unexpired leases.",
        &[("", leases as u64)],
    );
    metric(
        "rindle_subscribers",
        "gauge",
        "Live subscriptions over every plane.",
        &[("", d.subscriptions() as u64)],
    );
    metric(
        "rindle_wal_bytes",
        "gauge",
        "Size of the database's write-ahead log.",
        &[("", rindle_sqlite::wal_size(&d.db_path))],
    );
    metric(
        "rindle_wal_checkpoints_total",
        "counter",
        "Checkpoints that truncated the write-ahead log.",
        &[("", d.wal_stats.checkpoints.load(Ordering::Relaxed))],
    );
    metric(
        "rindle_wal_checkpoints_busy_total",
        "counter",
        "Checkpoints that could not finish because another connection held a read snapshot.",
        &[("", d.wal_stats.busy.load(Ordering::Relaxed))],
    );
    metric(
        "rindle_workers",
        "gauge",
        "IVM worker threads.",
        &[("", d.cluster.worker_count() as u64)],
    );
    let keys = d.query_keys();
    let times: Vec<(String, u64, u64)> = d
        .hub
        .derive_times()
        .into_iter()
        .filter_map(|(id, t, n)| {
            keys.get(&id)
                .map(|k| (format!("{{query=\"{k}\"}}"), t.as_micros() as u64, n))
        })
        .collect();
    let micros: Vec<(&str, u64)> = times.iter().map(|(l, t, _)| (l.as_str(), *t)).collect();
    let counts: Vec<(&str, u64)> = times.iter().map(|(l, _, n)| (l.as_str(), *n)).collect();
    metric(
        "rindle_query_derive_microseconds_total",
        "counter",
        "Time workers spent deriving each live query's changes (by query key).",
        &micros,
    );
    metric(
        "rindle_query_derives_total",
        "counter",
        "Transactions that changed each live query's result (by query key).",
        &counts,
    );
    let plane = d.plane.lock().unwrap_or_else(|p| p.into_inner()).clone();
    if let Some(p) = plane {
        let (ws, quic) = (p.ws_counters(), p.quic_counters());
        let get = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        metric(
            "rindle_connections",
            "gauge",
            "Open subscriber connections per plane.",
            &[
                ("{plane=\"ws\"}", get(&ws.connections)),
                ("{plane=\"quic\"}", get(&quic.connections)),
            ],
        );
        metric(
            "rindle_frames_sent_total",
            "counter",
            "Frames sent per plane.",
            &[
                ("{plane=\"ws\"}", get(&ws.frames)),
                ("{plane=\"quic\"}", get(&quic.frames)),
            ],
        );
        for (name, help, get_one) in [
            (
                "rindle_connections_refused_total",
                "Connections refused because their address had maxConnectionsPerIp open.",
                (|c: &rindle_transport::PlaneCounters| &c.refused)
                    as fn(&rindle_transport::PlaneCounters) -> &std::sync::atomic::AtomicU64,
            ),
            (
                "rindle_handshake_timeouts_total",
                "Connections closed because their upgrade or handshake took too long.",
                |c| &c.handshake_timeouts,
            ),
            (
                "rindle_idle_timeouts_total",
                "Connections closed because they sent no init or subscribe in time.",
                |c| &c.idle_timeouts,
            ),
            (
                "rindle_accept_errors_total",
                "Failed accepts (such as running out of file descriptors), each backed off.",
                |c| &c.accept_errors,
            ),
        ] {
            metric(
                name,
                "counter",
                help,
                &[
                    ("{plane=\"ws\"}", get(get_one(ws))),
                    ("{plane=\"quic\"}", get(get_one(quic))),
                ],
            );
        }
        metric(
            "rindle_bytes_sent_total",
            "counter",
            "Frame bytes sent per plane.",
            &[
                ("{plane=\"ws\"}", get(&ws.bytes)),
                ("{plane=\"quic\"}", get(&quic.bytes)),
            ],
        );
    }
    out
}
