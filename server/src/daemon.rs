//! The daemon's state: the cluster and hub, materializations and their
//! leases, and the counters `/metrics` reports.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rindle_core::{Ast, TableSchema};
use rindle_replica::cluster::Cluster;
use rindle_sqlite::{ReadLimits, ReadOnly, SqliteBackend, WalStats};
use rindle_transport::{AttachRequest, Attached, Feeds, Hub, HubError, MatId, Plane, Refusal};

use crate::validate::{QueryLimits, Refusal as QueryRefusal, check_query};

/// How a materialization lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Policy {
    /// While subscribed, then for `idle` with no subscribers.
    WhileSubscribed { idle: Duration },
    /// Until dematerialized.
    Pinned { name: Option<String> },
}

pub(crate) struct Materialization {
    pub(crate) id: MatId,
    pub(crate) query_key: String,
    pub(crate) policy: Policy,
    /// Last time it had a subscriber or was materialized again.
    pub(crate) last_active: Instant,
}

struct Lease {
    mat: MatId,
    ttl: Duration,
    expires: Instant,
}

#[derive(Default)]
struct Registry {
    mats: BTreeMap<MatId, Materialization>,
    leases: HashMap<String, Lease>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) commits: AtomicU64,
    pub(crate) rejected_mutations: AtomicU64,
    pub(crate) failed_transactions: AtomicU64,
    pub(crate) queries_served: AtomicU64,
    pub(crate) reads_served: AtomicU64,
}

pub(crate) struct Daemon {
    pub(crate) cluster: Arc<Cluster<SqliteBackend>>,
    pub(crate) hub: Hub<SqliteBackend>,
    pub(crate) boot_id: String,
    pub(crate) auth_token: Option<String>,
    pub(crate) default_ttl: Duration,
    pub(crate) schemas: Mutex<Vec<TableSchema>>,
    pub(crate) read_only: Mutex<ReadOnly>,
    pub(crate) db_path: std::path::PathBuf,
    pub(crate) metrics: Metrics,
    pub(crate) plane: Mutex<Option<Plane>>,
    pub(crate) wal_stats: Arc<WalStats>,
    pub(crate) query_limits: QueryLimits,
    pub(crate) read_limits: ReadLimits,
    /// A connection of `/healthz`'s own, so it never queues behind reads.
    health_reader: Mutex<ReadOnly>,
    health_stall: Duration,
    /// Whether each public plane's server is still running.
    pub(crate) planes_up: PlanesUp,
    registry: Mutex<Registry>,
}

/// Set false when a public plane's server task ends.
pub(crate) struct PlanesUp {
    pub(crate) ws: AtomicBool,
    pub(crate) quic: Option<AtomicBool>,
}

