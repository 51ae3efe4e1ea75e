//! Reading an upload one level at a time. A SARIF log of 100,000 results takes about seven
//! times its size as a `serde_json::Value` tree; read as members and array elements that
//! stay unparsed ([`RawValue`], a slice of the upload), only one result at a time is ever
//! a tree, so the conversion holds little more than the file and what it makes of it.

use serde_json::value::RawValue;
use serde_json::Value;
use std::collections::BTreeMap;

/// A JSON object's members, their values unparsed (a repeated key: the last one).
pub(super) type Members<'a> = BTreeMap<String, &'a RawValue>;

/// The members of `raw`, or `None` when it is not an object.
pub(super) fn members(raw: &RawValue) -> Option<Members<'_>> {
    serde_json::from_str(raw.get()).ok()
}

/// The elements of `raw`, or `None` when it is not an array.
pub(super) fn elements(raw: &RawValue) -> Option<Vec<&RawValue>> {
    serde_json::from_str(raw.get()).ok()
}

/// `raw` parsed, for a part that is small (a run's tool, one result). A valid document's
/// part always parses; `Null` stands in should it nest past the parser's depth limit.
pub(super) fn tree(raw: &RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// The member `key` of `object`, parsed (see [`tree`]).
pub(super) fn member(object: &Members, key: &str) -> Option<Value> {
    object.get(key).map(|raw| tree(raw))
}
