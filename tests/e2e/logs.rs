//! The OTA log: filters and keyset pagination.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::api::*;
use crate::harness::{Go, Server};

fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| str_of(e, "id").to_owned()).collect()
}

#[tokio::test]
async fn logs_filter_by_device_firmware_status_and_since() {
    let srv = Server::start().await;
    let f1 = publish(&srv, "logged", "1.1.0").await;
    let f2 = publish(&srv, "logged", "1.2.0").await;
    let (f1, f2) = (str_of(&f1, "id"), str_of(&f2, "id"));
    let plan = [
        ("d1", f1, "downloading"),
        ("d1", f1, "failed"),
        ("d2", f2, "downloading"),
        ("d2", f2, "installing"),
        ("d1", f2, "pending"),
        ("d3", f1, "downloading"),
    ];
    let mut recorded = Vec::new();
    for (device, fw, status) in plan {
        let r = report(&srv, device, "logged", fw, status, json!({}))
            .await
            .expect(200);
        recorded.push(r);
    }
    let all = logs(&srv, &[]).await;
    assert_eq!(all.len(), plan.len());
    // Newest first.
    let newest_first: Vec<String> = recorded
        .iter()
        .rev()
        .map(|r| str_of(r, "log_id").to_owned())
        .collect();
    assert_eq!(ids(&all), newest_first);

    let count = |q: &'static [(&'static str, &'static str)]| {
        let srv = &srv;
        async move { logs(srv, q).await.len() }
    };
    assert_eq!(count(&[("device_id", "d1")]).await, 3);
    assert_eq!(count(&[("status", "downloading")]).await, 3);
    assert_eq!(count(&[("device_id", "d1"), ("status", "failed")]).await, 1);
    assert_eq!(count(&[("device_id", "nobody")]).await, 0);
    assert_eq!(logs(&srv, &[("firmware_id", f2)]).await.len(), 3);
    assert_eq!(
        logs(&srv, &[("firmware_id", f1), ("device_id", "d3")])
            .await
            .len(),
        1
    );

    // since: entries at or after the given time.
    let third = str_of(&recorded[2], "recorded_at");
    let since = logs(&srv, &[("since", third)]).await;
    assert_eq!(ids(&since), newest_first[..4].to_vec());
    assert!(
        logs(&srv, &[("since", "2999-01-01T00:00:00Z")])
            .await
            .is_empty()
    );
    assert_eq!(
        logs(&srv, &[("since", "2000-01-01T00:00:00+02:00")])
            .await
            .len(),
        plan.len()
    );

    for bad in [
        ("since", "yesterday"),
        ("status", "exploded"),
        ("device_id", "has space"),
        ("colour", "blue"),
    ] {
        let r = srv
            .admin(Method::GET, "/api/ota/admin/logs")
            .query(&[bad])
            .go()
            .await;
        r.problem(400);
        assert!(
            r.error_fields().iter().any(|f| f == bad.0),
            "{bad:?}: {}",
            r.text()
        );
    }
}

#[tokio::test]
async fn log_pages_neither_lose_nor_repeat_entries_while_rows_arrive() {
    let srv = Server::start().await;
    let fw = publish(&srv, "paged", "1.1.0").await;
    let fw = str_of(&fw, "id");
    for i in 0..37 {
        report(
            &srv,
            &format!("p{}", i % 5),
            "paged",
            fw,
            "downloading",
            json!({"event_id": format!("e{i}")}),
        )
        .await
        .expect(200);
    }
    let whole = logs(&srv, &[]).await;
    assert_eq!(whole.len(), 37);
    for limit in [1, 5, 36, 37, 38] {
        let paged = list_all(&srv, "/api/ota/admin/logs", &[], limit).await;
        assert_eq!(ids(&paged), ids(&whole), "limit {limit}");
    }
    // Page through while new reports arrive: the pages still hold exactly the older entries.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut added = 0;
    loop {
        let mut q = vec![("limit".to_owned(), "6".to_owned())];
        if let Some(c) = &cursor {
            q.push(("cursor".to_owned(), c.clone()));
        }
        let page = srv
            .admin(Method::GET, "/api/ota/admin/logs")
            .query(&q)
            .go()
            .await
            .expect(200);
        seen.extend(ids(page["items"].as_array().unwrap()));
        report(
            &srv,
            "late",
            "paged",
            fw,
            "downloading",
            json!({"event_id": format!("late{added}")}),
        )
        .await
        .expect(200);
        added += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "an entry was repeated");
    let first = ids(&whole[..6]);
    assert_eq!(seen[..6], first[..]);
    assert_eq!(seen, ids(&whole), "entries lost or added out of order");
    assert_eq!(logs(&srv, &[]).await.len(), 37 + added);
}
