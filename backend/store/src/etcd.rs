//! `EtcdStore`: the [`Store`] API on an external etcd v3 cluster (the `etcd` feature).
//!
//! The store API was shaped after etcd's, so most calls map one to one onto an etcd request:
//! `get`/`range` are Range requests, `put`/`delete`/`delete_prefix` are Put and DeleteRange,
//! `txn` is a Txn, `watch` is one gRPC watch stream per watch, leases are etcd leases. Nothing
//! is cached here: every backend sharing the etcd sees every write at once, which is what
//! makes the backends stateless.
//!
//! Differences from the embedded store that callers can notice:
//! - lease TTLs are whole seconds (rounded up), and etcd raises TTLs below its minimum
//!   (1.5 × election timeout, 2 s with default timing);
//! - a lagging watcher is not cancelled: the gRPC stream applies back-pressure instead;
//! - requests are bounded by etcd's limits (`--max-txn-ops` 128 operations, and
//!   `max_request_bytes`, checked here before sending so the caller gets a clear error);
//! - while etcd is unreachable or has no leader, calls fail with [`StoreError::Unavailable`]
//!   after the request timeout instead of blocking forever;
//! - ordered value comparisons (`Greater`, `Less`) compare stored bytes, which are the raw
//!   value only below `codec::COMPRESS_MIN`; equality works for every value, but for a value
//!   of `COMPRESS_MIN` bytes or more only between backends whose LZ4 encoder produces the same
//!   bytes (the same `lz4_flex` version; Picket compares only short values by value).
//!
//! **Values in etcd** (so what `etcdctl get` shows): a value of 512 bytes or more that
//! compresses is stored as the 4 bytes `C1 'P' 'K' 'V'`, a kind byte `1`, then the `codec`
//! form (length, LZ4 block); a value that itself begins with those 4 bytes is stored behind
//! them with kind `0`; every other value is stored as it is. Reads undo this, so callers get
//! their bytes back; values written before this framing existed read unchanged (none begins
//! with `C1`, which is not valid UTF-8: Picket writes JSON and short ASCII, save for one
//! 32-byte random secret, misread only at odds of 2^-32). The point is the write volume: an
//! event shrinks by half or more, and etcd commits (replicates, fsyncs, compacts) bytes.

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare as EtcdCompare, CompareOp as EtcdCompareOp, ConnectOptions,
    DeleteOptions, Error as EtcdError, GetOptions, Identity, PutOptions, TlsOptions,
    Txn as EtcdTxn, TxnOp, TxnOpResponse, WatchOptions,
};
use tokio::sync::mpsc;

use crate::keys::prefix_end;
use crate::{
    Compare, CompareOp, CompareTarget, KeyValue, LeaseId, Op, OpResult, RangeRequest,
    RangeResponse, Result, Revision, Store, StoreError, Txn, TxnResponse, Watch, WatchEvent,
};

pub mod testing;

/// Marks a value stored in Picket's framing (see the module docs).
const VALUE_MAGIC: [u8; 4] = [0xC1, b'P', b'K', b'V'];
const VALUE_RAW: u8 = 0;
const VALUE_COMPRESSED: u8 = 1;

/// The bytes etcd stores for `value`: deterministic, so equal values compare equal in etcd.
fn to_stored(value: &[u8]) -> Vec<u8> {
    let (kind, body) = match crate::codec::compress(value) {
        Some(packed) => (VALUE_COMPRESSED, packed),
        None if value.starts_with(&VALUE_MAGIC) => (VALUE_RAW, value.to_vec()),
        None => return value.to_vec(),
    };
    let mut out = Vec::with_capacity(VALUE_MAGIC.len() + 1 + body.len());
    out.extend_from_slice(&VALUE_MAGIC);
    out.push(kind);
    out.extend_from_slice(&body);
    out
}

