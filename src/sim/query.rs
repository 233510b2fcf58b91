//! ONTAP collection semantics over rendered JSON records: filters, `fields=`, `order_by`,
//! `max_records` pagination with `_links.next`, `return_records` (reference notes §6.4).
//!
//! Handlers render every record with all its fields; this module filters, sorts, pages and then
//! projects, so any field can be queried whether or not it is returned.

use std::cmp::Ordering;

use serde_json::{json, Map, Value};

/// Query parameters that are not record filters.
const RESERVED: &[&str] = &[
    "fields",
    "max_records",
    "order_by",
    "return_records",
    "return_timeout",
    "start.index",
    "allow_delete_while_mapped",
    "bypass_recovery_queue",
];

/// The query string of one request, in order.
#[derive(Debug, Clone, Default)]
pub struct Params {
    pub pairs: Vec<(String, String)>,
}

impl Params {
    pub fn new(pairs: Vec<(String, String)>) -> Params {
        Params { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`false`), `default` when absent or unparsable.
    pub fn flag(&self, key: &str, default: bool) -> bool {
        match self.get(key) {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => default,
        }
    }

    pub fn number(&self, key: &str) -> Option<u64> {
        self.get(key).and_then(|v| v.parse().ok())
    }

    /// `fields=` as a list, `None` when absent.
    pub fn fields(&self) -> Option<Vec<String>> {
        self.get("fields").map(|f| {
            f.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
    }

    /// Record filters: every parameter that is not reserved and not an action parameter.
    pub fn filters(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()) && !k.starts_with("restore_to."))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The query string without `start.index`, percent-encoded.
    fn encoded_without_start(&self) -> String {
        self.pairs
            .iter()
            .filter(|(k, _)| k != "start.index")
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// `s` percent-encoded for a query string (keeps `*` and `,`, which ONTAP queries use).
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'*' | b',' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The value(s) at a dotted path; arrays on the way fan out.
fn lookup<'a>(v: &'a Value, path: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => {
            for item in items {
                lookup(item, path, out);
            }
        }
        _ if path.is_empty() => out.push(v),
        Value::Object(map) => {
            let (head, rest) = path.split_once('.').unwrap_or((path, ""));
            if let Some(child) = map.get(head) {
                lookup(child, rest, out);
            }
        }
        _ => {}
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `*` matches any run of characters; case-insensitive.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (
        pattern.to_lowercase().chars().collect(),
        text.to_lowercase().chars().collect(),
    );
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.cmp(b),
    }
}

/// Whether one alternative of a filter (`value`, `!value`, `<n`, `>=n`, `a*`, `null`, `!null`)
/// matches the values found at the field.
fn alternative_matches(alt: &str, found: &[String]) -> bool {
    if alt == "null" {
        return found.is_empty();
    }
    if alt == "!null" {
        return !found.is_empty();
    }
    if let Some(inner) = alt.strip_prefix('!') {
        return !alternative_matches(inner, found);
    }
    for (op, want) in [
        ("<=", Ordering::Greater),
        (">=", Ordering::Less),
        ("<", Ordering::Equal),
        (">", Ordering::Equal),
    ] {
        if let Some(rhs) = alt.strip_prefix(op) {
            return found.iter().any(|v| {
                let ord = compare(v, rhs);
                match op {
                    "<" => ord == Ordering::Less,
                    ">" => ord == Ordering::Greater,
                    _ => ord != want,
                }
            });
        }
    }
    found.iter().any(|v| glob(alt, v))
}

/// Whether a record matches one `field=pattern` filter (`|` separates alternatives).
pub fn matches(record: &Value, field: &str, pattern: &str) -> bool {
    let mut values = Vec::new();
    lookup(record, field, &mut values);
    let found: Vec<String> = values.into_iter().filter_map(scalar).collect();
    pattern
        .split('|')
        .any(|alt| alternative_matches(alt, &found))
}

fn copy_path(from: &Value, to: &mut Map<String, Value>, path: &str) {
    let Value::Object(src) = from else { return };
    let (head, rest) = path.split_once('.').unwrap_or((path, ""));
    let Some(child) = src.get(head) else { return };
    if rest.is_empty() || !child.is_object() {
        to.insert(head.to_string(), child.clone());
        return;
    }
    let entry = to
        .entry(head.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(sub) = entry {
        copy_path(child, sub, rest);
    }
}

/// The record as returned: `keys` and `_links` always, plus `fields` (`*`/`**`: everything).
pub fn project(full: &Value, fields: Option<&[String]>, keys: &[&str]) -> Value {
    if fields.is_some_and(|f| f.iter().any(|x| x == "*" || x == "**")) {
        return full.clone();
    }
    let mut out = Map::new();
    for key in keys.iter().copied().chain(std::iter::once("_links")) {
        copy_path(full, &mut out, key);
    }
    for f in fields.unwrap_or(&[]) {
        copy_path(full, &mut out, f);
    }
    Value::Object(out)
}

/// A collection response over fully rendered `records` for the request `path` + `params`.
pub fn collection(mut records: Vec<Value>, params: &Params, path: &str, keys: &[&str]) -> Value {
    for (field, pattern) in params.filters() {
        records.retain(|r| matches(r, field, pattern));
    }
    if let Some(order) = params.get("order_by") {
        let specs: Vec<(String, bool)> = order
            .split(',')
            .map(|s| {
                let mut it = s.split_whitespace();
                let field = it.next().unwrap_or("").to_string();
                let desc = it.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
                (field, desc)
            })
            .collect();
        records.sort_by(|a, b| {
            for (field, desc) in &specs {
                let (mut va, mut vb) = (Vec::new(), Vec::new());
                lookup(a, field, &mut va);
                lookup(b, field, &mut vb);
                let sa = va.first().and_then(|v| scalar(v)).unwrap_or_default();
                let sb = vb.first().and_then(|v| scalar(v)).unwrap_or_default();
                let ord = compare(&sa, &sb);
                if ord != Ordering::Equal {
                    return if *desc { ord.reverse() } else { ord };
                }
            }
            Ordering::Equal
        });
    }
    let total = records.len();
    let start = params
        .number("start.index")
        .map_or(0, |n| usize::try_from(n).unwrap_or(usize::MAX));
    let max = params
        .number("max_records")
        .map(|m| usize::try_from(m.max(1)).unwrap_or(usize::MAX))
        .unwrap_or(10_000);
    let fields = params.fields();
    let page: Vec<Value> = records
        .iter()
        .skip(start)
        .take(max)
        .map(|r| project(r, fields.as_deref(), keys))
        .collect();
    let query = params.encoded_without_start();
    let self_href = if params.pairs.is_empty() {
        path.to_string()
    } else {
        format!(
            "{path}?{}",
            params
                .pairs
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        )
    };
    let mut links = json!({ "self": { "href": self_href } });
    let end = start.saturating_add(page.len());
    if end < total {
        let sep = if query.is_empty() { "" } else { "&" };
        links["next"] = json!({
            "href": format!("{path}?{query}{sep}start.index={end}")
        });
    }
    let mut body = json!({ "num_records": page.len(), "_links": links });
    if params.flag("return_records", true) {
        body["records"] = Value::Array(page);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(q: &[(&str, &str)]) -> Params {
        Params::new(
            q.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn filters_wildcards_alternatives_and_nested_fields() {
        let r = json!({"name": "hourly.2026-03-01_0105", "size": 10, "volume": {"name": "v1"}, "owners": ["lun_clone"]});
        assert!(matches(&r, "name", "hourly.*"));
        assert!(matches(&r, "name", "daily.*|hourly.*"));
        assert!(!matches(&r, "name", "!hourly*"));
        assert!(matches(&r, "size", ">5"));
        assert!(!matches(&r, "size", "<=5"));
        assert!(matches(&r, "volume.name", "V1"));
        assert!(matches(&r, "owners", "lun_clone"));
        assert!(matches(&r, "comment", "null"));
    }

    #[test]
    fn pages_follow_next_links_and_project_fields() {
        let records: Vec<Value> = (0..25)
            .map(|i| json!({"uuid": format!("u{i:02}"), "name": format!("n{i:02}"), "size": i}))
            .collect();
        let p = params(&[
            ("fields", "size"),
            ("max_records", "10"),
            ("order_by", "size desc"),
        ]);
        let body = collection(records.clone(), &p, "/api/x", &["uuid"]);
        assert_eq!(body["num_records"], 10);
        assert_eq!(body["records"][0], json!({"uuid": "u24", "size": 24}));
        let next = body["_links"]["next"]["href"].as_str().unwrap();
        assert_eq!(
            next,
            "/api/x?fields=size&max_records=10&order_by=size%20desc&start.index=10"
        );
        let p = params(&[("max_records", "10"), ("start.index", "20")]);
        let body = collection(records, &p, "/api/x", &["uuid"]);
        assert_eq!(body["num_records"], 5);
        assert!(body["_links"].get("next").is_none());
    }
}
