//! Status reports, written in batches by a thread of their own (group commit).
//!
//! A report is a write transaction: its log entry, its attempt, the rollouts' counters and,
//! when rule 4 says so, the pause, all or nothing. Committing one transaction per report, each
//! after its own hand-off to the blocking pool and its own wait for the connection, made
//! reports the queue the fleet simulator waited in. Here one writer thread takes every report
//! waiting for it and writes them in one transaction:
//!
//! - **No wait added.** The writer takes what is queued as soon as it is free: a lone report
//!   is a batch of one and commits at once, and the reports that arrive while a batch commits
//!   form the next one. Nothing ever waits for a batch to fill.
//! - **Planned as if alone.** The reports of a batch are planned one after another in its
//!   transaction, each reading what the reports before it wrote: rule 4 decides on the exact
//!   counters and so fires on the crossing report, once, and an event id repeated within a
//!   batch is answered as a duplicate of the first.
//! - **Failing alone.** Each report runs under a savepoint of its own: one the state machine
//!   refuses, or whose writes fail, is undone to its savepoint and answered with its error, and
//!   the others stay.
//! - **Answered after the commit.** No report is answered before the transaction holding it
//!   has committed, as durably as any other (`schema::open`); when the commit fails, or SQLite
//!   gives up the whole transaction, every report of the batch gets the error and none is
//!   stored.

use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Instant;

use ota_core::device::LogEntry;
use ota_core::ids::DeviceId;
use ota_core::install_timeout::SilentAttempt;
use ota_core::ports::{StoreError, StoreResult};
use ota_core::progress::RolloutProgress;
use ota_core::report_plan::{self, Attempt, Seen, StatusOutcome, StatusReport};
use ota_core::rollout::Rollout;
use ota_core::status::OtaStatus;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::meta::{Db, load_device, load_rollout};
use crate::sql::{db_err, from_micros, micros, one_doc, sql_int, to_doc};
use crate::{audit, counters};

/// The most reports one transaction holds. Measured in the 10,000-device fleet simulation (2
/// loaded cores), a commit costs about 100 µs and a report's planning and writes about 170 µs:
/// from a dozen reports on the commit is a few percent of a batch, so bigger batches save next
/// to nothing. What a bigger batch does cost is time holding the connection (a check waits
/// behind the whole batch: about 256 × 0.2 ms = 50 ms at this bound) and the wait of the
/// batch's first report. 256 is also the simulator's default number of devices in flight, so
/// one batch can take every report a full fleet-sim run has waiting (the most seen was 183).
pub(crate) const MAX_BATCH: usize = 256;

type Answer = StoreResult<StatusOutcome>;

/// A report waiting for the writer, and where its answer goes.
struct Queued {
    report: StatusReport,
    answer: oneshot::Sender<Answer>,
}

/// The queue to the writer thread, and the thread.
pub(crate) struct ReportWriter {
    /// Always Some but in `drop`, which closes it to stop the writer.
    queue: Option<mpsc::Sender<Queued>>,
    writer: Option<thread::JoinHandle<()>>,
}