/// The value behind the bytes etcd stores ([`to_stored`] undone).
fn from_stored(stored: &[u8]) -> Result<Vec<u8>> {
    let Some(rest) = stored.strip_prefix(&VALUE_MAGIC) else {
        return Ok(stored.to_vec());
    };
    match rest.split_first() {
        Some((&VALUE_RAW, raw)) => Ok(raw.to_vec()),
        Some((&VALUE_COMPRESSED, packed)) => crate::codec::decompress(packed),
        Some((kind, _)) => Err(StoreError::Backend(format!(
            "etcd holds a value of unknown encoding {kind} (written by a newer Picket?)"
        ))),
        None => Err(StoreError::Backend(
            "etcd holds a value cut short after its encoding marker".to_string(),
        )),
    }
}

/// etcd's own default for `--max-request-bytes` (1.5 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 1_572_864;
/// etcd's default `--max-txn-ops`: the most operations one transaction may carry.
pub const MAX_TXN_OPS: usize = 128;
/// Room left in a request for everything that is not a key or a value (protobuf framing,
/// compares, lease ids), so a request we let through is not refused by etcd.
const REQUEST_OVERHEAD_BYTES: usize = 16 * 1024;

/// How to reach etcd.
#[derive(Debug, Clone)]
pub struct EtcdOptions {
    /// Client URLs (`http://host:port` or `https://host:port`); requests are balanced over them
    /// and move to another member when one fails.
    pub endpoints: Vec<String>,
    /// Client certificate and key (PEM) for etcd's `--client-cert-auth`.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// CA that signed etcd's server certificates (PEM).
    pub trusted_ca_file: Option<PathBuf>,
    /// etcd user authentication.
    pub username: Option<String>,
    pub password: Option<String>,
    /// Largest request sent to etcd; must not exceed the server's `--max-request-bytes`.
    pub max_request_bytes: usize,
    /// How long a single request may take before it fails as unavailable.
    pub request_timeout: Duration,
    /// How long connecting to one endpoint may take.
    pub connect_timeout: Duration,
}

impl EtcdOptions {
    pub fn new(endpoints: Vec<String>) -> Self {
        EtcdOptions {
            endpoints,
            cert_file: None,
            key_file: None,
            trusted_ca_file: None,
            username: None,
            password: None,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
        }
    }

    /// Parse Sensu's comma-separated `--etcd-client-urls`.
    pub fn parse_endpoints(urls: &str) -> Result<Vec<String>> {
        let endpoints: Vec<String> = urls
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err(StoreError::InvalidRequest(
                "no etcd client URL given".to_string(),
            ));
        }
        for url in &endpoints {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(StoreError::InvalidRequest(format!(
                    "etcd client URL {url:?} must start with http:// or https://"
                )));
            }
        }
        Ok(endpoints)
    }
}

/// The store on an etcd cluster. Cheap to share: the client multiplexes every request over
/// its channels.
pub struct EtcdStore {
    client: Client,
    opts: EtcdOptions,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.opts.endpoints)
            .finish_non_exhaustive()
    }
}

