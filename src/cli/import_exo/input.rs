//! Reading one input: the cmdlet's JSON, whatever PowerShell wrote it in, as a stream. The
//! top-level array is deserialized element by element and each object handed on as soon as it is
//! read, so memory holds one object's JSON tree at a time (an 82 MB export parsed whole into a
//! `serde_json::Value` tree took more than ten times its size).

use super::{encoding, ImportError};
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::io::{self, BufRead, Read};

/// What is done with each object of an input: `(its position from 1, the object)`.
pub(super) type EachObject<'a> =
    dyn FnMut(usize, Map<String, Value>) -> Result<(), ImportError> + 'a;

/// Hand every object of one input to `each` as it is read: a lone object (what `ConvertTo-Json`
/// prints for one), an array, or Windows PowerShell 5.1's `{"value": [...], "Count": n}`
/// wrapper around an array; `null` and empty text are no objects.
pub(super) fn each_object(
    input: &'static str,
    text: impl Read,
    each: &mut EachObject<'_>,
) -> Result<(), ImportError> {
    let read_error = |source| ImportError::Read { input, source };
    let mut text = io::BufReader::new(encoding::utf8(text).map_err(read_error)?);
    if !skip_whitespace(&mut text).map_err(read_error)? {
        return Ok(());
    }
    let mut objects = Objects {
        input,
        count: 0,
        each,
        failed: None,
    };
    let mut json = serde_json::Deserializer::from_reader(text);
    let read = (&mut objects)
        .deserialize(&mut json)
        .and_then(|()| json.end());
    match (read, objects.failed) {
        (_, Some(e)) => Err(e),
        (Ok(()), None) => Ok(()),
        (Err(e), None) if e.is_io() => Err(read_error(e.into())),
        (Err(e), None) => Err(ImportError::NotJson {
            input,
            message: e.to_string(),
        }),
    }
}

/// Skips leading whitespace; `false` when nothing else follows.
fn skip_whitespace(text: &mut impl BufRead) -> io::Result<bool> {
    loop {
        let available = text.fill_buf()?;
        if available.is_empty() {
            return Ok(false);
        }
        match available.iter().position(|b| !b.is_ascii_whitespace()) {
            Some(i) => {
                text.consume(i);
                return Ok(true);
            }
            None => {
                let n = available.len();
                text.consume(n);
            }
        }
    }
}

/// The top level of one input, as a serde visitor: each object goes to `each` as soon as it is
/// read, so only one object's JSON tree is in memory at a time.
struct Objects<'a, 'b> {
    input: &'static str,
    /// Objects handed to `each` so far.
    count: usize,
    each: &'a mut EachObject<'b>,
    /// Why reading stopped when it was not the JSON itself (serde errors carry only text).
    failed: Option<ImportError>,
}

impl Objects<'_, '_> {
    fn stop<E: de::Error>(&mut self, e: ImportError) -> E {
        let message = e.to_string();
        self.failed = Some(e);
        E::custom(message)
    }

    fn object<E: de::Error>(&mut self, map: Map<String, Value>) -> Result<(), E> {
        self.count += 1;
        (self.each)(self.count, map).map_err(|e| self.stop(e))
    }

    /// One element of the array of objects.
    fn entry<E: de::Error>(&mut self, v: Value) -> Result<(), E> {
        match v {
            Value::Object(map) => self.object(map),
            other => {
                let e = ImportError::EntryNotObject {
                    input: self.input,
                    index: self.count + 1,
                    found: json_kind(&other),
                };
                Err(self.stop(e))
            }
        }
    }

    fn entries<'de, A: SeqAccess<'de>>(&mut self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            self.entry(v)?;
        }
        Ok(())
    }

    fn not_object<E: de::Error>(&mut self, found: &'static str) -> Result<(), E> {
        let e = ImportError::NotObjectOrArray {
            input: self.input,
            found,
        };
        Err(self.stop(e))
    }
}

impl<'de> DeserializeSeed<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for &mut Objects<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object or an array of objects")
    }

    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.not_object("a boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.not_object("a number")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.not_object("a string")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.entries(seq)
    }

    /// A lone object, or the wrapper. Windows PowerShell prints the wrapper's `value` first:
    /// then its array is read element by element like a top-level one, and only `Count` may
    /// follow. Otherwise the object is read whole and checked for the wrapper as before.
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut object = Map::new();
        if let Some(first) = map.next_key::<String>()? {
            let value = if first.eq_ignore_ascii_case("value") {
                map.next_value_seed(ValueOrEntries(&mut *self))?
            } else {
                Some(map.next_value::<Value>()?)
            };
            while let Some((k, v)) = map.next_entry::<String, Value>()? {
                object.insert(k, v);
            }
            match value {
                Some(v) => {
                    object.insert(first, v);
                }
                None if object.len() == 1
                    && object.keys().all(|k| k.eq_ignore_ascii_case("count")) =>
                {
                    return Ok(());
                }
                None => {
                    let e = ImportError::NotWrapper { input: self.input };
                    return Err(self.stop(e));
                }
            }
        }
        match value_count_wrapper(object) {
            Ok(array) => array.into_iter().try_for_each(|v| self.entry(v)),
            Err(object) => self.object(object),
        }
    }
}

/// The value of an object's leading `value` property: an array goes entry by entry to the
/// objects (`None`); anything else comes back whole.
struct ValueOrEntries<'a, 'b, 'c>(&'a mut Objects<'b, 'c>);

impl<'de> DeserializeSeed<'de> for ValueOrEntries<'_, '_, '_> {
    type Value = Option<Value>;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Option<Value>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueOrEntries<'_, '_, '_> {
    type Value = Option<Value>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Option<Value>, A::Error> {
        self.0.entries(seq).map(|()| None)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<Value>, A::Error> {
        Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Option<Value>, E> {
        Ok(Some(Value::Null))
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Option<Value>, E> {
        Ok(Some(Value::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Option<Value>, E> {
        Ok(Some(Value::from(n)))
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Option<Value>, E> {
        Ok(Some(Value::String(s.to_owned())))
    }
}

/// `{"value": [...], "Count": n}` and nothing else: the array; otherwise the object back.
fn value_count_wrapper(mut map: Map<String, Value>) -> Result<Vec<Value>, Map<String, Value>> {
    let value = map
        .iter()
        .find(|(k, v)| k.eq_ignore_ascii_case("value") && v.is_array())
        .map(|(k, _)| k.clone());
    let has_count = map.keys().any(|k| k.eq_ignore_ascii_case("count"));
    match value {
        Some(key) if map.len() == 2 && has_count => match map.remove(&key) {
            Some(Value::Array(array)) => Ok(array),
            Some(other) => {
                map.insert(key, other);
                Err(map)
            }
            None => Err(map),
        },
        _ => Err(map),
    }
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