impl ReportWriter {
    /// Starts the writer on `db`, whose reports it alone writes.
    pub(crate) fn start(db: Arc<Db>) -> StoreResult<Self> {
        let (queue, queued) = mpsc::channel::<Queued>();
        let writer = thread::Builder::new()
            .name("ota-reports".into())
            .spawn(move || {
                while let Ok(first) = queued.recv() {
                    let batch = std::iter::once(first)
                        .chain(queued.try_iter().take(MAX_BATCH - 1))
                        .collect();
                    write_batch(&db, batch);
                }
            })
            .map_err(|e| StoreError::Internal(format!("cannot start the report writer: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            writer: Some(writer),
        })
    }

    /// Records `report`; answers once the transaction holding it has committed.
    pub(crate) async fn record(&self, report: StatusReport) -> Answer {
        let stopped = || StoreError::Internal("the status report writer has stopped".into());
        let (answer, answered) = oneshot::channel();
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(Queued { report, answer })
            .map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

impl Drop for ReportWriter {
    /// Closes the queue and waits for the writer to write what is still in it and end, so that
    /// the store is whole once its last clone is dropped (the writer's end drops its `Db`).
    fn drop(&mut self) {
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the status report writer panicked");
        }
    }
}

/// Writes `batch` in one transaction and answers each report once it has committed. An answer
/// nobody waits for any more (the device hung up) is dropped: its report is stored all the same.
fn write_batch(db: &Db, batch: Vec<Queued>) {
    let started = Instant::now();
    let written = db.lock().and_then(|mut conn| {
        db.transaction(&mut conn, |tx| {
            batch
                .iter()
                .map(|q| under_savepoint(tx, &q.report))
                .collect::<StoreResult<Vec<Answer>>>()
        })
    });
    tracing::debug!(
        reports = batch.len(),
        micros = started.elapsed().as_micros(),
        ok = written.is_ok(),
        "status report batch"
    );
    match written {
        Ok(answers) => {
            for (q, answer) in batch.into_iter().zip(answers) {
                let _ = q.answer.send(answer);
            }
        }
        Err(e) => {
            for q in batch {
                let _ = q.answer.send(Err(e.clone()));
            }
        }
    }
}

/// Records one report of a batch under a savepoint of its own: Ok with the report's answer
/// (its writes undone when that is an error), Err when the batch's transaction is lost.
fn under_savepoint(tx: &Transaction<'_>, report: &StatusReport) -> StoreResult<Answer> {
    tx.execute_batch("SAVEPOINT report").map_err(db_err)?;
    match record(tx, report) {
        Ok(outcome) => {
            tx.execute_batch("RELEASE report").map_err(db_err)?;
            Ok(Ok(outcome))
        }
        // After some errors (a full disk, an I/O error) SQLite rolls the whole transaction
        // back itself: there is no savepoint left to go back to, and the batch fails with them.
        Err(e) if tx.is_autocommit() => Err(e),
        Err(e) => {
            tx.execute_batch("ROLLBACK TO report; RELEASE report")
                .map_err(db_err)?;
            Ok(Err(e))
        }
    }
}

/// Every read and write of `report_plan` for one report, in the batch's transaction: rule 4
/// reads the counters as the reports before this one left them, and this one's own writes.
fn record(tx: &Transaction<'_>, r: &StatusReport) -> Answer {
    if let Some(stored) = one_doc::<LogEntry>(
        tx,
        "SELECT doc FROM ota_log WHERE device_id = ?1 AND event_id = ?2",
        &[&r.device_id.as_str(), &r.event_id],
    )? {
        return Ok(report_plan::duplicate(stored));
    }
    let device = r.device_id.as_str();
    let last_offer = load_device(tx, device)?.and_then(|d| d.last_offer);
    let seen = Seen::new(
        attempt(tx, device, &r.firmware_id)?,
        last_offer.as_ref(),
        &r.firmware_id,
    );
    let attribution = seen
        .attribute(r)
        .map_err(|e| StoreError::Conflict(e.to_string()))?;
    let mut counters = Vec::new();
    for id in attribution.counters() {
        counters.push((id.to_owned(), counters::progress(tx, id)?));
    }
    let rollout = match attribution.pause_candidate(r) {
        Some(id) => load_rollout(tx, id)?,
        None => None,
    };
    let plan = attribution.plan(
        r,
        |id| {
            counters
                .iter()
                .find(|(c, _)| c == id)
                .map_or_else(RolloutProgress::default, |(_, p)| *p)
        },
        rollout.as_ref(),
    );
    let entry = &plan.entry;
    tx.execute(
        "INSERT INTO ota_log (id, event_id, device_id, firmware_id, status, created_at, doc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            entry.id,
            entry.event_id,
            device,
            entry.firmware_id,
            entry.status.as_str(),
            micros(entry.created_at),
            to_doc(entry)?
        ],
    )
    .map_err(db_err)?;
    counters::report_stored(tx, r.at, r.status)?;
    if let Some(a) = &plan.attempt {
        tx.execute(
            "INSERT INTO attempts (device_id, firmware_id, status, failures, rollout_id, last_report_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (device_id, firmware_id)
             DO UPDATE SET status = ?3, failures = ?4, rollout_id = ?5, last_report_at = ?6",
            params![
                device,
                r.firmware_id,
                a.status.as_str(),
                a.failures,
                a.rollout_id,
                a.last_report_at.map(micros)
            ],
        )
        .map_err(db_err)?;
    }
    for (id, progress) in &plan.progress {
        counters::save_progress(tx, id, progress)?;
    }
    if let Some(pause) = &plan.pause {
        write_rollout(tx, &pause.rollout)?;
        audit::insert(tx, &pause.audit)?;
    }
    Ok(plan.outcome())
}

fn attempt(tx: &Connection, device: &str, firmware: &str) -> StoreResult<Option<Attempt>> {
    tx.prepare_cached(&format!(
        "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE device_id = ?1 AND firmware_id = ?2"
    ))
    .and_then(|mut stmt| {
        stmt.query_row(params![device, firmware], attempt_row)
            .optional()
    })
    .map_err(db_err)
    .map(Option::flatten)
}

/// The columns [`attempt_row`] reads, in its order.
pub(crate) const ATTEMPT_COLUMNS: &str = "status, failures, rollout_id, last_report_at";

/// An attempt from a row of [`ATTEMPT_COLUMNS`] (None for a status this build does not know).
pub(crate) fn attempt_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Attempt>> {
    let status: String = r.get(0)?;
    let (failures, rollout_id, last_report_at): (u32, Option<String>, Option<i64>) =
        (r.get(1)?, r.get(2)?, r.get(3)?);
    Ok(OtaStatus::parse(&status).map(|status| Attempt {
        status,
        failures,
        rollout_id,
        last_report_at: last_report_at.and_then(from_micros),
    }))
}

/// `MetaStore::silent_attempts` from the `open_attempts` index.
pub(crate) fn silent_attempts(
    tx: &Connection,
    rollout_id: &str,
    before: OffsetDateTime,
    limit: u32,
) -> StoreResult<Vec<SilentAttempt>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT device_id, firmware_id, status, last_report_at FROM attempts
             WHERE rollout_id = ?1 AND status IN ('downloading', 'installing')
               AND last_report_at <= ?2
             ORDER BY last_report_at LIMIT ?3",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![rollout_id, micros(before), limit], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .map_err(db_err)?;
    let mut silent = Vec::new();
    for row in rows {
        let (device, firmware_id, status, at) = row.map_err(db_err)?;
        if let (Ok(device_id), Some(status), Some(since)) = (
            DeviceId::parse(&device),
            OtaStatus::parse(&status),
            from_micros(at),
        ) {
            silent.push(SilentAttempt {
                device_id,
                firmware_id,
                status,
                since,
            });
        }
    }
    Ok(silent)
}