impl EtcdStore {
    /// Connect to etcd. Connections are made lazily, so this succeeds while etcd is down; call
    /// [`EtcdStore::revision`] (or [`EtcdStore::wait_ready`]) to find out whether it answers.
    /// With a user and password it is not lazy: etcd-client authenticates here, so this fails
    /// (`Unavailable`) while etcd is down and (`Backend`) when etcd refuses the credentials.
    pub async fn connect(opts: EtcdOptions) -> Result<std::sync::Arc<Self>> {
        if opts.endpoints.is_empty() {
            return Err(StoreError::InvalidRequest(
                "no etcd client URL given".to_string(),
            ));
        }
        let mut connect = ConnectOptions::new()
            .with_timeout(opts.request_timeout)
            .with_connect_timeout(opts.connect_timeout)
            // Detect a dead member quickly so requests move to another one.
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(3))
            .with_keep_alive_while_idle(true)
            // A member cut off from the quorum must not answer reads from stale data.
            .with_require_leader(true);
        match (&opts.username, &opts.password) {
            (Some(user), Some(password)) => {
                connect = connect.with_user(user.clone(), password.clone());
            }
            (None, None) => {}
            // Half the credentials would silently connect without authenticating.
            _ => {
                return Err(StoreError::InvalidRequest(
                    "the etcd user and password must be given together".to_string(),
                ));
            }
        }
        if let Some(tls) = tls_options(&opts)? {
            connect = connect.with_tls(tls);
        }
        let client = Client::connect(&opts.endpoints, Some(connect))
            .await
            .map_err(|e| map_error(e, None))?;
        Ok(std::sync::Arc::new(EtcdStore { client, opts }))
    }

    /// Wait until etcd answers a read, for at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<Revision> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.revision().await {
                Ok(r) => return Ok(r),
                Err(e) if tokio::time::Instant::now() >= deadline => return Err(e),
                Err(e) => {
                    tracing::debug!(error = %e, "etcd not ready yet");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// Compact etcd's history every `every`, down to the revision seen one period earlier,
    /// until `shutdown` resolves. etcd keeps every revision until compacted, and events
    /// rewrite their keys constantly: without compaction the database grows to its quota
    /// and etcd then refuses every write. Keeping one period of history lets watchers that
    /// lag by less than that resume without a re-read. Several backends may all run this;
    /// compacting to an already compacted revision is harmless. (Freeing the disk space is
    /// `etcdctl defrag`'s job, as for any etcd.)
    pub async fn run_compactor(
        self: std::sync::Arc<Self>,
        every: Duration,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        let mut previous: Option<Revision> = None;
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Some(target) = previous {
                let mut kv = self.kv();
                match kv.compact(target, None).await {
                    Ok(_) => tracing::debug!(revision = target, "etcd history compacted"),
                    Err(e) if e.to_string().contains("compacted") => {}
                    Err(e) => tracing::warn!(error = %e, "Cannot compact etcd's history"),
                }
            }
            previous = self.revision().await.ok();
        }
    }

    /// A KV client that accepts large answers: a range over a big prefix (every event of a
    /// namespace) easily exceeds gRPC's default 4 MiB message limit.
    fn kv(&self) -> etcd_client::KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    pub fn options(&self) -> &EtcdOptions {
        &self.opts
    }

    fn check_size(&self, ops: usize, bytes: usize) -> Result<()> {
        if ops > MAX_TXN_OPS {
            return Err(StoreError::InvalidRequest(format!(
                "transaction of {ops} operations exceeds etcd's limit of {MAX_TXN_OPS}"
            )));
        }
        let limit = self
            .opts
            .max_request_bytes
            .saturating_sub(REQUEST_OVERHEAD_BYTES);
        if bytes > limit {
            return Err(StoreError::InvalidRequest(format!(
                "request of {bytes} bytes exceeds the etcd request limit of {} bytes (--etcd-max-request-bytes)",
                self.opts.max_request_bytes
            )));
        }
        Ok(())
    }
}

