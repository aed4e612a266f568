//! The provider ledger: one row per provider task a job paid for (or reserved money for), in
//! the daemon's SQLite store. It does two jobs:
//! - budgets: Gemini and Replicate have no balance endpoint, so spend per backend over a
//!   rolling window is summed here (reserved and running tasks count at their quote) and a
//!   new task is refused when it would pass the configured budget — checked and reserved in
//!   one transaction, so two jobs cannot both take the last dollar;
//! - resumption: the task id is written as soon as the provider returns it, so a job resumed
//!   after a crash polls the task it already paid for instead of creating (and paying) again.

use std::sync::Arc;

use rusqlite::{params, OptionalExtension};

use crate::jobs::store::{Store, StoreError};

/// Tables of this module, created by the store's schema migration to version 2.
pub const SCHEMA_V2: &str = "
CREATE TABLE IF NOT EXISTS provider_tasks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL,
    backend TEXT NOT NULL,
    task_id TEXT NOT NULL DEFAULT '',
    -- reserved (create in flight) | running | charged | refunded | released (never created)
    state TEXT NOT NULL,
    quoted_micros INTEGER NOT NULL,
    charged_micros INTEGER NOT NULL DEFAULT 0,
    billed_units REAL NOT NULL DEFAULT 0,
    billed_unit TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_tasks_job ON provider_tasks (job_id, backend);
CREATE INDEX IF NOT EXISTS provider_tasks_spend ON provider_tasks (backend, created_ms);
";

fn sql(op: &'static str) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |source| StoreError::Sql { op, source }
}

/// A task a job already started.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTask {
    pub row: i64,
    pub task_id: String,
    pub quoted_micros: i64,
}

/// A budget: at most `budget_micros` over the last `window_ms`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub budget_micros: i64,
    pub window_ms: i64,
}

/// Why a reservation was refused.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverBudget {
    pub needed_micros: i64,
    pub available_micros: i64,
}

/// How a task ended, for its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    Charged,
    Refunded,
}

/// One backend's view of the ledger.
#[derive(Clone)]
pub struct Ledger {
    store: Arc<Store>,
    backend: &'static str,
}

/// Spend that counts against a budget: settled charges, plus quotes of tasks still open.
const SPEND_SQL: &str = "SELECT COALESCE(SUM(CASE state
        WHEN 'reserved' THEN quoted_micros
        WHEN 'running' THEN quoted_micros
        WHEN 'charged' THEN charged_micros
        ELSE 0 END), 0)
     FROM provider_tasks WHERE backend = ?1 AND created_ms >= ?2";

impl Ledger {
    pub fn new(store: Arc<Store>, backend: &'static str) -> Ledger {
        Ledger { store, backend }
    }

