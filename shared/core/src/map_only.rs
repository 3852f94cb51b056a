//! Records read only from maps. serde's derived `Deserialize` also reads a struct from a
//! sequence of its fields in order (`["a", "b"]` for `{"x": "a", "y": "b"}`), which no client
//! of this API means and which its contract does not allow: a record nested in a request reads
//! through [`MapOnly`], whose every request is for a map.

use serde::Deserializer;
use serde::de::Visitor;

/// Wraps a deserializer so that whatever is asked of it, it reads a map.
pub struct MapOnly<D>(pub D);

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
}