fn tls_options(opts: &EtcdOptions) -> Result<Option<TlsOptions>> {
    let uses_https = opts.endpoints.iter().any(|e| e.starts_with("https://"));
    if !uses_https
        && opts.trusted_ca_file.is_none()
        && opts.cert_file.is_none()
        && opts.key_file.is_none()
    {
        return Ok(None);
    }
    let read = |path: &PathBuf, what: &str| {
        std::fs::read(path).map_err(|e| {
            StoreError::InvalidRequest(format!(
                "cannot read the etcd {what} {}: {e}",
                path.display()
            ))
        })
    };
    let mut tls = TlsOptions::new();
    if let Some(ca) = &opts.trusted_ca_file {
        tls = tls.ca_certificate(Certificate::from_pem(read(ca, "CA certificate")?));
    } else {
        tls = tls.with_enabled_roots();
    }
    match (&opts.cert_file, &opts.key_file) {
        (Some(cert), Some(key)) => {
            tls = tls.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        (None, None) => {}
        _ => {
            return Err(StoreError::InvalidRequest(
                "--etcd-cert-file and --etcd-key-file must be given together".to_string(),
            ));
        }
    }
    Ok(Some(tls))
}

/// Turn an etcd client error into the store's error, naming the lease when etcd says a lease
/// was not found (`lease` is the one the request used, if it used exactly one).
fn map_error(e: EtcdError, lease: Option<LeaseId>) -> StoreError {
    match &e {
        EtcdError::GRpcStatus(status) => {
            let message = status.message();
            if message.contains("requested lease not found")
                && let Some(id) = lease
            {
                return StoreError::LeaseNotFound(id);
            }
            if message.contains("request is too large")
                || message.contains("too many operations in txn request")
                || message.contains("duplicate key given in txn request")
                || message.contains("key is not provided")
            {
                return StoreError::InvalidRequest(format!("etcd: {message}"));
            }
            // Wrong credentials, or none where etcd's auth is on: final, so not `Unavailable`
            // (which callers retry and the API reports as a passing outage).
            if message.contains("authentication failed")
                || message.contains("user name is empty")
                || message.contains("user name not found")
            {
                return StoreError::Backend(format!(
                    "etcd refused the user and password (PICKET_BACKEND_ETCD_CLIENT_USERNAME/_PASSWORD): {message}"
                ));
            }
            if message.contains("permission denied") {
                return StoreError::Backend(format!("etcd: {message}"));
            }
            if message.contains("required revision has been compacted") {
                return StoreError::Backend(format!("etcd: {message}"));
            }
            StoreError::Unavailable(format!("etcd: {message}"))
        }
        EtcdError::LeaseKeepAliveError(m) if m.contains("lease not found") => match lease {
            Some(id) => StoreError::LeaseNotFound(id),
            None => StoreError::Backend(e.to_string()),
        },
        EtcdError::InvalidArgs(_) | EtcdError::InvalidUri(_) => {
            StoreError::InvalidRequest(e.to_string())
        }
        EtcdError::TransportError(_) | EtcdError::IoError(_) => {
            StoreError::Unavailable(format!("etcd: {}", with_causes(&e)))
        }
        _ => StoreError::Backend(format!("etcd: {e}")),
    }
}

/// An error with its chain of causes: tonic's transport error says only "transport error",
/// and the reason (a TLS alert, a refused connection) is further down.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Wrappers often repeat their cause's text.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Whether a failed request certainly did not change anything, so even a conditional write
/// may be sent again.
fn surely_not_applied(e: &StoreError) -> bool {
    match e {
        StoreError::Unavailable(m) => [
            "no leader",
            "too many requests",
            "connection refused",
            "Connection refused",
            // The connection to the member was never made: nothing was sent.
            "tcp connect error",
            "error trying to connect",
            "not capable",
            "unhealthy cluster",
        ]
        .iter()
        .any(|pattern| m.contains(pattern)),
        _ => false,
    }
}

/// Which failed requests are sent again, within the request timeout.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Retry {
    /// Reads, plain puts and deletes, lease calls: any unavailability (a member dying, a
    /// leader election) is retried; doing them twice changes nothing that matters.
    Idempotent,
    /// Conditional transactions: only when etcd certainly did not apply them, because a
    /// second attempt after a first that did apply would report a false conflict.
    Conditional,
}

/// Run a request until it succeeds, fails for good, or the request timeout has passed, so a
/// leader election or a dead member shows as latency, not as an error. (A macro, not a
/// function taking a closure: the request futures borrow the arguments, and async closures
/// lose `Send` through `async_trait`.)
macro_rules! retrying {
    ($store:expr, $retry:expr, $call:expr) => {{
        let deadline = tokio::time::Instant::now() + $store.opts.request_timeout;
        let mut pause = Duration::from_millis(50);
        loop {
            match $call.await {
                Err(e @ StoreError::Unavailable(_))
                    if tokio::time::Instant::now() + pause < deadline
                        && ($retry == Retry::Idempotent || surely_not_applied(&e)) =>
                {
                    tracing::debug!(error = %e, "etcd request failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => break other,
            }
        }
    }};
}

fn key_value(kv: &etcd_client::KeyValue) -> Result<KeyValue> {
    Ok(KeyValue {
        key: key_string(kv.key())?,
        value: from_stored(kv.value())?,
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
        version: kv.version(),
        lease: kv.lease(),
    })
}

fn key_string(bytes: &[u8]) -> Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Backend("etcd holds a key that is not UTF-8".to_string()))
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<Revision> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Backend("etcd answered without a header".to_string()))
}

