//! The durable journal behind the store: every committed change goes to a SQLite
//! database in the data directory before its write is answered, so that a restart
//! (even after `kill -9`) brings back every object, the resourceVersion sequence and
//! the recent event history that watches resume from.
//!
//! The store calls [`Journal::append`] with its write lock held, so appending only
//! queues the change. A dedicated thread owns the SQLite connection: it takes every
//! change queued so far, writes them in one transaction and commits it (one fsync for
//! the whole batch: group commit), then tells each waiter. The database runs in WAL
//! mode with `synchronous=FULL`, so a commit that returned is on disk.
//!
//! The database file is created under a temporary name and renamed into place once
//! its schema is written, so `clusterset.db` is either absent (a new data directory)
//! or fully initialized: an empty, foreign or damaged file is an error at start,
//! never a silently empty store.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, Transaction};
use tokio::sync::oneshot;

/// The database file inside the data directory.
pub const DB_FILE: &str = "clusterset.db";

/// The schema this code reads and writes. Bump it with every incompatible change.
const SCHEMA_VERSION: i64 = 1;

/// Stamped into the SQLite header (`PRAGMA application_id`, "clst"), so that another
/// program's SQLite database is told apart from a journal.
const APPLICATION_ID: u32 = 0x636c_7374;

/// At most this many changes go into one transaction; a bounded batch keeps the
/// latency of its first waiter bounded under a steady stream of writes.
const MAX_BATCH: usize = 4096;

const SCHEMA: &str = "
    CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE objects (
        grp TEXT NOT NULL,
        resource TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        rv INTEGER NOT NULL,
        object BLOB NOT NULL,
        PRIMARY KEY (grp, resource, namespace, name)
    ) STRICT;
    CREATE TABLE events (
        rv INTEGER PRIMARY KEY,
        grp TEXT NOT NULL,
        resource TEXT NOT NULL,
        namespace TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('ADDED', 'MODIFIED', 'DELETED')),
        object BLOB NOT NULL
    ) STRICT;
";

/// What a change did to its object: the store's event types.
pub use super::store::EventType as RecordKind;

fn parse_kind(s: &str) -> Option<RecordKind> {
    match s {
        "ADDED" => Some(RecordKind::Added),
        "MODIFIED" => Some(RecordKind::Modified),
        "DELETED" => Some(RecordKind::Deleted),
        _ => None,
    }
}

/// One committed change, in resourceVersion order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub rv: u64,
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub kind: RecordKind,
    /// The object as stored; for a deletion, its last state.
    pub object: Bytes,
}

/// One live object found at start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecoveredObject {
    pub group: String,
    pub resource: String,
    pub namespace: String,
    pub name: String,
    pub rv: u64,
    pub object: Bytes,
}

/// What a data directory held at start.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The highest resourceVersion ever handed out, deletes included; 0 when none was.
    pub rv: u64,
    /// Every live object, ordered by (group, resource, namespace, name).
    pub objects: Vec<RecoveredObject>,
    /// The last `history` events, in resourceVersion order.
    pub events: Vec<Record>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalError(pub String);

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JournalError {}

/// An error about the database at `path`, naming it so the operator knows which file.
fn error_at(path: &Path, what: impl fmt::Display) -> JournalError {
    JournalError(format!("journal {}: {what}", path.display()))
}

type Outcome = Result<(), JournalError>;

/// Resolves when a change is on disk; to an error if the journal failed (disk full,
/// I/O error), after which no later change will be durable either.
#[must_use = "a write is not durable until its Durable resolves"]
pub struct Durable(oneshot::Receiver<Outcome>);

impl Durable {
    pub async fn wait(self) -> Result<(), JournalError> {
        self.0.await.unwrap_or_else(|_| Err(writer_gone()))
    }

    /// Blocks the calling thread; not for use inside an async task.
    pub fn wait_blocking(self) -> Result<(), JournalError> {
        self.0
            .blocking_recv()
            .unwrap_or_else(|_| Err(writer_gone()))
    }
}

/// The writer thread dropped a waiter without answering: it panicked.
fn writer_gone() -> JournalError {
    JournalError("journal writer stopped unexpectedly".into())
}

/// A queued change and the waiter to tell once it is on disk.
struct Pending {
    record: Record,
    done: oneshot::Sender<Outcome>,
}

pub struct Journal {
    path: PathBuf,
    /// `None` once shut down; dropping it is what tells the writer to finish.
    queue: Option<mpsc::Sender<Pending>>,
    writer: Option<JoinHandle<()>>,
    commits: Arc<AtomicU64>,
}

