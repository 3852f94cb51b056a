//! The staged-rollout flags of `rollout create` (docs/api.md §9.5, §9.6) read into the types
//! the server reads them into, and written back in the same syntax for the views. Each parser is
//! a clap value parser: its message follows "invalid value '…' for '--flag'", and the run exits
//! with 2 before anything is sent.

use ota_core::offer_schedule::{Day, TimeOfDay, Window};
use ota_core::stages::Stage;
use serde::Serialize;
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `--stages`: what clap keeps of one occurrence (a bare `Vec` would read as a repeatable flag).
#[derive(Debug, Clone)]
pub struct Stages(pub Vec<Stage>);

/// The days of a week in order, so that `mon-fri` and `fri-mon` say which days lie between.
const WEEK: [Day; 7] = [
    Day::Mon,
    Day::Tue,
    Day::Wed,
    Day::Thu,
    Day::Fri,
    Day::Sat,
    Day::Sun,
];

/// `PERCENT[:SOAK_S[:MIN_DEVICES]],...`, e.g. `1:3600,10:14400,100`.
pub fn parse_stages(s: &str) -> Result<Stages, String> {
    s.split(',')
        .enumerate()
        .map(|(i, item)| parse_stage(item).map_err(|e| format!("stage {} ({item:?}): {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()
        .map(Stages)
}

fn parse_stage(item: &str) -> Result<Stage, String> {
    let mut parts = item.trim().split(':');
    let percent = parts.next().unwrap_or_default();
    let percent: f64 = percent
        .parse()
        .ok()
        .filter(|p: &f64| p.is_finite() && *p > 0.0 && *p <= 100.0)
        .ok_or_else(|| format!("percent {percent:?} is not a number above 0 and up to 100"))?;
    let mut stage = Map::new();
    stage.insert("percent".into(), json!(percent));
    for (name, what) in [
        ("soak_s", "soak is not a whole number of seconds"),
        ("min_devices", "min devices is not a whole number"),
    ] {
        if let Some(p) = parts.next() {
            // The server's type says how large each may be (u64 seconds, u32 devices).
            let n: u64 = p.parse().map_err(|_| format!("{what}: {p:?}"))?;
            stage.insert(name.into(), json!(n));
        }
    }
    if parts.next().is_some() {
        return Err("expected PERCENT[:SOAK_S[:MIN_DEVICES]]".into());
    }
    // Through the server's own type, so that what is left out takes the server's default.
    serde_json::from_value(Value::Object(stage)).map_err(|e| e.to_string())
}

/// `[DAYS@]HH:MM-HH:MM` in UTC, DAYS as `mon-fri`, `sat,sun` or `mon,wed-fri` (every day when
/// left out); an end at or before the start runs past midnight.
pub fn parse_window(s: &str) -> Result<Window, String> {
    let (days, times) = match s.split_once('@') {
        Some((days, times)) => (parse_days(days)?, times),
        None => (WEEK.to_vec(), s),
    };
    let (start, end) = times
        .split_once('-')
        .ok_or_else(|| format!("{times:?} is not HH:MM-HH:MM"))?;
    let time = |t: &str| {
        TimeOfDay::parse(t).ok_or_else(|| format!("{t:?} is not a time HH:MM, 00:00 to 23:59"))
    };
    Ok(Window {
        days,
        start: time(start)?,
        end: time(end)?,
    })
}

fn parse_days(s: &str) -> Result<Vec<Day>, String> {
    let mut on = [false; 7];
    for item in s.split(',') {
        let (from, to) = item.split_once('-').unwrap_or((item, item));
        let (from, to) = (day_index(from)?, day_index(to)?);
        // A range may wrap past Sunday: `fri-mon` is Friday to Monday.
        let mut d = from;
        loop {
            on[d] = true;
            if d == to {
                break;
            }
            d = (d + 1) % 7;
        }
    }
    Ok(WEEK
        .iter()
        .zip(on)
        .filter(|(_, on)| *on)
        .map(|(d, _)| *d)
        .collect())
}

fn day_index(name: &str) -> Result<usize, String> {
    let day: Day = serde_json::from_value(json!(name))
        .map_err(|_| format!("{name:?} is not a day: mon, tue, wed, thu, fri, sat or sun"))?;
    Ok(WEEK.iter().position(|d| *d == day).unwrap_or_default())
}

/// `--start-at`, `--end-at`, sent in UTC: the server keeps the offset it is given, and the
/// windows beside it are UTC.
pub fn parse_time(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map(|t| t.to_offset(UtcOffset::UTC))
        .map_err(|e| format!("not an RFC 3339 time such as 2026-12-10T02:00:00Z: {e}"))
}

/// A value as the API writes it (`mon`, `max_failure_percent`), for the views.
pub fn wire<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => "?".into(),
    }
}

/// Stages in the syntax of `--stages`, every part written out.
pub fn stages_spec(stages: &[Stage]) -> String {
    let items: Vec<String> = stages
        .iter()
        .map(|s| format!("{}:{}:{}", s.percent, s.soak_s, s.min_devices))
        .collect();
    items.join(",")
}

/// A window in the syntax of `--window` (days left out when it is every day).
pub fn window_spec(w: &Window) -> String {
    let times = format!("{}-{}", wire(&w.start), wire(&w.end));
    if WEEK.iter().all(|d| w.days.contains(d)) {
        return times;
    }
    let days: Vec<String> = w.days.iter().map(wire).collect();
    format!("{}@{times}", days.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stages(s: &str) -> Value {
        json!(parse_stages(s).unwrap().0)
    }

    #[test]
    fn stages_take_the_server_defaults_for_what_is_left_out() {
        assert_eq!(
            stages("1:3600:20,10:14400, 100"),
            json!([
                {"percent": 1.0, "soak_s": 3600, "min_devices": 20},
                {"percent": 10.0, "soak_s": 14400, "min_devices": 1},
                {"percent": 100.0, "soak_s": 0, "min_devices": 1},
            ])
        );
        assert_eq!(stages_spec(&parse_stages("0.5:60").unwrap().0), "0.5:60:1");
    }

    #[test]
    fn bad_stages_name_the_stage_and_the_part() {
        for (spec, says) in [
            ("", "stage 1 (\"\"): percent \"\""),
            ("1,,100", "stage 2"),
            ("1,", "stage 2"),
            ("abc", "percent \"abc\""),
            ("0", "above 0"),
            ("101", "up to 100"),
            ("NaN", "percent \"NaN\""),
            ("1:-5", "soak is not a whole number of seconds: \"-5\""),
            ("1:1h", "soak"),
            ("1:60:x", "min devices is not a whole number: \"x\""),
            ("1:60:1:2", "expected PERCENT[:SOAK_S[:MIN_DEVICES]]"),
            ("1:60:4294967296", "expected u32"),
        ] {
            let err = parse_stages(spec).unwrap_err();
            assert!(err.contains(says), "{spec:?}: {err}");
        }
    }

    #[test]
    fn windows_read_day_lists_ranges_and_every_day() {
        let w = |s: &str| json!(parse_window(s).unwrap());
        assert_eq!(
            w("mon-fri@01:00-05:00"),
            json!({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "01:00", "end": "05:00"})
        );
        assert_eq!(w("sun,sat@10:00-12:00")["days"], json!(["sat", "sun"]));
        assert_eq!(
            w("mon,wed-fri@10:00-12:00")["days"],
            json!(["mon", "wed", "thu", "fri"])
        );
        assert_eq!(
            w("fri-mon@10:00-12:00")["days"],
            json!(["mon", "fri", "sat", "sun"])
        );
        assert_eq!(w("22:00-02:00")["days"].as_array().unwrap().len(), 7);
        for spec in ["22:00-02:00", "mon,wed,thu,fri@01:00-05:00"] {
            assert_eq!(window_spec(&parse_window(spec).unwrap()), spec);
        }
    }

    #[test]
    fn bad_windows_say_what_is_wrong() {
        for (spec, says) in [
            ("monday@01:00-02:00", "\"monday\" is not a day"),
            ("mon-@01:00-02:00", "\"\" is not a day"),
            ("@01:00-02:00", "\"\" is not a day"),
            ("mon-fri", "\"mon\" is not a time"),
            ("01:00", "not HH:MM-HH:MM"),
            ("1:00-02:00", "\"1:00\" is not a time"),
            ("01:00-24:00", "\"24:00\" is not a time"),
            ("mon@01:00-02:00-03:00", "\"02:00-03:00\" is not a time"),
        ] {
            let err = parse_window(spec).unwrap_err();
            assert!(err.contains(says), "{spec:?}: {err}");
        }
    }

    #[test]
    fn times_are_rfc_3339() {
        let t = parse_time("2026-12-10T03:00:00+01:00").unwrap();
        assert_eq!(t.unix_timestamp(), 1_796_868_000);
        assert_eq!(t.offset(), UtcOffset::UTC);
        assert!(
            parse_time("2026-12-10 02:00")
                .unwrap_err()
                .contains("RFC 3339")
        );
    }
}
