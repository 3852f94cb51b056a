//! Records read only from maps. serde's derived `Deserialize` also reads a struct from a
//! sequence of its fields in order (`["a", "b"]` for `{"x": "a", "y": "b"}`), which no client
//! of this API means and which its contract does not allow: a record nested in a request reads
//! through [`MapOnly`], whose every request is for a map.

use serde::de::Visitor;
use serde::{Deserialize, Deserializer};

/// Wraps a deserializer so that whatever is asked of it, it reads a map.
pub struct MapOnly<D>(pub D);

/// A record read through [`MapOnly`].
struct Record<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Record<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(MapOnly(d)).map(Record)
    }
}

/// For `#[serde(default, deserialize_with = "ota_core::map_only::option")]` on an optional
/// record of a request: `null` or absent is None, anything else must be an object.
pub fn option<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    Ok(Option::<Record<T>>::deserialize(d)?.map(|r| r.0))
}

/// For `#[serde(default, deserialize_with = "ota_core::map_only::list")]` on a list of records
/// of a request: each item must be an object.
pub fn list<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<Record<T>>::deserialize(d)?
        .into_iter()
        .map(|r| r.0)
        .collect())
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for MapOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use crate::rollout::TargetFilter;

    #[test]
    fn a_target_filter_reads_from_an_object_only() {
        let f: TargetFilter = serde_json::from_str(r#"{"device_ids": ["a"]}"#).unwrap();
        assert_eq!(f.device_ids.len(), 1);
        assert_eq!(
            serde_json::from_str::<TargetFilter>("{}").unwrap(),
            TargetFilter::default()
        );
        for seq in ["[]", r#"[["a"], []]"#] {
            assert!(serde_json::from_str::<TargetFilter>(seq).is_err(), "{seq}");
        }
        assert!(serde_json::from_str::<TargetFilter>(r#"{"regions": []}"#).is_err());
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Holder {
        #[serde(default, deserialize_with = "super::option")]
        record: Option<Record>,
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Record {
        a: Option<u32>,
    }

    #[test]
    fn an_optional_record_is_an_object_null_or_absent() {
        let read = |json: &str| serde_json::from_str::<Holder>(json).map(|h| h.record);
        assert_eq!(
            read(r#"{"record": {"a": 1}}"#).unwrap(),
            Some(Record { a: Some(1) })
        );
        assert_eq!(read(r#"{"record": {}}"#).unwrap(), Some(Record { a: None }));
        assert_eq!(read(r#"{"record": null}"#).unwrap(), None);
        assert_eq!(read("{}").unwrap(), None);
        for bad in [
            r#"{"record": [1]}"#,
            r#"{"record": 1}"#,
            r#"{"record": "a"}"#,
        ] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Lister {
        #[serde(default, deserialize_with = "super::list")]
        records: Vec<Record>,
    }

    #[test]
    fn a_list_of_records_holds_objects_only() {
        let read = |json: &str| serde_json::from_str::<Lister>(json).map(|h| h.records);
        assert_eq!(
            read(r#"{"records": [{"a": 1}, {}]}"#).unwrap(),
            [Record { a: Some(1) }, Record { a: None }]
        );
        assert_eq!(read("{}").unwrap(), []);
        for bad in [r#"{"records": [[1]]}"#, r#"{"records": {"a": 1}}"#] {
            assert!(read(bad).is_err(), "{bad}");
        }
    }
}