impl Journal {
    /// Opens or creates `dir/clusterset.db` (creating `dir`), checks its integrity
    /// and returns the journal and what it held. `history` bounds the events kept.
    pub fn open(dir: &Path, history: usize) -> Result<(Journal, Recovered), JournalError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| error_at(dir, format!("cannot create the data directory: {e}")))?;
        let path = dir.join(DB_FILE);
        if !path.exists() {
            create(&path)?;
        }
        check_header(&path).map_err(|e| error_at(&path, e))?;
        let conn = connect(&path).map_err(|e| error_at(&path, e))?;
        check_integrity(&conn).map_err(|e| error_at(&path, e))?;
        check_schema(&conn).map_err(|e| error_at(&path, e))?;
        let recovered = load(&conn, history).map_err(|e| error_at(&path, e))?;
        trim_events(&conn, &recovered.events).map_err(|e| error_at(&path, describe(&e)))?;

        let commits = Arc::new(AtomicU64::new(0));
        let writer = Writer {
            conn,
            path: path.clone(),
            history,
            last_rv: recovered.rv,
            event_rvs: recovered.events.iter().map(|e| e.rv).collect(),
            failed: None,
            commits: commits.clone(),
        };
        let (queue, incoming) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("journal-writer".into())
            .spawn(move || writer.run(incoming))
            .map_err(|e| error_at(&path, format!("cannot start the writer thread: {e}")))?;
        let journal = Journal {
            path,
            queue: Some(queue),
            writer: Some(writer),
            commits,
        };
        Ok((journal, recovered))
    }

    /// Queues a change; no I/O, so it may be called with the store's lock held.
    /// Changes must be appended in increasing resourceVersion order.
    pub fn append(&self, record: Record) -> Durable {
        let (done, durable) = oneshot::channel();
        let pending = Pending { record, done };
        let sent = match &self.queue {
            Some(queue) => queue.send(pending),
            None => Err(mpsc::SendError(pending)),
        };
        // Only a writer that is gone refuses a change; its waiter learns so at once.
        if let Err(mpsc::SendError(pending)) = sent {
            let _ = pending
                .done
                .send(Err(error_at(&self.path, "the journal is closed")));
        }
        Durable(durable)
    }

    /// Waits for everything queued so far to be durable, then stops the writer.
    pub fn close(mut self) {
        self.shutdown();
    }

    /// How many transactions the writer has committed; with group commit this grows
    /// more slowly than the number of appends under concurrent load.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn shutdown(&mut self) {
        // Closing the queue lets the writer drain what is left and return.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Journal {
    /// Dropping finishes queued writes like `close`: the connection then closes
    /// cleanly and the data directory can be opened again at once.
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Creates a new, empty journal. The schema is written to a temporary file that is
/// renamed into place only when complete, so a crash here leaves no `clusterset.db`.
fn create(path: &Path) -> Result<(), JournalError> {
    let tmp = path.with_extension("db.new");
    let fail = |e: &dyn fmt::Display| error_at(&tmp, format!("cannot create the journal: {e}"));
    // Leftovers of an earlier crash during creation; nothing was acknowledged from them.
    for leftover in [tmp.clone(), sidecar(&tmp, "-journal")] {
        match std::fs::remove_file(&leftover) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(fail(&e)),
            _ => {}
        }
    }
    // Default (rollback) journal mode here: after commit everything is in the one
    // file being renamed. WAL mode is switched on when the journal is opened.
    let mut conn = Connection::open(&tmp).map_err(|e| fail(&e))?;
    conn.pragma_update(None, "application_id", APPLICATION_ID)
        .map_err(|e| fail(&e))?;
    let tx = conn.transaction().map_err(|e| fail(&e))?;
    tx.execute_batch(SCHEMA).map_err(|e| fail(&e))?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('schema_version', ?1), ('last_rv', 0)",
        [SCHEMA_VERSION],
    )
    .map_err(|e| fail(&e))?;
    tx.commit().map_err(|e| fail(&e))?;
    conn.close().map_err(|(_, e)| fail(&e))?;
    std::fs::File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail(&e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail(&e))?;
    sync_dir(path.parent().unwrap_or(Path::new("."))).map_err(|e| fail(&e))
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

/// `path` with `suffix` appended, as SQLite names its `-wal` and `-journal` files.
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Checks the file's first 100 bytes (the SQLite header) before SQLite sees it: this
/// gives a precise message for an empty, foreign or truncated file.
fn check_header(path: &Path) -> Result<(), String> {
    let mut header = Vec::with_capacity(100);
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    file.take(100)
        .read_to_end(&mut header)
        .map_err(|e| format!("cannot read: {e}"))?;
    if header.len() < 100 {
        return Err(format!(
            "is truncated or half-written: {len} bytes, shorter than a SQLite header"
        ));
    }
    if &header[..16] != b"SQLite format 3\0" {
        return Err("is not a SQLite database (its header is wrong)".into());
    }
    let app_id = u32::from_be_bytes(header[68..72].try_into().unwrap());
    if app_id != APPLICATION_ID {
        return Err(format!(
            "is a SQLite database but not a clusterset journal (application_id {app_id:#x})"
        ));
    }
    check_length(path, &header, len)
}