/// Rewrites a rollout read in the same transaction.
fn write_rollout(tx: &Transaction<'_>, r: &Rollout) -> StoreResult<()> {
    tx.execute(
        "UPDATE rollouts SET state = ?2, revision = ?3, doc = ?4 WHERE id = ?1",
        params![r.id, r.state.as_str(), sql_int(r.revision), to_doc(r)?],
    )
    .map_err(db_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use futures_util::future::join_all;
    use futures_util::poll;
    use ota_core::device::Offer;
    use ota_core::ports::MetaStore;
    use ota_core::release::{Release, ReleaseState};
    use ota_core::rollout::RolloutState;
    use ota_core::status::OtaStatus::{Downloading, Failed, Installing, Success};
    use ota_store_conformance::fixtures::{auto_pauses, check_in, now, release, report, rollout};

    use super::*;
    use crate::SqliteMeta;

    /// A store with a release of `demo` and an active rollout of it (`threshold` % of failures
    /// after `min_reports`) offered to the devices `d0` .. `d{devices - 1}`.
    struct Fleet {
        _dir: tempfile::TempDir,
        path: PathBuf,
        store: SqliteMeta,
        fw: Release,
        rollout: Rollout,
    }

    async fn fleet(devices: usize, threshold: Option<f64>, min_reports: u32) -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ota.sqlite3");
        let store = SqliteMeta::open(&path).unwrap();
        let fw = release("demo", "1.0.0", ReleaseState::Ready);
        store.insert_release(&fw).await.unwrap();
        let mut r = rollout(&fw, RolloutState::Active);
        r.failure_threshold_percent = threshold;
        r.min_reports = min_reports;
        store.insert_rollout(&r, &[]).await.unwrap();
        let offer = Offer {
            firmware_id: fw.id.clone(),
            version: fw.version.clone(),
            rollout_id: r.id.clone(),
            at: now(),
        };
        for i in 0..devices {
            store
                .record_check(&check_in(&format!("d{i}"), "demo", "0.1.0"), &|_| {
                    Some(offer.clone())
                })
                .await
                .unwrap();
        }
        Fleet {
            _dir: dir,
            path,
            store,
            fw,
            rollout: r,
        }
    }

    /// Calls `hook` at every commit of the store's connection from now on; a hook returning
    /// true turns that commit into a rollback.
    fn on_commit(s: &SqliteMeta, hook: impl FnMut() -> bool + Send + 'static) {
        s.with_connection(|conn| conn.commit_hook(Some(hook)));
    }

    fn count_commits(s: &SqliteMeta) -> Arc<AtomicUsize> {
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        on_commit(s, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            false
        });
        commits
    }

    /// The (device, event id, status) of every log entry in the file, read through a
    /// connection of its own: what a crash right now would leave.
    fn stored_log(db: &Path) -> Vec<(String, String, String)> {
        let conn = Connection::open(db).unwrap();
        let mut stmt = conn
            .prepare("SELECT device_id, event_id, status FROM ota_log ORDER BY seq")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// Another connection holding the database's write lock, as another writer would: the
    /// report writer's next transaction waits for it (for up to the 5 s busy timeout).
    fn block_writes(db: &Path) -> Connection {
        let conn = Connection::open(db).unwrap();
        conn.execute_batch("BEGIN IMMEDIATE").unwrap();
        conn
    }

    /// Sends every report (the first poll of `record_status` queues it) while writes are
    /// blocked, then unblocks them, so that the writer finds them all waiting: the first batch
    /// holds what it took before it found writes blocked, the second the rest (at most
    /// `MAX_BATCH` of them). The answers, in the order of `reports`.
    async fn queued_together(f: &Fleet, reports: &[StatusReport]) -> Vec<Answer> {
        let blocker = block_writes(&f.path);
        let mut answers: Vec<_> = reports.iter().map(|r| f.store.record_status(r)).collect();
        for a in &mut answers {
            assert!(poll!(a).is_pending(), "answered while writes were blocked");
        }
        blocker.execute_batch("ROLLBACK").unwrap();
        join_all(answers).await
    }

    #[tokio::test]
    async fn reports_waiting_together_share_one_transaction() {
        let f = fleet(200, None, 1).await;
        let commits = count_commits(&f.store);
        f.store
            .record_status(&report("d0", &f.fw, Downloading, "alone"))
            .await
            .unwrap();
        assert_eq!(
            commits.load(Ordering::SeqCst),
            1,
            "a lone report commits alone"
        );

        commits.store(0, Ordering::SeqCst);
        let reports: Vec<_> = (0..200)
            .map(|i| report(&format!("d{i}"), &f.fw, Installing, "together"))
            .collect();
        for answer in queued_together(&f, &reports).await {
            assert!(answer.unwrap().changed);
        }
        assert!(
            commits.load(Ordering::SeqCst) <= 2,
            "200 reports in {} transactions",
            commits.load(Ordering::SeqCst)
        );
        assert_eq!(stored_log(&f.path).len(), 201);
        let p = f.store.rollout_progress(&f.rollout.id).await.unwrap();
        assert_eq!(p.devices.installing, 200);
        assert_eq!(p.devices.downloading, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_devices_are_batched_and_all_counted() {
        let devices = 300;
        let f = fleet(devices, None, 1).await;
        let commits = count_commits(&f.store);
        let store = Arc::new(f.store.clone());
        let tasks: Vec<_> = (0..devices)
            .map(|i| {
                let (s, fw) = (store.clone(), f.fw.clone());
                tokio::spawn(async move {
                    // One device updating: each report waits for the answer to the one before.
                    let d = format!("d{i}");
                    let last = if i % 10 == 0 { Failed } else { Success };
                    for (n, st) in [Downloading, Installing, last].into_iter().enumerate() {
                        s.record_status(&report(&d, &fw, st, &format!("e{n}")))
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in join_all(tasks).await {
            t.unwrap();
        }
        let reports = 3 * devices;
        let commits = commits.load(Ordering::SeqCst);
        assert!(
            commits * 3 <= reports,
            "{reports} reports in {commits} transactions"
        );
        assert_eq!(stored_log(&f.path).len(), reports);
        let p = f.store.rollout_progress(&f.rollout.id).await.unwrap();
        assert_eq!(p.devices.success, 270);
        assert_eq!(p.devices.failed, 30);
        assert_eq!((p.success_reports, p.failure_reports), (270, 30));
    }

    #[tokio::test]
    async fn a_failing_report_spoils_nothing_else_in_its_batch() {
        let f = fleet(8, None, 1).await;
        let s = &f.store;
        s.record_status(&report("d4", &f.fw, Success, "done"))
            .await
            .unwrap();
        let replayed = s
            .record_status(&report("d5", &f.fw, Downloading, "sent-before"))
            .await
            .unwrap();
        // A failure after the report's first writes (its log entry, the hour's counter): the
        // savepoint must take those back.
        s.with_connection(|conn| {
            conn.execute_batch(
                "CREATE TEMP TRIGGER refuse_d7 BEFORE INSERT ON attempts WHEN NEW.device_id = 'd7'
                 BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            )
            .unwrap();
        });
        let commits = count_commits(s);
        let batch = [
            report("d0", &f.fw, Downloading, "a"),
            report("d4", &f.fw, Downloading, "backwards"),
            report("d1", &f.fw, Downloading, "a"),
            report("d3", &f.fw, Downloading, "twice"),
            report("d7", &f.fw, Downloading, "refused"),
            report("d3", &f.fw, Downloading, "twice"),
            report("d5", &f.fw, Downloading, "sent-before"),
            report("d2", &f.fw, Downloading, "a"),
        ];
        let answers = queued_together(&f, &batch).await;
        assert!(commits.load(Ordering::SeqCst) <= 2);

        for i in [0, 2, 7] {
            assert!(answers[i].as_ref().unwrap().changed, "report {i}");
        }
        assert!(
            matches!(answers[1], Err(StoreError::Conflict(_))),
            "success -> downloading is refused: {:?}",
            answers[1]
        );
        assert!(
            matches!(answers[4], Err(StoreError::Conflict(_))),
            "{:?}",
            answers[4]
        );
        let (first, again) = (answers[3].as_ref().unwrap(), answers[5].as_ref().unwrap());
        assert!(
            !first.duplicate && again.duplicate,
            "a repeat within the batch"
        );
        assert_eq!(first.entry, again.entry);
        let replay = answers[6].as_ref().unwrap();
        assert!(replay.duplicate);
        assert_eq!(replay.entry, replayed.entry);

        let log = stored_log(&f.path);
        let events: Vec<_> = log
            .iter()
            .map(|(d, e, _)| (d.as_str(), e.as_str()))
            .collect();
        assert_eq!(
            events,
            [
                ("d4", "done"),
                ("d5", "sent-before"),
                ("d0", "a"),
                ("d1", "a"),
                ("d3", "twice"),
                ("d2", "a"),
            ]
        );
        let outcomes = s.fleet_metrics(now()).await.unwrap().outcomes_24h;
        assert_eq!(
            (outcomes.success, outcomes.downloading),
            (1, 5),
            "each stored report counted once, none of the refused ones"
        );
        let p = s.rollout_progress(&f.rollout.id).await.unwrap();
        assert_eq!((p.devices.downloading, p.devices.success), (5, 1));
    }

    #[tokio::test]
    async fn the_pause_fires_once_on_the_crossing_report_within_a_batch() {
        // 25 %, at least 8 final reports: the 8th report below makes 3 of 8 (37.5 %).
        let f = fleet(12, Some(25.0), 8).await;
        let outcomes = [
            Success, Failed, Success, Failed, Failed, Success, Success, Success, Failed, Failed,
            Success, Failed,
        ];
        let reports: Vec<_> = outcomes
            .iter()
            .enumerate()
            .map(|(i, st)| report(&format!("d{i}"), &f.fw, *st, "final"))
            .collect();
        let answers = queued_together(&f, &reports).await;
        let paused: Vec<_> = answers
            .iter()
            .enumerate()
            .filter(|(_, a)| a.as_ref().unwrap().paused_rollout.is_some())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(paused, [7]);
        assert_eq!(
            answers[7].as_ref().unwrap().paused_rollout.as_deref(),
            Some(f.rollout.id.as_str())
        );
        let stored = f.store.get_rollout(&f.rollout.id).await.unwrap().unwrap();
        assert_eq!(stored.state, RolloutState::Paused);
        assert_eq!(stored.revision, f.rollout.revision + 1);
        let audit = auto_pauses(&f.store).await;
        assert_eq!(audit.len(), 1);
        assert_eq!(audit[0].details["failure_reports"], 3);
        assert_eq!(audit[0].details["success_reports"], 5);
        let p = f.store.rollout_progress(&f.rollout.id).await.unwrap();
        assert_eq!((p.success_reports, p.failure_reports), (6, 6));
    }

    #[tokio::test]
    async fn a_report_is_answered_only_once_committed() {
        let f = fleet(1, None, 1).await;
        let blocker = block_writes(&f.path);
        let r = report("d0", &f.fw, Downloading, "e1");
        let mut answer = f.store.record_status(&r);
        assert!(poll!(&mut answer).is_pending());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(
            poll!(&mut answer).is_pending(),
            "no answer while its transaction cannot commit"
        );
        assert!(stored_log(&f.path).is_empty());
        blocker.execute_batch("ROLLBACK").unwrap();
        let outcome = answer.await.unwrap();
        // Read right after the answer, from the file, by a connection of its own.
        assert_eq!(
            stored_log(&f.path),
            [("d0".to_owned(), "e1".to_owned(), "downloading".to_owned())]
        );
        assert!(outcome.changed);
    }

    #[tokio::test]
    async fn a_failed_commit_fails_every_report_of_the_batch() {
        let f = fleet(20, None, 1).await;
        let refuse = Arc::new(AtomicBool::new(true));
        let refusing = refuse.clone();
        on_commit(&f.store, move || refusing.load(Ordering::SeqCst));
        let reports: Vec<_> = (0..20)
            .map(|i| report(&format!("d{i}"), &f.fw, Downloading, "e1"))
            .collect();
        for answer in queued_together(&f, &reports).await {
            assert!(answer.is_err(), "{answer:?}");
        }
        refuse.store(false, Ordering::SeqCst);
        assert!(stored_log(&f.path).is_empty());
        let p = f.store.rollout_progress(&f.rollout.id).await.unwrap();
        assert_eq!(p.devices.downloading, 0);

        let again = f.store.record_status(&reports[0]).await.unwrap();
        assert!(!again.duplicate, "nothing of the failed batch was kept");
        assert_eq!(stored_log(&f.path).len(), 1);
    }
}