    /// The task this job started earlier (running, or charged but maybe not downloaded).
    pub fn open_task(&self, job_id: &str) -> Result<Option<OpenTask>, StoreError> {
        self.store.with_conn(|c| {
            c.query_row(
                "SELECT id, task_id, quoted_micros FROM provider_tasks
                 WHERE job_id = ?1 AND backend = ?2 AND task_id <> '' AND state IN ('running', 'charged')
                 ORDER BY id DESC LIMIT 1",
                params![job_id, self.backend],
                |r| {
                    Ok(OpenTask {
                        row: r.get(0)?,
                        task_id: r.get(1)?,
                        quoted_micros: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(sql("find open provider task"))
        })
    }

    /// Spend counted against the budget since `since_ms`.
    pub fn spent_since(&self, since_ms: i64) -> Result<i64, StoreError> {
        self.store.with_conn(|c| {
            c.query_row(SPEND_SQL, params![self.backend, since_ms], |r| r.get(0))
                .map_err(sql("sum provider spend"))
        })
    }

    /// Money left in `budget` at `now_ms`.
    pub fn available(&self, budget: Budget, now_ms: i64) -> Result<i64, StoreError> {
        Ok(budget.budget_micros - self.spent_since(now_ms - budget.window_ms)?)
    }

    /// Reserves `quote_micros` for a task of `job_id` about to be created. With a budget, the
    /// check and the reservation are one transaction. Rows a crashed earlier attempt left
    /// `reserved` (the create call never answered) are released first: the provider has no
    /// idempotency key, so whether that call created a task cannot be known.
    pub fn reserve(
        &self,
        job_id: &str,
        quote_micros: i64,
        budget: Option<Budget>,
        now_ms: i64,
    ) -> Result<Result<i64, OverBudget>, StoreError> {
        self.store.with_conn(|c| {
            let tx = c.transaction().map_err(sql("begin reserve"))?;
            tx.execute(
                "UPDATE provider_tasks SET state = 'released', updated_ms = ?3
                 WHERE job_id = ?1 AND backend = ?2 AND state = 'reserved'",
                params![job_id, self.backend, now_ms],
            )
            .map_err(sql("release stale reservations"))?;
            if let Some(b) = budget {
                let spent: i64 = tx
                    .query_row(SPEND_SQL, params![self.backend, now_ms - b.window_ms], |r| {
                        r.get(0)
                    })
                    .map_err(sql("sum provider spend"))?;
                let available = b.budget_micros - spent;
                if quote_micros > available {
                    return Ok(Err(OverBudget {
                        needed_micros: quote_micros,
                        available_micros: available.max(0),
                    }));
                }
            }
            tx.execute(
                "INSERT INTO provider_tasks (job_id, backend, state, quoted_micros, created_ms, updated_ms)
                 VALUES (?1, ?2, 'reserved', ?3, ?4, ?4)",
                params![job_id, self.backend, quote_micros, now_ms],
            )
            .map_err(sql("reserve provider spend"))?;
            let row = tx.last_insert_rowid();
            tx.commit().map_err(sql("commit reservation"))?;
            Ok(Ok(row))
        })
    }

    /// The provider created the task: remember its id before anything else happens.
    pub fn started(&self, row: i64, task_id: &str, now_ms: i64) -> Result<(), StoreError> {
        self.update(
            "UPDATE provider_tasks SET task_id = ?2, state = 'running', updated_ms = ?3 WHERE id = ?1",
            params![row, task_id, now_ms],
            "record provider task",
        )
    }

    /// The create call failed: nothing was spent.
    pub fn release(&self, row: i64, now_ms: i64) -> Result<(), StoreError> {
        self.update(
            "UPDATE provider_tasks SET state = 'released', updated_ms = ?2 WHERE id = ?1",
            params![row, now_ms],
            "release reservation",
        )
    }

    /// The task ended: what it cost.
    pub fn settle(
        &self,
        row: i64,
        how: Settlement,
        charged_micros: i64,
        billed_units: f64,
        billed_unit: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let state = match how {
            Settlement::Charged => "charged",
            Settlement::Refunded => "refunded",
        };
        self.update(
            "UPDATE provider_tasks SET state = ?2, charged_micros = ?3, billed_units = ?4, billed_unit = ?5, updated_ms = ?6 WHERE id = ?1",
            params![row, state, charged_micros, billed_units, billed_unit, now_ms],
            "settle provider task",
        )
    }

    /// What `job_id` has cost with this backend so far: settled charges, plus the quote of a
    /// task whose end is unknown; with the latest task's id and billed units.
    pub fn job_spend(&self, job_id: &str) -> Result<Option<super::remote::Spend>, StoreError> {
        self.store.with_conn(|c| {
            let mut stmt = c
                .prepare(
                    "SELECT task_id, state, quoted_micros, charged_micros, billed_units, billed_unit
                     FROM provider_tasks WHERE job_id = ?1 AND backend = ?2 AND task_id <> ''
                     ORDER BY id",
                )
                .map_err(sql("prepare job spend"))?;
            let rows = stmt
                .query_map(params![job_id, self.backend], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, f64>(4)?,
                        r.get::<_, String>(5)?,
                    ))
                })
                .map_err(sql("job spend"))?;
            let mut spend: Option<super::remote::Spend> = None;
            for row in rows {
                let (task_id, state, quoted, charged, units, unit) =
                    row.map_err(sql("read job spend"))?;
                let s = spend.get_or_insert_with(Default::default);
                s.usd_micros += match state.as_str() {
                    "running" => quoted,
                    "charged" => charged,
                    _ => 0,
                };
                if state == "charged" {
                    s.units += units;
                    s.unit = unit;
                }
                s.task_id = task_id;
            }
            Ok(spend)
        })
    }

    fn update(
        &self,
        q: &str,
        p: impl rusqlite::Params,
        op: &'static str,
    ) -> Result<(), StoreError> {
        self.store
            .with_conn(|c| c.execute(q, p).map(|_| ()).map_err(sql(op)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_counts_open_quotes_and_settled_charges() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let l = Ledger::new(Arc::clone(&store), "veo");
        let b = Budget {
            budget_micros: 1_000_000,
            window_ms: 1_000,
        };
        let r1 = l.reserve("j1", 600_000, Some(b), 10_000).unwrap().unwrap();
        // 600k reserved: a second 600k does not fit, and the refusal says what is left.
        assert_eq!(
            l.reserve("j2", 600_000, Some(b), 10_001).unwrap(),
            Err(OverBudget {
                needed_micros: 600_000,
                available_micros: 400_000
            })
        );
        l.started(r1, "op-1", 10_002).unwrap();
        assert_eq!(
            l.open_task("j1").unwrap().map(|t| t.task_id),
            Some("op-1".to_string())
        );
        // Settled for less than quoted (e.g. a refund of part): the budget sees the charge.
        l.settle(r1, Settlement::Charged, 200_000, 5.0, "s", 10_003)
            .unwrap();
        assert_eq!(l.available(b, 10_004).unwrap(), 800_000);
        // Outside the window the spend no longer counts.
        assert_eq!(l.available(b, 20_000).unwrap(), 1_000_000);
        // A refunded task costs nothing; a released reservation neither.
        let r2 = l.reserve("j2", 300_000, Some(b), 10_005).unwrap().unwrap();
        l.release(r2, 10_006).unwrap();
        assert_eq!(l.available(b, 10_007).unwrap(), 800_000);
        // Another backend's rows are not ours.
        assert_eq!(Ledger::new(store, "runway").spent_since(0).unwrap(), 0);
    }

    #[test]
    fn a_crashed_create_is_released_on_the_next_reservation() {
        let store = Arc::new(Store::open_in_memory().unwrap());
        let l = Ledger::new(store, "replicate");
        l.reserve("j1", 500, None, 1).unwrap().unwrap();
        assert_eq!(l.spent_since(0).unwrap(), 500);
        l.reserve("j1", 500, None, 2).unwrap().unwrap();
        assert_eq!(l.spent_since(0).unwrap(), 500);
        assert!(l.open_task("j1").unwrap().is_none());
    }
}