/// A file shorter than the page count its header claims lost its tail. Only checked
/// without a WAL: pages still in the WAL may legitimately be missing from the file.
fn check_length(path: &Path, header: &[u8], len: u64) -> Result<(), String> {
    let wal_len = std::fs::metadata(sidecar(path, "-wal")).map_or(0, |m| m.len());
    let be32 = |at: usize| u32::from_be_bytes(header[at..at + 4].try_into().unwrap());
    // The page count is only trusted when the change counter matches "version valid for".
    if wal_len > 0 || be32(24) != be32(92) {
        return Ok(());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536,
        n => u64::from(n),
    };
    let expected = page_size * u64::from(be32(28));
    if len < expected {
        return Err(format!(
            "is truncated or half-written: {len} bytes, its header says {expected}"
        ));
    }
    Ok(())
}

/// Opens the existing file (never creates one) with the durability settings.
fn connect(path: &Path) -> Result<Connection, String> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| describe(&e))?;
    configure(&conn).map_err(|e| describe(&e))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(|e| describe(&e))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!(
            "cannot be switched to WAL mode (it stays in {mode} mode)"
        ));
    }
    Ok(conn)
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // One server per data directory: the exclusive lock, taken on first access and
    // held until close, makes a second server fail at start instead of interleaving
    // resourceVersions. It also keeps the WAL index in memory (no -shm file).
    conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
    // Long enough for a server that is shutting down to let go, short enough that a
    // second one fails promptly.
    conn.busy_timeout(std::time::Duration::from_secs(2))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // FULL: each commit fsyncs the WAL, so an acknowledged write survives power loss.
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Keep the WAL from staying large after a burst of writes.
    conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
    Ok(())
}

/// Rewords SQLite's terse codes into what an operator needs to know.
fn describe(e: &rusqlite::Error) -> String {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => format!("is not a SQLite database ({e})"),
        Some(ErrorCode::DatabaseCorrupt) => format!("is corrupt ({e})"),
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            format!("is in use by another process, another server on this data directory? ({e})")
        }
        _ => e.to_string(),
    }
}

/// `PRAGMA quick_check`: the structure of every page and table, in one pass.
fn check_integrity(conn: &Connection) -> Result<(), String> {
    let mut problems = Vec::new();
    conn.pragma_query(None, "quick_check", |row| {
        problems.push(row.get::<_, String>(0)?);
        Ok(())
    })
    .map_err(|e| describe(&e))?;
    if problems == ["ok"] {
        return Ok(());
    }
    problems.truncate(5);
    Err(format!("is corrupt (quick_check: {})", problems.join("; ")))
}

fn check_schema(conn: &Connection) -> Result<(), String> {
    let version =
        meta(conn, "schema_version").map_err(|e| format!("has no schema version: {e}"))?;
    if version != SCHEMA_VERSION {
        return Err(format!(
            "has schema version {version}, this clusterset knows only version {SCHEMA_VERSION} \
             (written by a newer release?)"
        ));
    }
    Ok(())
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<i64> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
}

/// Reads everything the journal held, checking every row.
fn load(conn: &Connection, history: usize) -> Result<Recovered, String> {
    let rv = meta(conn, "last_rv").map_err(|e| format!("has no last resourceVersion: {e}"))?;
    let rv = u64::try_from(rv).map_err(|_| format!("has a negative last resourceVersion {rv}"))?;
    let objects = load_objects(conn).map_err(|e| format!("has an unreadable object: {e}"))?;
    let events = load_events(conn, history).map_err(|e| format!("has an unreadable event: {e}"))?;
    let newest = objects
        .iter()
        .map(|o| o.rv)
        .chain(events.iter().map(|e| e.rv));
    if let Some(bad) = newest.filter(|&r| r > rv).max() {
        return Err(format!(
            "holds resourceVersion {bad}, above its last resourceVersion {rv}"
        ));
    }
    Ok(Recovered {
        rv,
        objects,
        events,
    })
}

fn load_objects(conn: &Connection) -> rusqlite::Result<Vec<RecoveredObject>> {
    let mut stmt = conn.prepare(
        "SELECT grp, resource, namespace, name, rv, object FROM objects
         ORDER BY grp, resource, namespace, name",
    )?;
    let rows = stmt.query_map([], |row| {
        Ok(RecoveredObject {
            group: row.get(0)?,
            resource: row.get(1)?,
            namespace: row.get(2)?,
            name: row.get(3)?,
            rv: rv_at(row, 4)?,
            object: Bytes::from(row.get::<_, Vec<u8>>(5)?),
        })
    })?;
    rows.collect()
}