/// `(key, range_end)` covering every key under `prefix`; an empty range end means "to the end
/// of the keyspace" and is spelled `\0` in etcd.
fn prefix_range(prefix: &str) -> (Vec<u8>, Vec<u8>) {
    let key = if prefix.is_empty() {
        vec![0]
    } else {
        prefix.as_bytes().to_vec()
    };
    let end = prefix_end(prefix).unwrap_or_else(|| vec![0]);
    (key, end)
}

/// The single lease a set of operations uses, to name it if etcd reports it missing.
fn lease_of(ops: &[Op]) -> Option<LeaseId> {
    let mut leases = ops.iter().filter_map(|op| match op {
        Op::Put { lease, .. } if *lease != 0 => Some(*lease),
        _ => None,
    });
    let first = leases.next()?;
    leases.all(|l| l == first).then_some(first)
}

fn op_bytes(op: &Op) -> usize {
    match op {
        Op::Put { key, value, .. } => key.len() + value.len(),
        Op::Delete { key } | Op::Get { key } => key.len(),
        Op::DeletePrefix { prefix } => 2 * prefix.len(),
    }
}

fn compare_bytes(c: &Compare) -> usize {
    c.key.len()
        + match &c.target {
            CompareTarget::Value(v) => v.len(),
            _ => 8,
        }
}

fn txn_op(op: &Op) -> TxnOp {
    match op {
        Op::Put {
            key,
            value,
            lease,
            prev_kv,
        } => {
            let mut options = PutOptions::new();
            if *prev_kv {
                options = options.with_prev_key();
            }
            if *lease != 0 {
                options = options.with_lease(*lease);
            }
            TxnOp::put(key.as_bytes(), to_stored(value), Some(options))
        }
        Op::Delete { key } => TxnOp::delete(key.as_bytes(), None),
        Op::DeletePrefix { prefix } => {
            let (key, end) = prefix_range(prefix);
            TxnOp::delete(key, Some(DeleteOptions::new().with_range(end)))
        }
        Op::Get { key } => TxnOp::get(key.as_bytes(), None),
    }
}

fn compare(c: &Compare) -> EtcdCompare {
    let op = match c.op {
        CompareOp::Equal => EtcdCompareOp::Equal,
        CompareOp::NotEqual => EtcdCompareOp::NotEqual,
        CompareOp::Greater => EtcdCompareOp::Greater,
        CompareOp::Less => EtcdCompareOp::Less,
    };
    let key = c.key.as_bytes();
    match &c.target {
        CompareTarget::Value(v) => EtcdCompare::value(key, op, to_stored(v)),
        CompareTarget::Version(v) => EtcdCompare::version(key, op, *v),
        CompareTarget::ModRevision(r) => EtcdCompare::mod_revision(key, op, *r),
        CompareTarget::CreateRevision(r) => EtcdCompare::create_revision(key, op, *r),
    }
}

/// Largest answer accepted from etcd (ranges of whole prefixes).
const MAX_RESPONSE_BYTES: usize = 512 * 1024 * 1024;

/// How many watch events may wait for a slow consumer before the stream stops reading (and
/// etcd buffers for us).
const WATCH_BUFFER: usize = 1024;

