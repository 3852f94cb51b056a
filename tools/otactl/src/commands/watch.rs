//! `otactl rollout watch ID`: a live view of a staged rollout (docs/api.md §9.5). The API has no
//! push channel, so it polls the rollout and prints a block whenever what it shows changed,
//! with each decision once, until the rollout can no longer move by itself.

use std::time::Duration;

use ota_core::metrics::RolloutWithProgress;
use ota_core::rollout::Rollout;
use ota_core::rollout_evaluation::Decision;
use ota_core::rollout_lifecycle::RolloutState;

use super::{poll, poll_every};
use crate::cli::Output;
use crate::client::{Client, seg, typed};
use crate::error::{Error, Result};
use crate::{output, views};

pub async fn run(client: &Client, id: &str, every: f64, out: Output) -> Result<()> {
    let every = poll_every("--every", every)?;
    // Ctrl-C is an ordinary way to stop watching, not a failure.
    tokio::select! {
        done = follow(client, id, every, out) => done,
        signal = tokio::signal::ctrl_c() => {
            signal.map_err(|e| Error::failed(format!("waiting for Ctrl-C: {e}")))
        }
    }
}

async fn follow(client: &Client, id: &str, every: Duration, out: Output) -> Result<()> {
    let path = format!("/api/ota/admin/rollouts/{}", seg(id));
    let mut view = View::default();
    // The first answer must come: an unknown rollout or a server that is not there ends the
    // watch at once. Later polls ride out a restarting server.
    let mut answer = Some(client.get(&path, &[]).await?);
    loop {
        if let Some(v) = answer {
            let r: RolloutWithProgress = typed(&v, "rollout")?;
            if let Some(block) = view.update(&r) {
                match out {
                    Output::Json => println!("{}", serde_json::to_string(&v).unwrap_or_default()),
                    Output::Table => print!("{block}"),
                }
                output::flush()?;
            }
            if let Some(why) = settled(&r.rollout) {
                eprintln!("rollout {id} {why}: watch ends");
                return Ok(());
            }
        }
        tokio::time::sleep(every).await;
        answer = poll(client, &path, &[]).await?;
    }
}

/// Why the rollout will not move by itself any more, if it will not: it is not active, or it
/// is in its last stage (a rollout without stages has one stage).
fn settled(r: &Rollout) -> Option<String> {
    if r.state != RolloutState::Active {
        return Some(format!("is {}", r.state.as_str()));
    }
    let next = usize::try_from(r.staging.stage_index).map_or(usize::MAX, |i| i.saturating_add(1));
    (next >= r.staging.stages.len()).then(|| "is in its last stage".to_owned())
}

/// What has been printed so far.
#[derive(Default)]
struct View {
    head: Option<String>,
    last_decision: Option<Decision>,
}

impl View {
    /// The block to print for this answer: the state, stage and gate lines when they changed,
    /// and every decision not printed yet; None when nothing changed.
    fn update(&mut self, r: &RolloutWithProgress) -> Option<String> {
        let head = head(r);
        let decisions = &r.rollout.staging.decisions;
        // The record keeps the newest 50: a last-printed decision that fell off (50 decisions
        // between two polls) prints them all again rather than losing one.
        let new_from = self.last_decision.as_ref().map_or(0, |last| {
            decisions
                .iter()
                .rposition(|d| d == last)
                .map_or(0, |i| i + 1)
        });
        let new = decisions.get(new_from..).unwrap_or_default();
        if self.head.as_ref() == Some(&head) && new.is_empty() {
            return None;
        }
        let mut block = head.clone();
        for d in new {
            block.push_str(&format!("  decision {}\n", views::decision(d)));
        }
        self.head = Some(head);
        if let Some(d) = new.last() {
            self.last_decision = Some(d.clone());
        }
        Some(block)
    }
}