/// The newest `history` events, oldest first.
fn load_events(conn: &Connection, history: usize) -> rusqlite::Result<Vec<Record>> {
    let mut stmt = conn.prepare(
        "SELECT rv, grp, resource, namespace, name, kind, object FROM events
         ORDER BY rv DESC LIMIT ?1",
    )?;
    let limit = i64::try_from(history).unwrap_or(i64::MAX);
    let rows = stmt.query_map([limit], |row| {
        let kind: String = row.get(5)?;
        let kind = parse_kind(&kind).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                5,
                rusqlite::types::Type::Text,
                format!("unknown event kind {kind:?}").into(),
            )
        })?;
        Ok(Record {
            rv: rv_at(row, 0)?,
            group: row.get(1)?,
            resource: row.get(2)?,
            namespace: row.get(3)?,
            name: row.get(4)?,
            kind,
            object: Bytes::from(row.get::<_, Vec<u8>>(6)?),
        })
    })?;
    let mut events = rows.collect::<rusqlite::Result<Vec<_>>>()?;
    events.reverse();
    Ok(events)
}

/// Drops events older than the ones loaded, in case an earlier run kept more.
fn trim_events(conn: &Connection, kept: &[Record]) -> rusqlite::Result<()> {
    // With nothing kept, every event goes (u64::MAX does not fit SQLite's integers).
    let oldest_kept = kept.first().map_or(i64::MAX, |e| e.rv as i64);
    conn.execute("DELETE FROM events WHERE rv < ?1", [oldest_kept])?;
    Ok(())
}

/// The writer thread's state: the connection and what it needs to trim the history.
struct Writer {
    conn: Connection,
    path: PathBuf,
    history: usize,
    last_rv: u64,
    /// The resourceVersions of the events in the table, oldest first.
    event_rvs: VecDeque<u64>,
    /// Once a commit failed, nothing later is written: a gap would break recovery.
    failed: Option<JournalError>,
    commits: Arc<AtomicU64>,
}

impl Writer {
    /// Commits batches until the queue is closed and empty.
    fn run(mut self, incoming: mpsc::Receiver<Pending>) {
        while let Ok(first) = incoming.recv() {
            // Group commit: everything queued while the last batch was being synced
            // goes into this one transaction.
            let mut batch = vec![first];
            batch.extend(incoming.try_iter().take(MAX_BATCH - 1));
            let outcome = self.commit(&batch);
            for pending in batch {
                // A waiter that went away does not need the answer.
                let _ = pending.done.send(outcome.clone());
            }
        }
    }

    fn commit(&mut self, batch: &[Pending]) -> Outcome {
        if let Some(failed) = &self.failed {
            return Err(failed.clone());
        }
        let rvs: Vec<u64> = batch.iter().map(|p| p.record.rv).collect();
        let outcome = self.write(batch, &rvs);
        match &outcome {
            Ok(()) => self.committed(&rvs),
            Err(e) => self.failed = Some(e.clone()),
        }
        outcome
    }

    /// Writes one batch in one transaction; the commit is the fsync.
    fn write(&mut self, batch: &[Pending], rvs: &[u64]) -> Outcome {
        let fail = |e: &dyn fmt::Display| error_at(&self.path, format!("write failed: {e}"));
        let mut last_rv = self.last_rv;
        for &rv in rvs {
            if rv <= last_rv {
                return Err(fail(&format!(
                    "resourceVersion {rv} does not follow {last_rv}"
                )));
            }
            last_rv = rv;
        }
        let cutoff = self.trim_cutoff(rvs);
        let tx = self.conn.transaction().map_err(|e| fail(&e))?;
        write_batch(&tx, batch, cutoff, last_rv).map_err(|e| fail(&e))?;
        tx.commit().map_err(|e| fail(&e))
    }

    /// The newest event that falls out of the history once `new` is added, if any.
    fn trim_cutoff(&self, new: &[u64]) -> Option<u64> {
        let excess = (self.event_rvs.len() + new.len()).saturating_sub(self.history);
        let last_dropped = excess.checked_sub(1)?;
        match self.event_rvs.get(last_dropped) {
            Some(&rv) => Some(rv),
            None => Some(new[last_dropped - self.event_rvs.len()]),
        }
    }

    /// Brings the in-memory view in line with what was just committed.
    fn committed(&mut self, rvs: &[u64]) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.last_rv = *rvs.last().expect("a batch is never empty");
        self.event_rvs.extend(rvs);
        let excess = self.event_rvs.len().saturating_sub(self.history);
        self.event_rvs.drain(..excess);
    }
}