/// One attempt of each request; the `Store` impl below retries them.
impl EtcdStore {
    /// Open a watch stream and wait for etcd's answer to the create request.
    async fn open_watch(
        &self,
        key: &[u8],
        options: &WatchOptions,
    ) -> Result<(etcd_client::WatchStream, etcd_client::WatchResponse)> {
        let mut client = self
            .client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES);
        let mut stream = client
            .watch(key.to_vec(), Some(options.clone()))
            .await
            .map_err(|e| map_error(e, None))?;
        // The first answer says whether the watch exists; a compacted start revision cancels
        // it right there, which the caller must learn now (to re-read), not later.
        let created = stream
            .message()
            .await
            .map_err(|e| map_error(e, None))?
            .ok_or_else(|| StoreError::Unavailable("etcd closed the watch stream".to_string()))?;
        Ok((stream, created))
    }

    async fn get_once(&self, key: &str) -> Result<Option<KeyValue>> {
        let mut kv = self.kv();
        let resp = kv
            .get(key.as_bytes(), None)
            .await
            .map_err(|e| map_error(e, None))?;
        resp.kvs().first().map(key_value).transpose()
    }

    async fn range_once(&self, req: &RangeRequest) -> Result<RangeResponse> {
        if let Some(start) = &req.start
            && !start.starts_with(&req.prefix)
        {
            return Err(StoreError::InvalidRequest(format!(
                "range start {start:?} is outside the prefix {:?}",
                req.prefix
            )));
        }
        let (first, end) = prefix_range(&req.prefix);
        let first = match &req.start {
            Some(start) if !start.is_empty() => start.as_bytes().to_vec(),
            _ => first,
        };
        let mut options = GetOptions::new().with_range(end);
        if req.limit > 0 {
            // One more than asked: the extra key is the continuation point.
            let limit = i64::try_from(req.limit.saturating_add(1)).unwrap_or(i64::MAX);
            options = options.with_limit(limit);
        }
        let mut kv = self.kv();
        let resp = kv
            .get(first, Some(options))
            .await
            .map_err(|e| map_error(e, None))?;
        let revision = header_revision(resp.header())?;
        let mut kvs = resp
            .kvs()
            .iter()
            .map(key_value)
            .collect::<Result<Vec<_>>>()?;
        let mut next_key = None;
        if req.limit > 0 && kvs.len() > req.limit {
            next_key = kvs.pop().map(|kv| kv.key);
        }
        Ok(RangeResponse {
            more: next_key.is_some(),
            kvs,
            next_key,
            revision,
        })
    }

    async fn put_once(&self, key: &str, value: &[u8], lease: LeaseId) -> Result<Revision> {
        self.check_size(1, key.len() + value.len())?;
        let mut options = PutOptions::new();
        if lease != 0 {
            options = options.with_lease(lease);
        }
        let mut kv = self.kv();
        let resp = kv
            .put(key.as_bytes(), to_stored(value), Some(options))
            .await
            .map_err(|e| map_error(e, Some(lease)))?;
        header_revision(resp.header())
    }

    async fn delete_once(&self, key: &str) -> Result<u64> {
        let mut kv = self.kv();
        let resp = kv
            .delete(key.as_bytes(), None)
            .await
            .map_err(|e| map_error(e, None))?;
        Ok(u64::try_from(resp.deleted()).unwrap_or(0))
    }

    async fn delete_prefix_once(&self, prefix: &str) -> Result<u64> {
        let (key, end) = prefix_range(prefix);
        let mut kv = self.kv();
        let resp = kv
            .delete(key, Some(DeleteOptions::new().with_range(end)))
            .await
            .map_err(|e| map_error(e, None))?;
        Ok(u64::try_from(resp.deleted()).unwrap_or(0))
    }

    async fn txn_once(&self, txn: &Txn) -> Result<TxnResponse> {
        let ops = txn.success.len().max(txn.failure.len());
        let bytes = txn.compares.iter().map(compare_bytes).sum::<usize>()
            + txn.success.iter().map(op_bytes).sum::<usize>()
            + txn.failure.iter().map(op_bytes).sum::<usize>();
        self.check_size(ops, bytes)?;
        let request = EtcdTxn::new()
            .when(txn.compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(txn.success.iter().map(txn_op).collect::<Vec<_>>())
            .or_else(txn.failure.iter().map(txn_op).collect::<Vec<_>>());
        let mut kv = self.kv();
        let resp = match kv.txn(request).await {
            Ok(resp) => resp,
            Err(e) => {
                // etcd does not say which lease is missing; name it when the applied branch
                // used only one.
                let lease = lease_of(&txn.success).or_else(|| lease_of(&txn.failure));
                return Err(map_error(e, lease));
            }
        };
        let revision = header_revision(resp.header())?;
        let succeeded = resp.succeeded();
        let ops = if succeeded {
            &txn.success
        } else {
            &txn.failure
        };
        let answers = resp.op_responses();
        if answers.len() != ops.len() {
            return Err(StoreError::Backend(format!(
                "etcd answered {} results for {} operations",
                answers.len(),
                ops.len()
            )));
        }
        let results = ops
            .iter()
            .zip(answers)
            .map(|(op, answer)| match (op, answer) {
                (Op::Put { .. }, TxnOpResponse::Put(p)) => Ok(OpResult::Put {
                    prev: p.prev_key().map(key_value).transpose()?,
                }),
                (Op::Delete { .. } | Op::DeletePrefix { .. }, TxnOpResponse::Delete(d)) => {
                    Ok(OpResult::Delete {
                        deleted: u64::try_from(d.deleted()).unwrap_or(0),
                    })
                }
                (Op::Get { .. }, TxnOpResponse::Get(g)) => Ok(OpResult::Get {
                    kv: g.kvs().first().map(key_value).transpose()?,
                }),
                _ => Err(StoreError::Backend(
                    "etcd answered a transaction with results of the wrong kind".to_string(),
                )),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(TxnResponse {
            succeeded,
            revision,
            results,
        })
    }

    async fn grant_lease_once(&self, ttl: Duration) -> Result<LeaseId> {
        if ttl.is_zero() {
            return Err(StoreError::InvalidRequest(format!(
                "invalid lease TTL {ttl:?}"
            )));
        }
        let secs = i64::try_from(ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0))
            .map_err(|_| StoreError::InvalidRequest(format!("invalid lease TTL {ttl:?}")))?;
        let mut lease = self.client.lease_client();
        let resp = lease
            .grant(secs, None)
            .await
            .map_err(|e| map_error(e, None))?;
        if !resp.error().is_empty() {
            return Err(StoreError::Backend(format!(
                "etcd refused the lease: {}",
                resp.error()
            )));
        }
        Ok(resp.id())
    }

    async fn keep_alive_once(&self, lease: LeaseId) -> Result<()> {
        // One short keep-alive stream per call: the store API renews on demand (a keepalive
        // from an agent), not on a timer, so there is no long-lived stream to share.
        let mut client = self.client.lease_client();
        let (_keeper, _stream) = client
            .keep_alive(lease)
            .await
            .map_err(|e| map_error(e, Some(lease)))?;
        Ok(())
    }

    async fn revoke_lease_once(&self, lease: LeaseId) -> Result<()> {
        let mut client = self.client.lease_client();
        client
            .revoke(lease)
            .await
            .map_err(|e| map_error(e, Some(lease)))?;
        Ok(())
    }

    async fn revision_once(&self) -> Result<Revision> {
        // The cheapest linearizable read: count the keys equal to one key, then keep the header.
        let mut kv = self.kv();
        let resp = kv
            .get(vec![0u8], Some(GetOptions::new().with_count_only()))
            .await
            .map_err(|e| map_error(e, None))?;
        header_revision(resp.header())
    }
}

#[async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        retrying!(self, Retry::Idempotent, self.get_once(key))
    }

    async fn range(&self, req: RangeRequest) -> Result<RangeResponse> {
        retrying!(self, Retry::Idempotent, self.range_once(&req))
    }

    async fn put(&self, key: &str, value: Vec<u8>, lease: LeaseId) -> Result<Revision> {
        retrying!(self, Retry::Idempotent, self.put_once(key, &value, lease))
    }

    async fn delete(&self, key: &str) -> Result<u64> {
        retrying!(self, Retry::Idempotent, self.delete_once(key))
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64> {
        retrying!(self, Retry::Idempotent, self.delete_prefix_once(prefix))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse> {
        let retry = if txn.compares.is_empty() {
            Retry::Idempotent
        } else {
            Retry::Conditional
        };
        retrying!(self, retry, self.txn_once(&txn))
    }

    async fn watch(&self, prefix: &str, after_revision: Revision) -> Result<Watch> {
        if after_revision < 0 {
            return Err(StoreError::InvalidRequest(format!(
                "negative watch revision {after_revision}"
            )));
        }
        // "From now on" is pinned to a revision read first: a watch that etcd creates a moment
        // later must not miss a write that the caller made after this call returned.
        let after = if after_revision == 0 {
            self.revision_once().await?
        } else {
            after_revision
        };
        let (key, end) = prefix_range(prefix);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after + 1);
        let (stream, created) =
            retrying!(self, Retry::Idempotent, self.open_watch(&key, &options))?;
        if created.canceled() {
            if created.compact_revision() > 0 {
                return Err(StoreError::Compacted {
                    requested: after + 1,
                    oldest: created.compact_revision(),
                });
            }
            return Err(StoreError::Backend(format!(
                "etcd refused the watch: {}",
                created.cancel_reason()
            )));
        }
        let (tx, rx) = mpsc::channel(WATCH_BUFFER);
        let mut pending = Vec::new();
        push_events(&created, &mut pending);
        tokio::spawn(async move {
            // The stream (and with it the gRPC watch) lives as long as this task: it ends when
            // the receiver is dropped or etcd ends the watch.
            let mut stream = stream;
            loop {
                for event in pending.drain(..) {
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
                let message = tokio::select! {
                    m = stream.message() => m,
                    () = tx.closed() => return,
                };
                match message {
                    Ok(Some(resp)) => {
                        if resp.canceled() {
                            let error = if resp.compact_revision() > 0 {
                                StoreError::Compacted {
                                    requested: after + 1,
                                    oldest: resp.compact_revision(),
                                }
                            } else {
                                StoreError::Unavailable(format!(
                                    "etcd cancelled the watch: {}",
                                    resp.cancel_reason()
                                ))
                            };
                            push_events(&resp, &mut pending);
                            pending.push(Err(error));
                            for event in pending.drain(..) {
                                if tx.send(event).await.is_err() {
                                    return;
                                }
                            }
                            return;
                        }
                        push_events(&resp, &mut pending);
                    }
                    Ok(None) => {
                        let _ = tx
                            .send(Err(StoreError::Unavailable(
                                "etcd closed the watch stream".to_string(),
                            )))
                            .await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(map_error(e, None))).await;
                        return;
                    }
                }
            }
        });
        Ok(Watch::from_channel(rx))
    }

    async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId> {
        retrying!(self, Retry::Idempotent, self.grant_lease_once(ttl))
    }

    async fn keep_alive(&self, lease: LeaseId) -> Result<()> {
        retrying!(self, Retry::Idempotent, self.keep_alive_once(lease))
    }

    async fn revoke_lease(&self, lease: LeaseId) -> Result<()> {
        retrying!(self, Retry::Idempotent, self.revoke_lease_once(lease))
    }

    async fn revision(&self) -> Result<Revision> {
        retrying!(self, Retry::Idempotent, self.revision_once())
    }
}