fn head(r: &RolloutWithProgress) -> String {
    let o = &r.rollout;
    let next = r
        .health
        .as_ref()
        .and_then(|h| h.next_evaluation_at.as_ref())
        .map_or("-".into(), views::ts);
    let health = r.health.as_ref().map_or("-".into(), views::health);
    format!(
        "state {}, stage {}, next evaluation {next}\n  health {health}\n",
        o.state.as_str(),
        views::stage(o),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A rollout answer in stage `index` of two, with these decisions.
    fn answer(state: &str, index: u32, decisions: &serde_json::Value) -> RolloutWithProgress {
        serde_json::from_value(json!({
            "id": "r1", "name": "n", "firmware_id": "f", "device_type": "demo",
            "target_type": "all", "rollout_percentage": 50.0, "target_filter": {},
            "failure_threshold_percent": null, "min_reports": 10, "allow_downgrade": false,
            "state": state, "revision": 1,
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z",
            "stages": [{"percent": 50, "soak_s": 60, "min_devices": 1}, {"percent": 100}],
            "stage_index": index, "stage_started_at": "2026-01-01T00:00:00Z",
            "decisions": decisions,
            "progress": {"devices": {"pending": 0, "downloading": 0, "installing": 0,
                "success": 0, "failed": 0, "rolled_back": 0},
                "success_reports": 0, "failure_reports": 0},
            "health": {"final_outcomes": 4, "failures": 1, "completed_devices": 3,
                "devices_on_release": 3, "crashed_devices": 0, "failure_percent": 25.0,
                "crash_percent": 0.0, "next_evaluation_at": "2026-01-01T00:01:00Z"},
        }))
        .unwrap()
    }

    fn promoted(at: &str) -> serde_json::Value {
        json!({"kind": "promote", "at": at, "actor": "admin", "from_stage": 0, "to_stage": 1,
            "limit": null, "numbers": {"final_outcomes": 0, "failures": 0,
            "completed_devices": 0, "devices_on_release": 0, "crashed_devices": 0}})
    }

    #[test]
    fn a_block_is_printed_when_something_changed_with_each_decision_once() {
        let mut view = View::default();
        let first = view.update(&answer("active", 0, &json!([]))).unwrap();
        assert_eq!(
            first,
            "state active, stage 1 of 2 (50%, started 2026-01-01T00:00:00Z), \
             next evaluation 2026-01-01T00:01:00Z\n  \
             health failure 25.0% (1 of 4 final outcomes), crash 0.0% (0 of 3 devices on the \
             release), completed devices 3\n"
        );
        assert_eq!(
            view.update(&answer("active", 0, &json!([]))),
            None,
            "no change"
        );

        let one = json!([promoted("2026-01-01T00:00:30Z")]);
        let second = view.update(&answer("active", 1, &one)).unwrap();
        assert!(second.starts_with("state active, stage 2 of 2"), "{second}");
        assert!(
            second.ends_with("  decision 2026-01-01T00:00:30Z promote: stage 1 -> 2, by admin\n"),
            "{second}"
        );
        // The same decisions with a new state: the block again, the old decision not.
        let third = view.update(&answer("paused", 1, &one)).unwrap();
        assert!(third.starts_with("state paused, stage 2 of 2"), "{third}");
        assert!(!third.contains("decision"), "{third}");

        let two = json!([
            promoted("2026-01-01T00:00:30Z"),
            promoted("2026-01-01T00:00:40Z")
        ]);
        let fourth = view.update(&answer("paused", 1, &two)).unwrap();
        assert_eq!(fourth.matches("decision").count(), 1, "{fourth}");
        assert!(fourth.contains("00:00:40Z"), "{fourth}");
    }

    #[test]
    fn the_watch_ends_when_the_rollout_cannot_move_by_itself() {
        let settled_at = |state, index| settled(&answer(state, index, &json!([])).rollout);
        assert_eq!(settled_at("active", 0), None);
        assert_eq!(
            settled_at("active", 1).as_deref(),
            Some("is in its last stage")
        );
        for state in ["paused", "aborted", "completed"] {
            assert_eq!(settled_at(state, 0), Some(format!("is {state}")));
        }
        let mut unstaged = answer("active", 0, &json!([])).rollout;
        unstaged.staging.stages.clear();
        assert_eq!(settled(&unstaged).as_deref(), Some("is in its last stage"));
    }
}