fn write_batch(
    tx: &Transaction<'_>,
    batch: &[Pending],
    trim_to: Option<u64>,
    last_rv: u64,
) -> rusqlite::Result<()> {
    for pending in batch {
        write_record(tx, &pending.record)?;
    }
    if let Some(cutoff) = trim_to {
        tx.prepare_cached("DELETE FROM events WHERE rv <= ?1")?
            .execute([sql_rv(cutoff)?])?;
    }
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'last_rv'")?
        .execute([sql_rv(last_rv)?])?;
    Ok(())
}

/// Applies one change to the objects table and adds it to the events.
fn write_record(tx: &Transaction<'_>, r: &Record) -> rusqlite::Result<()> {
    let key = params![r.group, r.resource, r.namespace, r.name];
    if r.kind == RecordKind::Deleted {
        tx.prepare_cached(
            "DELETE FROM objects WHERE grp = ?1 AND resource = ?2 AND namespace = ?3 AND name = ?4",
        )?
        .execute(key)?;
    } else {
        tx.prepare_cached(
            "INSERT INTO objects (grp, resource, namespace, name, rv, object)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (grp, resource, namespace, name)
             DO UPDATE SET rv = excluded.rv, object = excluded.object",
        )?
        .execute(params![
            r.group,
            r.resource,
            r.namespace,
            r.name,
            sql_rv(r.rv)?,
            r.object.as_ref()
        ])?;
    }
    tx.prepare_cached(
        "INSERT INTO events (rv, grp, resource, namespace, name, kind, object)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        sql_rv(r.rv)?,
        r.group,
        r.resource,
        r.namespace,
        r.name,
        r.kind.as_str(),
        r.object.as_ref()
    ])?;
    Ok(())
}

