//! When a rollout may make new offers (docs/api.md §9.6): not before `start_at`, not from
//! `end_at` on, and, when windows are given, only inside one of them, in UTC. A device already
//! offered keeps its download: the schedule decides offers only.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::{OffsetDateTime, Weekday};
use utoipa::ToSchema;

use crate::error::OpError;
use crate::map_only;

/// The most windows one schedule holds.
pub const MAX_WINDOWS: usize = 28;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// No offers before this time (absent: from the start).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_at: Option<OffsetDateTime>,
    /// No offers from this time on (absent: no end).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub end_at: Option<OffsetDateTime>,
    /// When given, offers only inside one of these (UTC).
    #[serde(default, deserialize_with = "map_only::list")]
    #[schema(max_items = 28)]
    pub windows: Vec<Window>,
}

/// A time of day on some days of the week, UTC: from `start` (included) to `end` (excluded);
/// an `end` at or before `start` runs past midnight into the next day (`22:00`-`02:00`), so a
/// window belongs to the day it opens on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Absent: every day.
    #[serde(default = "every_day")]
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<Day>,
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "01:00")]
    pub start: TimeOfDay,
    #[schema(value_type = String, pattern = "^([01][0-9]|2[0-3]):[0-5][0-9]$", example = "05:00")]
    pub end: TimeOfDay,
}

/// A day of the week, as `mon` .. `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

fn every_day() -> Vec<Day> {
    use Day::*;
    vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun]
}

impl Day {
    fn of(w: Weekday) -> Self {
        match w {
            Weekday::Monday => Self::Mon,
            Weekday::Tuesday => Self::Tue,
            Weekday::Wednesday => Self::Wed,
            Weekday::Thursday => Self::Thu,
            Weekday::Friday => Self::Fri,
            Weekday::Saturday => Self::Sat,
            Weekday::Sunday => Self::Sun,
        }
    }
}

/// Minutes since midnight, written `HH:MM` (00:00 to 23:59).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TimeOfDay(u16);

impl TimeOfDay {
    pub fn parse(s: &str) -> Option<Self> {
        let (h, m) = s.split_once(':')?;
        let digits = |p: &str| p.len() == 2 && p.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || !digits(m) {
            return None;
        }
        let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(Self(h * 60 + m))
    }

    fn of(at: OffsetDateTime) -> Self {
        Self(u16::from(at.hour()) * 60 + u16::from(at.minute()))
    }
}

impl Serialize for TimeOfDay {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:02}:{:02}", self.0 / 60, self.0 % 60))
    }
}

impl<'de> Deserialize<'de> for TimeOfDay {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!("{s:?} is not a time HH:MM, 00:00 to 23:59"))
        })
    }
}

impl Window {
    /// Whether `at` (UTC) is inside the window.
    pub fn contains(&self, at: OffsetDateTime) -> bool {
        let at = at.to_offset(time::UtcOffset::UTC);
        let (now, today) = (TimeOfDay::of(at), Day::of(at.weekday()));
        let yesterday = Day::of(at.weekday().previous());
        if self.start < self.end {
            self.days.contains(&today) && self.start <= now && now < self.end
        } else {
            (self.days.contains(&today) && now >= self.start)
                || (self.days.contains(&yesterday) && now < self.end)
        }
    }
}

impl Schedule {
    /// Whether a rollout on this schedule may make a new offer at `at`.
    pub fn offers_at(&self, at: OffsetDateTime) -> bool {
        self.start_at.is_none_or(|s| at >= s)
            && self.end_at.is_none_or(|e| at < e)
            && (self.windows.is_empty() || self.windows.iter().any(|w| w.contains(at)))
    }