fn push_events(resp: &etcd_client::WatchResponse, out: &mut Vec<Result<WatchEvent>>) {
    for event in resp.events() {
        let Some(kv) = event.kv() else { continue };
        let converted = key_value(kv).map(|kv| match event.event_type() {
            etcd_client::EventType::Put => WatchEvent::Put(kv),
            etcd_client::EventType::Delete => WatchEvent::Delete(KeyValue {
                value: Vec::new(),
                ..kv
            }),
        });
        out.push(converted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip() {
        let event = format!(
            r#"{{"check":{{"output":"{}","history":[{}]}}}}"#,
            "DISK OK ".repeat(40),
            r#"{"status":0,"executed":1764000000},"#.repeat(20)
        );
        let magic_small = [&VALUE_MAGIC[..], b"abc"].concat();
        let magic_large = [&VALUE_MAGIC[..], event.as_bytes()].concat();
        for value in [
            &b""[..],
            b"alive",
            event.as_bytes(),
            &magic_small,
            &magic_large,
            &[0xC1],
        ] {
            let stored = to_stored(value);
            assert_eq!(from_stored(&stored).unwrap(), value, "{value:?}");
            // Deterministic, so etcd's value compares see equal values as equal.
            assert_eq!(to_stored(value), stored);
        }
        assert_eq!(
            to_stored(b"alive"),
            b"alive",
            "small values are stored as they are"
        );
        let stored = to_stored(event.as_bytes());
        assert!(stored.starts_with(&VALUE_MAGIC) && stored.len() * 2 < event.len());
    }

    #[test]
    fn unknown_or_cut_framing_is_an_error() {
        assert!(from_stored(&[&VALUE_MAGIC[..], &[9]].concat()).is_err());
        assert!(from_stored(&VALUE_MAGIC).is_err());
        assert!(from_stored(&[&VALUE_MAGIC[..], &[VALUE_COMPRESSED, 1]].concat()).is_err());
    }
}