/// resourceVersions are SQLite integers (i64); one that does not fit fails the write.
fn sql_rv(rv: u64) -> rusqlite::Result<i64> {
    i64::try_from(rv).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Reads a resourceVersion; a negative one is a row that does not parse.
fn rv_at(row: &rusqlite::Row<'_>, idx: usize) -> rusqlite::Result<u64> {
    let rv: i64 = row.get(idx)?;
    u64::try_from(rv).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(idx, rusqlite::types::Type::Integer, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot::Mutex;

    fn record(rv: u64, name: &str, kind: RecordKind) -> Record {
        Record {
            rv,
            group: "apps".into(),
            resource: "deployments".into(),
            namespace: "default".into(),
            name: name.into(),
            kind,
            object: Bytes::from(format!(r#"{{"name":"{name}","rv":{rv}}}"#)),
        }
    }

    fn open(dir: &Path, history: usize) -> (Journal, Recovered) {
        Journal::open(dir, history).expect("the journal opens")
    }

    fn open_err(dir: &Path) -> String {
        match Journal::open(dir, 10) {
            Ok(_) => panic!("a damaged journal opened"),
            Err(e) => e.to_string(),
        }
    }

    /// Writes one change under a lock, as the store does, so resourceVersions are
    /// appended in order, and returns its Durable.
    fn append_next(journal: &Journal, rv: &Mutex<u64>, name: &str) -> (u64, Durable) {
        let mut rv = rv.lock();
        *rv += 1;
        let durable = journal.append(record(*rv, name, RecordKind::Added));
        (*rv, durable)
    }

    #[test]
    fn journal_and_durable_can_be_shared_with_tasks() {
        fn shared<T: Send + Sync>() {}
        fn sent<T: Send>() {}
        shared::<Journal>();
        sent::<Durable>();
        shared::<JournalError>();
    }

    #[test]
    fn a_new_directory_is_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let (journal, recovered) = open(&dir, 10);
        assert_eq!(recovered.rv, 0);
        assert!(recovered.objects.is_empty() && recovered.events.is_empty());
        journal.close();
        assert!(dir.join(DB_FILE).exists());
        assert!(!dir.join("clusterset.db.new").exists());
        let (_, recovered) = open(&dir, 10);
        assert_eq!(recovered.rv, 0);
    }

    #[test]
    fn round_trip_keeps_objects_rv_and_recent_events() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 100);
        let changes = [
            record(1, "a", RecordKind::Added),
            record(2, "b", RecordKind::Added),
            record(3, "a", RecordKind::Modified),
            record(4, "c", RecordKind::Added),
            record(5, "b", RecordKind::Deleted),
            record(6, "c", RecordKind::Modified),
        ];
        let durables: Vec<_> = changes.iter().map(|r| journal.append(r.clone())).collect();
        for d in durables {
            d.wait_blocking().unwrap();
        }
        journal.close();

        let (journal, recovered) = open(tmp.path(), 4);
        assert_eq!(recovered.rv, 6);
        let live: Vec<_> = recovered
            .objects
            .iter()
            .map(|o| (o.name.as_str(), o.rv, o.object.clone()))
            .collect();
        assert_eq!(
            live,
            [
                ("a", 3, changes[2].object.clone()),
                ("c", 6, changes[5].object.clone())
            ]
        );
        // Trimmed to the newest 4, oldest first, exactly as appended.
        assert_eq!(recovered.events, changes[2..]);
        // The sequence continues after a restart, and the history stays bounded.
        journal
            .append(record(7, "d", RecordKind::Added))
            .wait_blocking()
            .unwrap();
        journal.close();
        let (_, recovered) = open(tmp.path(), 100);
        assert_eq!(recovered.rv, 7);
        let rvs: Vec<_> = recovered.events.iter().map(|e| e.rv).collect();
        assert_eq!(rvs, [4, 5, 6, 7]);
        assert_eq!(recovered.objects.len(), 3);
    }

    #[test]
    fn the_last_rv_counts_deletes() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 0);
        let first = journal.append(record(1, "a", RecordKind::Added));
        let last = journal.append(record(2, "a", RecordKind::Deleted));
        first.wait_blocking().unwrap();
        last.wait_blocking().unwrap();
        journal.close();
        let (_, recovered) = open(tmp.path(), 0);
        assert_eq!(recovered.rv, 2);
        assert!(recovered.objects.is_empty() && recovered.events.is_empty());
    }

    #[tokio::test]
    async fn durable_resolves_in_async_code() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 10);
        journal
            .append(record(1, "a", RecordKind::Added))
            .wait()
            .await
            .unwrap();
        journal.close();
    }

    #[test]
    fn writes_from_many_threads_are_durable_once_acknowledged() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 10_000);
        let rv = Mutex::new(0);
        let acked = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..16 {
                let (journal, rv, acked) = (&journal, &rv, &acked);
                s.spawn(move || {
                    for i in 0..50 {
                        let (rv, durable) = append_next(journal, rv, &format!("t{t}-{i}"));
                        durable.wait_blocking().unwrap();
                        acked.lock().push(rv);
                    }
                });
            }
        });
        // Dropped, not closed: the drop path must also let go of the directory.
        drop(journal);
        let (_, recovered) = open(tmp.path(), 10_000);
        assert_eq!(recovered.rv, 800);
        assert_eq!(recovered.objects.len(), 800);
        let mut rvs: Vec<_> = recovered.objects.iter().map(|o| o.rv).collect();
        rvs.sort();
        let mut acked = acked.into_inner();
        acked.sort();
        assert_eq!(rvs, acked);
        assert!(recovered.events.windows(2).all(|w| w[0].rv < w[1].rv));
    }

    #[test]
    fn group_commit_batches_queued_appends() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 100);
        let durables: Vec<_> = (1..=1000)
            .map(|rv| journal.append(record(rv, &format!("o{rv}"), RecordKind::Added)))
            .collect();
        for d in durables {
            d.wait_blocking().unwrap();
        }
        let commits = journal.commits();
        assert!(commits < 100, "1000 appends took {commits} transactions");
        journal.close();
        let (_, recovered) = open(tmp.path(), 100);
        assert_eq!(recovered.objects.len(), 1000);
        assert_eq!(recovered.events.len(), 100);
        assert_eq!(recovered.events[0].rv, 901);
    }

    #[test]
    fn a_failed_commit_fails_every_later_write() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 10);
        journal
            .append(record(5, "a", RecordKind::Added))
            .wait_blocking()
            .unwrap();
        // An out-of-order resourceVersion is refused, and the journal stays failed:
        // a later write that did succeed would leave a gap in what recovery sees.
        let bad = journal.append(record(5, "b", RecordKind::Added));
        assert!(bad
            .wait_blocking()
            .unwrap_err()
            .0
            .contains("does not follow"));
        let later = journal.append(record(6, "c", RecordKind::Added));
        assert!(later.wait_blocking().is_err());
        journal.close();
        let (_, recovered) = open(tmp.path(), 10);
        assert_eq!(recovered.rv, 5);
        assert_eq!(recovered.objects.len(), 1);
    }

    #[test]
    fn a_second_server_on_the_same_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 10);
        let err = open_err(tmp.path());
        assert!(err.contains("in use by another process"), "{err}");
        journal.close();
        open(tmp.path(), 10);
    }

    /// A journal written with a few objects, closed, so the file holds everything.
    fn written_journal(dir: &Path) -> PathBuf {
        let (journal, _) = open(dir, 1000);
        let big = Bytes::from(vec![b'x'; 3000]);
        let mut last = None;
        for rv in 1..=200 {
            let mut r = record(rv, &format!("o{rv}"), RecordKind::Added);
            r.object = big.clone();
            last = Some(journal.append(r));
        }
        last.unwrap().wait_blocking().unwrap();
        journal.close();
        let path = dir.join(DB_FILE);
        assert!(
            !sidecar(&path, "-wal").exists(),
            "close checkpoints the WAL"
        );
        path
    }

    fn assert_names_file(err: &str, what: &str) {
        assert!(err.contains(DB_FILE), "{err}");
        assert!(err.contains(what), "{err}");
    }

    #[test]
    fn random_bytes_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let junk: Vec<u8> = (0..8192u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        std::fs::write(tmp.path().join(DB_FILE), junk).unwrap();
        assert_names_file(&open_err(tmp.path()), "not a SQLite database");
    }

    #[test]
    fn empty_and_truncated_files_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = written_journal(tmp.path());
        let full = std::fs::read(&path).unwrap();
        for len in [0, 50, 4096, full.len() / 2, full.len() - 4096] {
            std::fs::write(&path, &full[..len]).unwrap();
            assert_names_file(&open_err(tmp.path()), "truncated");
        }
        std::fs::write(&path, &full).unwrap();
        assert_eq!(open(tmp.path(), 10).1.objects.len(), 200);
    }

    /// Appends 201..=260 to a journal written by `written_journal`, one commit each,
    /// and copies the database and its WAL while the journal is still open: what a
    /// `kill -9` at this point would leave on disk.
    fn snapshot_of_open_journal(dir: &Path) -> tempfile::TempDir {
        let (journal, _) = open(dir, 1000);
        for rv in 201..=260 {
            let r = record(rv, &format!("o{rv}"), RecordKind::Added);
            journal.append(r).wait_blocking().unwrap();
        }
        let copy = tempfile::tempdir().unwrap();
        for file in [DB_FILE.to_string(), format!("{DB_FILE}-wal")] {
            std::fs::copy(dir.join(&file), copy.path().join(&file)).unwrap();
        }
        journal.close();
        copy
    }

    #[test]
    fn a_truncated_file_with_a_wal_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        let copy = snapshot_of_open_journal(tmp.path());
        let path = copy.path().join(DB_FILE);
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() / 2]).unwrap();
        assert_names_file(&open_err(copy.path()), "corrupt");
    }

    #[test]
    fn a_torn_wal_tail_recovers_a_consistent_prefix() {
        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        let copy = snapshot_of_open_journal(tmp.path());
        // A write torn by power loss: the WAL ends in the middle of a frame. SQLite's
        // frame checksums drop the incomplete commit; earlier ones stay.
        let wal = copy.path().join(format!("{DB_FILE}-wal"));
        let bytes = std::fs::read(&wal).unwrap();
        std::fs::write(&wal, &bytes[..bytes.len() - 1000]).unwrap();
        let (_, torn) = open(copy.path(), 1000);
        assert!((200..260).contains(&torn.rv), "recovered rv {}", torn.rv);
        let mut rvs: Vec<_> = torn.objects.iter().map(|o| o.rv).collect();
        rvs.sort();
        assert_eq!(rvs, (1..=torn.rv).collect::<Vec<_>>());
        assert_eq!(torn.events.last().map(|e| e.rv), Some(torn.rv));
    }

    #[test]
    fn damaged_pages_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let path = written_journal(tmp.path());
        let mut bytes = std::fs::read(&path).unwrap();
        // Overwrite a page in the middle (past the schema pages) with garbage.
        let page = bytes.len() / 4096 / 2;
        bytes[page * 4096..(page + 1) * 4096].fill(0xa5);
        std::fs::write(&path, &bytes).unwrap();
        assert_names_file(&open_err(tmp.path()), "corrupt");
    }

    #[test]
    fn a_foreign_sqlite_database_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        drop(conn);
        assert_names_file(&open_err(tmp.path()), "not a clusterset journal");
    }

    /// Edits a closed journal with plain SQL, as damage or another version would.
    fn tamper(dir: &Path, sql: &str) {
        let conn = Connection::open(dir.join(DB_FILE)).unwrap();
        conn.execute_batch(sql).unwrap();
        conn.close().unwrap();
    }

    #[test]
    fn an_unknown_schema_version_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        tamper(
            tmp.path(),
            "UPDATE meta SET value = 2 WHERE key = 'schema_version'",
        );
        assert_names_file(&open_err(tmp.path()), "schema version 2");
    }

    #[test]
    fn rows_that_do_not_parse_are_refused() {
        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        tamper(
            tmp.path(),
            "PRAGMA ignore_check_constraints = ON; UPDATE events SET kind = 'BOGUS' WHERE rv = 150",
        );
        // quick_check reports the broken constraint before the row is even read.
        assert_names_file(&open_err(tmp.path()), "CHECK constraint failed in events");

        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        tamper(tmp.path(), "UPDATE objects SET rv = -3 WHERE name = 'o7'");
        assert_names_file(&open_err(tmp.path()), "unreadable object");

        let tmp = tempfile::tempdir().unwrap();
        written_journal(tmp.path());
        tamper(
            tmp.path(),
            "UPDATE meta SET value = 10 WHERE key = 'last_rv'",
        );
        assert_names_file(&open_err(tmp.path()), "above its last resourceVersion");
    }

    /// Set in the child process of `survives_kill_9`: the data directory to write to.
    const CHILD_DIR: &str = "CLUSTERSET_JOURNAL_KILL_TEST_DIR";
    const CHILD_HISTORY: usize = 50;

    /// In the child process only: writes from several threads until killed, printing
    /// each resourceVersion once its Durable resolved. Does nothing in a normal run.
    #[test]
    fn kill_test_child() {
        let Some(dir) = std::env::var_os(CHILD_DIR) else {
            return;
        };
        let (journal, _) = open(Path::new(&dir), CHILD_HISTORY);
        let rv = Mutex::new(0);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (journal, rv) = (&journal, &rv);
                s.spawn(move || {
                    for i in 0.. {
                        // Bounded, in case the parent died before killing us.
                        if std::time::Instant::now() > deadline {
                            return;
                        }
                        let (rv, durable) = append_next(journal, rv, &format!("t{t}-{i}"));
                        durable.wait_blocking().unwrap();
                        println!("acked {rv}");
                    }
                });
            }
        });
    }

    #[test]
    fn survives_kill_9() {
        use std::io::BufRead;
        let tmp = tempfile::tempdir().unwrap();
        // The test's name as libtest knows it: this module's path without the crate.
        let module = module_path!().split_once("::").unwrap().1;
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                &format!("{module}::kill_test_child"),
                "--exact",
                "--nocapture",
            ])
            .args(["--test-threads", "1"])
            .env(CHILD_DIR, tmp.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let mut acked = Vec::new();
        for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines() {
            if let Some(rv) = line.unwrap().strip_prefix("acked ") {
                acked.push(rv.parse::<u64>().unwrap());
                if acked.len() == 500 {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL, mid-write: the writers never stop on their own
        child.wait().unwrap();
        assert_eq!(acked.len(), 500, "the child stopped before writing enough");

        let (_, recovered) = open(tmp.path(), CHILD_HISTORY);
        let newest_acked = *acked.iter().max().unwrap();
        assert!(recovered.rv >= newest_acked);
        // Every resourceVersion up to the recovered one is an object: acknowledged ones
        // and any that committed but were not yet acknowledged, with no gaps.
        let mut rvs: Vec<_> = recovered.objects.iter().map(|o| o.rv).collect();
        rvs.sort();
        assert_eq!(rvs, (1..=recovered.rv).collect::<Vec<_>>());
        let events: Vec<_> = recovered.events.iter().map(|e| e.rv).collect();
        let first = recovered.rv + 1 - CHILD_HISTORY as u64;
        assert_eq!(events, (first..=recovered.rv).collect::<Vec<_>>());
    }

    /// `cargo test --release -- --ignored --nocapture bench`: appends/s with 64
    /// concurrent writers, each waiting for durability before its next write.
    #[test]
    #[ignore]
    fn bench_appends_with_64_writers() {
        let tmp = tempfile::tempdir().unwrap();
        let (journal, _) = open(tmp.path(), 10_000);
        let rv = Mutex::new(0);
        let object = Bytes::from(vec![b'x'; 1024]);
        let per_writer = 300;
        let start = std::time::Instant::now();
        std::thread::scope(|s| {
            for t in 0..64 {
                let (journal, rv, object) = (&journal, &rv, &object);
                s.spawn(move || {
                    for i in 0..per_writer {
                        let durable = {
                            let mut rv = rv.lock();
                            *rv += 1;
                            let mut r = record(*rv, &format!("t{t}-{i}"), RecordKind::Added);
                            r.object = object.clone();
                            journal.append(r)
                        };
                        durable.wait_blocking().unwrap();
                    }
                });
            }
        });
        let elapsed = start.elapsed().as_secs_f64();
        let total = 64 * per_writer;
        println!(
            "{total} appends in {elapsed:.2}s: {:.0} appends/s, {} transactions",
            total as f64 / elapsed,
            journal.commits()
        );
        journal.close();
    }
}