/// Why `/materialize` failed.
pub(crate) enum MaterializeError {
    /// The query is refused as written (400).
    Refused(QueryRefusal),
    /// The hub could not place or hydrate it.
    Hub(HubError),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `len` random bytes as lowercase hex, from the system's CSPRNG.
pub(crate) fn random_hex(len: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; len];
    // The system generator failing is unrecoverable for a server that must
    // mint unguessable capabilities.
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system random number generator works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a (64 bit) of `text`, 16 hex digits: the canonical query key.
pub(crate) fn query_key(canonical: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in canonical.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What `/materialize` answers.
pub(crate) struct Materialized {
    pub(crate) materialization_id: String,
    pub(crate) query_key: String,
    pub(crate) lease_token: String,
    pub(crate) reused: bool,
}

pub(crate) fn mat_name(id: MatId) -> String {
    format!("m{}", id.0)
}

impl Daemon {
    pub(crate) fn new(
        cluster: Arc<Cluster<SqliteBackend>>,
        hub: Hub<SqliteBackend>,
        schemas: Vec<TableSchema>,
        read_only: ReadOnly,
        health_reader: ReadOnly,
        wal_stats: Arc<WalStats>,
        config: &crate::Config,
    ) -> Daemon {
        Daemon {
            cluster,
            hub,
            boot_id: random_hex(16),
            auth_token: config.auth_token.clone(),
            default_ttl: Duration::from_millis(config.default_lease_ttl_ms),
            schemas: Mutex::new(schemas),
            read_only: Mutex::new(read_only),
            db_path: config.db.clone(),
            metrics: Metrics::default(),
            plane: Mutex::new(None),
            wal_stats,
            query_limits: QueryLimits {
                max_depth: config.max_query_depth,
                max_nodes: config.max_query_nodes,
            },
            read_limits: ReadLimits {
                time: Duration::from_millis(config.read_timeout_ms),
                max_rows: config.read_max_rows,
                max_bytes: config.read_max_bytes,
            },
            health_reader: Mutex::new(health_reader),
            health_stall: Duration::from_millis(config.health_stall_ms),
            planes_up: PlanesUp {
                ws: AtomicBool::new(true),
                quic: config.quic_port.map(|_| AtomicBool::new(true)),
            },
            registry: Mutex::new(Registry::default()),
        }
    }

    pub(crate) fn schemas(&self) -> Vec<TableSchema> {
        lock(&self.schemas).clone()
    }

    /// Materializes (or reuses) a query and mints a lease for it. Blocking.
    pub(crate) fn materialize(
        &self,
        ast: &Ast,
        policy: Policy,
        lease_ttl: Duration,
    ) -> Result<Materialized, MaterializeError> {
        let schemas = self.schemas();
        check_query(ast, &schemas, self.query_limits).map_err(MaterializeError::Refused)?;
        let (id, reused) = self
            .hub
            .materialize(ast, &schemas)
            .map_err(MaterializeError::Hub)?;
        let canonical = serde_json::to_string(ast).unwrap_or_default();
        let key = query_key(&canonical);
        let token = random_hex(16);
        let now = Instant::now();
        let mut reg = lock(&self.registry);
        let mat = reg.mats.entry(id).or_insert_with(|| Materialization {
            id,
            query_key: key.clone(),
            policy: policy.clone(),
            last_active: now,
        });
        mat.last_active = now;
        // Pinned wins: a query pinned by one caller stays pinned.
        if matches!(policy, Policy::Pinned { .. }) {
            mat.policy = policy;
        } else if let (Policy::WhileSubscribed { idle: old }, Policy::WhileSubscribed { idle }) =
            (&mat.policy, &policy)
        {
            mat.policy = Policy::WhileSubscribed {
                idle: (*old).max(*idle),
            };
        }
        // Materializing the same query again renews its leases.
        for lease in reg.leases.values_mut().filter(|l| l.mat == id) {
            lease.expires = now + lease.ttl;
        }
        reg.leases.insert(
            token.clone(),
            Lease {
                mat: id,
                ttl: lease_ttl,
                expires: now + lease_ttl,
            },
        );
        Ok(Materialized {
            materialization_id: mat_name(id),
            query_key: key,
            lease_token: token,
            reused,
        })
    }

    /// Removes the materializations matching; true if any was.
    pub(crate) fn dematerialize(
        &self,
        id: Option<&str>,
        key: Option<&str>,
        name: Option<&str>,
    ) -> bool {
        let victims: Vec<MatId> = {
            let reg = lock(&self.registry);
            reg.mats
                .values()
                .filter(|m| {
                    id.is_some_and(|i| mat_name(m.id) == i)
                        || key.is_some_and(|k| m.query_key == k)
                        || name.is_some_and(
                            |n| matches!(&m.policy, Policy::Pinned { name: Some(p) } if p == n),
                        )
                })
                .map(|m| m.id)
                .collect()
        };
        for &id in &victims {
            self.drop_mat(id);
        }
        !victims.is_empty()
    }

    fn drop_mat(&self, id: MatId) {
        {
            let mut reg = lock(&self.registry);
            reg.mats.remove(&id);
            reg.leases.retain(|_, l| l.mat != id);
        }
        self.hub.dematerialize(id);
        tracing::debug!(materialization = id.0, "dematerialized");
    }

    /// Releases idle materializations and expired leases.
    pub(crate) fn sweep(&self) {
        let now = Instant::now();
        let mut idle = Vec::new();
        {
            let mut reg = lock(&self.registry);
            let mut subscribed = Vec::new();
            for m in reg.mats.values_mut() {
                if self.hub.subscribers(m.id).unwrap_or(0) > 0 {
                    m.last_active = now;
                    subscribed.push(m.id);
                } else if let Policy::WhileSubscribed { idle: ttl } = m.policy
                    && now.duration_since(m.last_active) > ttl
                {
                    idle.push(m.id);
                }
            }
            // A lease held by a live subscription does not expire.
            for l in reg.leases.values_mut() {
                if subscribed.contains(&l.mat) {
                    l.expires = now + l.ttl;
                }
            }
            reg.leases.retain(|_, l| l.expires > now);
        }
        for id in idle {
            self.drop_mat(id);
        }
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        let reg = lock(&self.registry);
        (reg.mats.len(), reg.leases.len())
    }

    pub(crate) fn subscriptions(&self) -> usize {
        let ids: Vec<MatId> = lock(&self.registry).mats.keys().copied().collect();
        ids.iter()
            .map(|&id| self.hub.subscribers(id).unwrap_or(0))
            .sum()
    }

    /// Each materialization's query key.
    pub(crate) fn query_keys(&self) -> HashMap<MatId, String> {
        lock(&self.registry)
            .mats
            .values()
            .map(|m| (m.id, m.query_key.clone()))
            .collect()
    }

    /// Open subscriber connections over both planes.
    pub(crate) fn connections(&self) -> u64 {
        let plane = lock(&self.plane).clone();
        plane.map_or(0, |p| {
            p.ws_counters().connections.load(Ordering::Relaxed)
                + p.quic_counters().connections.load(Ordering::Relaxed)
        })
    }

    /// What is broken, by part: the writer, each worker, each public plane
    /// and the database file. Empty when healthy. Waits on nothing but its
    /// own connection (a concurrent check skips the database probe), so it
    /// answers however busy the daemon is. Blocking (the probe).
    pub(crate) fn health_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let stalled = |d: Option<Duration>| d.filter(|d| *d >= self.health_stall);
        let writer = self.cluster.writer_health();
        if let Some(why) = writer.failing {
            problems.push(format!("writer: the last transaction failed: {why}"));
        }
        if let Some(d) = stalled(writer.busy_for) {
            problems.push(format!(
                "writer: one transaction has held it for {} ms",
                d.as_millis()
            ));
        }
        for w in self.cluster.worker_health() {
            if !w.alive {
                problems.push(format!("worker {}: down", w.index));
            } else if let Some(d) = stalled(w.busy_for) {
                problems.push(format!(
                    "worker {}: busy with one command for {} ms",
                    w.index,
                    d.as_millis()
                ));
            }
        }
        if !self.planes_up.ws.load(Ordering::SeqCst) {
            problems.push("websocket plane: stopped".into());
        }
        if let Some(q) = &self.planes_up.quic
            && !q.load(Ordering::SeqCst)
        {
            problems.push("quic plane: stopped".into());
        }
        if let Ok(mut probe) = self.health_reader.try_lock() {
            let limits = ReadLimits {
                time: Duration::from_secs(1),
                max_rows: 1,
                max_bytes: 1 << 10,
            };
            if let Err(e) = probe.query_limited("SELECT count(*) FROM sqlite_schema", &[], limits) {
                problems.push(format!("database: {e}"));
            }
        }
        problems
    }

    fn resolve(&self, token: &str) -> Option<MatId> {
        let reg = lock(&self.registry);
        let lease = reg.leases.get(token)?;
        (lease.expires > Instant::now() || self.hub.subscribers(lease.mat).unwrap_or(0) > 0)
            .then_some(lease.mat)
    }
}

/// The public planes' view of the daemon: a lease token names a
/// materialization.
pub(crate) struct DaemonFeeds(pub(crate) Arc<Daemon>);

impl Feeds for DaemonFeeds {
    fn attach(&self, req: AttachRequest<'_>) -> Result<Attached, Refusal> {
        let Some(id) = self.0.resolve(req.lease_token) else {
            return Err(Refusal::lease("unknown or expired lease token"));
        };
        self.0.hub.attach(id, req)
    }
}