    /// The schedule of a create, refused (naming the member) when it could never offer or
    /// holds too much.
    pub fn validated(self) -> Result<Self, OpError> {
        if let (Some(s), Some(e)) = (self.start_at, self.end_at)
            && e <= s
        {
            return Err(OpError::invalid(
                "schedule.end_at",
                "must be after schedule.start_at",
            ));
        }
        if self.windows.len() > MAX_WINDOWS {
            return Err(OpError::invalid(
                "schedule.windows",
                format!("at most {MAX_WINDOWS} windows"),
            ));
        }
        for (i, w) in self.windows.iter().enumerate() {
            if w.days.is_empty() {
                return Err(OpError::invalid(
                    &format!("schedule.windows[{i}].days"),
                    "name at least one day, or leave days out for every day",
                ));
            }
            if w.start == w.end {
                return Err(OpError::invalid(
                    &format!("schedule.windows[{i}].end"),
                    "must differ from start (an end before start runs past midnight)",
                ));
            }
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn window(days: &[Day], start: &str, end: &str) -> Window {
        Window {
            days: days.to_vec(),
            start: TimeOfDay::parse(start).unwrap(),
            end: TimeOfDay::parse(end).unwrap(),
        }
    }

    #[test]
    fn times_of_day_are_hh_mm() {
        assert_eq!(TimeOfDay::parse("00:00"), Some(TimeOfDay(0)));
        assert_eq!(TimeOfDay::parse("23:59"), Some(TimeOfDay(1439)));
        for bad in [
            "24:00", "1:00", "01:60", "01-00", "0100", "+1:00", "01:0", "",
        ] {
            assert_eq!(TimeOfDay::parse(bad), None, "{bad}");
        }
        let w: Window = serde_json::from_str(r#"{"start": "01:00", "end": "05:30"}"#).unwrap();
        assert_eq!(w.days.len(), 7, "every day by default");
        assert_eq!(
            serde_json::to_value(&w).unwrap()["end"],
            serde_json::json!("05:30")
        );
        assert!(serde_json::from_str::<Window>(r#"{"start": "1", "end": "05:30"}"#).is_err());
    }

    #[test]
    fn a_weekday_night_window() {
        // 2026-12-07 is a Monday.
        let w = window(&[Day::Mon, Day::Fri], "01:00", "05:00");
        assert!(!w.contains(datetime!(2026-12-07 00:59:59 UTC)));
        assert!(w.contains(datetime!(2026-12-07 01:00 UTC)), "start is in");
        assert!(w.contains(datetime!(2026-12-07 04:59:59 UTC)));
        assert!(!w.contains(datetime!(2026-12-07 05:00 UTC)), "end is out");
        assert!(!w.contains(datetime!(2026-12-08 02:00 UTC)), "Tuesday");
        assert!(w.contains(datetime!(2026-12-11 02:00 UTC)), "Friday");
        // Times in another offset are compared in UTC.
        assert!(w.contains(datetime!(2026-12-07 03:00 +02:00)));
    }

    #[test]
    fn a_window_past_midnight_belongs_to_the_day_it_opens() {
        // Friday 22:00 to Saturday 02:00, and only that.
        let w = window(&[Day::Fri], "22:00", "02:00");
        assert!(!w.contains(datetime!(2026-12-11 21:59 UTC)));
        assert!(w.contains(datetime!(2026-12-11 22:00 UTC)));
        assert!(
            w.contains(datetime!(2026-12-12 01:59 UTC)),
            "Saturday morning"
        );
        assert!(!w.contains(datetime!(2026-12-12 02:00 UTC)));
        assert!(
            !w.contains(datetime!(2026-12-12 22:30 UTC)),
            "Saturday night"
        );
        assert!(
            !w.contains(datetime!(2026-12-11 01:00 UTC)),
            "Friday morning"
        );
    }

    #[test]
    fn start_end_and_windows_together() {
        let s = Schedule {
            start_at: Some(datetime!(2026-12-10 02:00 UTC)),
            end_at: Some(datetime!(2026-12-20 00:00 UTC)),
            windows: vec![window(&every_day(), "01:00", "05:00")],
        };
        assert!(
            !s.offers_at(datetime!(2026-12-10 01:59 UTC)),
            "before start_at"
        );
        assert!(s.offers_at(datetime!(2026-12-10 02:00 UTC)));
        assert!(
            !s.offers_at(datetime!(2026-12-10 05:00 UTC)),
            "outside windows"
        );
        assert!(s.offers_at(datetime!(2026-12-19 04:00 UTC)));
        assert!(
            !s.offers_at(datetime!(2026-12-20 04:00 UTC)),
            "from end_at on"
        );
        assert!(Schedule::default().offers_at(datetime!(1970-01-01 00:00 UTC)));
    }

    #[test]
    fn a_schedule_that_could_never_offer_is_refused() {
        let at = datetime!(2026-12-10 02:00 UTC);
        let field = |s: Schedule| match s.validated() {
            Err(OpError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let both = |end| Schedule {
            start_at: Some(at),
            end_at: Some(end),
            windows: Vec::new(),
        };
        assert_eq!(field(both(at)), "schedule.end_at");
        assert!(both(at + time::Duration::seconds(1)).validated().is_ok());
        let one = |w| Schedule {
            windows: vec![w],
            ..Schedule::default()
        };
        assert_eq!(
            field(one(window(&[], "01:00", "02:00"))),
            "schedule.windows[0].days"
        );
        assert_eq!(
            field(one(window(&[Day::Sun], "01:00", "01:00"))),
            "schedule.windows[0].end"
        );
        let many = Schedule {
            windows: vec![window(&[Day::Sun], "01:00", "02:00"); MAX_WINDOWS + 1],
            ..Schedule::default()
        };
        assert_eq!(field(many), "schedule.windows");
    }
}
