//! What a caller sent, as fields: the query string, then a form, JSON or XML
//! body over it. Text that would reach the phone other than as the caller
//! meant it is refused here: bytes that are not UTF-8 (unless the form
//! names its charset) and JSON objects that name a key twice.

use super::problem::{Code, Problem};
use axum::body::{Body, to_bytes};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Deserialize;
use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashMap;

/// The caller's fields: the query string, then the body's fields over it.
pub(super) fn read_fields(parts: &Parts, body: &[u8]) -> Result<HashMap<String, String>, Problem> {
    let mut fields: HashMap<String, String> =
        form_pairs(parts.uri.query().unwrap_or("").as_bytes(), Charset::Utf8)?.into_iter().collect();
    if body.is_empty() {
        return Ok(fields);
    }
    let (media, charset) = media_type(&parts.headers);
    match media.as_deref() {
        Some("application/x-www-form-urlencoded") => fields.extend(form_pairs(body, form_charset(charset)?)?),
        Some("application/json") => fields.extend(json_fields(body)?),
        Some("application/xml" | "text/xml") => fields.extend(xml_fields(body)?),
        other => {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                Code::UnsupportedMediaType,
                format!(
                    "Content-Type {} is not accepted; send application/x-www-form-urlencoded, application/json or application/xml",
                    other.unwrap_or("(none)")
                ),
            ));
        }
    }
    Ok(fields)
}

/// The media type, lower case, and its `charset` parameter if it has one.
fn media_type(headers: &HeaderMap) -> (Option<String>, Option<String>) {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return (None, None) };
    let mut parts = value.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let charset = parts.filter_map(|p| p.split_once('=')).find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"));
    let charset = charset.map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
    (Some(media), charset)
}

#[derive(Clone, Copy)]
enum Charset {
    Utf8,
    Latin1,
}

/// The charsets a form body may declare: UTF-8 (the default), and the
/// Latin-1 that older callers send.
fn form_charset(declared: Option<String>) -> Result<Charset, Problem> {
    match declared.as_deref() {
        None | Some("utf-8" | "utf8" | "us-ascii") => Ok(Charset::Utf8),
        Some("iso-8859-1" | "iso8859-1" | "latin1" | "l1") => Ok(Charset::Latin1),
        Some(other) => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            format!("charset {other} is not accepted; send UTF-8, or ISO-8859-1 named as such"),
        )),
    }
}

/// `name=value&…` pairs, `+` as a space and percent-escapes decoded, read
/// in `charset`; a field that is not is refused by name rather than sent
/// with replacement characters.
fn form_pairs(input: &[u8], charset: Charset) -> Result<Vec<(String, String)>, Problem> {
    let decode = |raw: &[u8]| {
        let spaced: Vec<u8> = raw.iter().map(|&b| if b == b'+' { b' ' } else { b }).collect();
        let bytes: Vec<u8> = percent_encoding::percent_decode(&spaced).collect();
        match charset {
            Charset::Utf8 => String::from_utf8(bytes).ok(),
            Charset::Latin1 => Some(bytes.iter().map(|&b| char::from(b)).collect()),
        }
    };
    let mut pairs = Vec::new();
    for pair in input.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (name, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        let name = decode(name).ok_or_else(|| not_utf8("a field name", None))?;
        let value = decode(value).ok_or_else(|| not_utf8(&format!("field `{name}`"), Some(&name)))?;
        pairs.push((name, value));
    }
    Ok(pairs)
}

fn not_utf8(what: &str, field: Option<&str>) -> Problem {
    let why = format!(
        "{what} is not UTF-8; send UTF-8, or name the charset in Content-Type (charset=iso-8859-1) for a form body"
    );
    let problem = Problem::new(StatusCode::BAD_REQUEST, Code::InvalidEncoding, why);
    match field {
        Some(name) => problem.with("field", name),
        None => problem,
    }
}

/// A JSON object's scalars, by dotted path.
pub(super) fn json_fields(body: &[u8]) -> Result<HashMap<String, String>, Problem> {
    let bad = |why: String| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidJson, why);
    let Strict(value) = serde_json::from_slice(body).map_err(|e| bad(format!("body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("body must be a JSON object".into()));
    }
    let mut fields = HashMap::new();
    flatten(&value, &mut String::new(), &mut fields);
    Ok(fields)
}

/// A JSON value, read as `serde_json` reads one, but with an object that
/// names a key twice refused: parsers disagree on which one wins, so a
/// checker in front of smsbridge could see another number than it sends to.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!("an object names `{key}` more than once")));
            }
            let Strict(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Every scalar of `value` under its dotted path (`data.messageProfile.
/// phoneNumber`, `items.0.id`): identity products nest their fields.
fn flatten(value: &Value, path: &mut String, fields: &mut HashMap<String, String>) {
    let children: Vec<(String, &Value)> = match value {
        Value::Object(map) => map.iter().map(|(k, v)| (k.clone(), v)).collect(),
        Value::Array(items) => items.iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect(),
        Value::String(s) => return drop(fields.insert(path.clone(), s.clone())),
        Value::Number(n) => return drop(fields.insert(path.clone(), n.to_string())),
        Value::Bool(b) => return drop(fields.insert(path.clone(), b.to_string())),
        Value::Null => return,
    };
    for (key, child) in children {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(&key);
        flatten(child, path, fields);
        path.truncate(len);
    }
}

/// Every element's text, by the element's local name: RSA AM's XML method
/// names the phone and message elements in its request body template.
fn xml_fields(body: &[u8]) -> Result<HashMap<String, String>, Problem> {
    use quick_xml::events::Event;
    let bad = |why: String| Problem::new(StatusCode::BAD_REQUEST, Code::InvalidXml, why);
    let mut reader = quick_xml::Reader::from_reader(body);
    let (mut fields, mut open, mut buf) = (HashMap::new(), Vec::<String>::new(), Vec::new());
    loop {
        match reader.read_event_into(&mut buf).map_err(|e| bad(format!("body is not valid XML: {e}")))? {
            Event::Start(e) => open.push(String::from_utf8_lossy(e.local_name().as_ref()).into_owned()),
            Event::End(_) => {
                open.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(|e| bad(format!("body is not valid XML: {e}")))?;
                let text =
                    quick_xml::escape::unescape(&text).map_err(|e| bad(format!("body is not valid XML: {e}")))?;
                if let Some(name) = open.last().filter(|_| !text.trim().is_empty()) {
                    fields.entry(name.clone()).or_insert_with(String::new).push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                // `&amp;` and friends, and character references.
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    _ => {
                        let name = r.decode().map_err(|e| bad(format!("body is not valid XML: {e}")))?;
                        quick_xml::escape::resolve_xml_entity(&name)
                            .ok_or_else(|| bad(format!("body uses undefined entity &{name};")))?
                            .to_string()
                    }
                };
                if let Some(name) = open.last() {
                    fields.entry(name.clone()).or_insert_with(String::new).push_str(&resolved);
                }
            }
            Event::CData(t) => {
                if let Some(name) = open.last() {
                    fields.entry(name.clone()).or_insert_with(String::new).push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if fields.is_empty() {
        return Err(bad("body has no elements with text".into()));
    }
    Ok(fields)
}

/// The whole body, within `[server]`'s size cap and read deadline.
pub(super) async fn read_body(body: Body, server: &crate::config::Server) -> Result<axum::body::Bytes, Problem> {
    let max = server.max_body_bytes;
    let deadline = std::time::Duration::from_millis(server.body_read_timeout_ms);
    match tokio::time::timeout(deadline, to_bytes(body, max)).await {
        Ok(Ok(body)) => Ok(body),
        Ok(Err(_)) => Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Code::BodyTooLarge,
            format!("request body is larger than {max} bytes"),
        )),
        Err(_) => Err(Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            Code::BodyTimeout,
            format!("the request body did not arrive within {} ms", deadline.as_millis()),
        )),
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn form_fields_are_utf8_or_the_charset_they_name() {
        let pairs = |body: &[u8], charset| form_pairs(body, charset).map_err(|p| p.code);
        assert_eq!(
            pairs(b"a=C%C3%B3digo+1&b", Charset::Utf8).unwrap(),
            [("a".into(), "Código 1".into()), ("b".into(), String::new())]
        );
        assert_eq!(pairs(b"a=C%F3digo", Charset::Utf8).unwrap_err(), Code::InvalidEncoding);
        assert_eq!(pairs(b"a=C%F3digo", Charset::Latin1).unwrap(), [("a".into(), "Código".into())]);
        assert_eq!(pairs(b"%FF=1", Charset::Utf8).unwrap_err(), Code::InvalidEncoding);
    }

    #[test]
    fn a_json_key_named_twice_is_refused_at_any_depth() {
        assert!(json_fields(br#"{"a": 1, "b": {"a": 2}}"#).is_ok(), "the same key in another object");
        for body in [&br#"{"a": 1, "a": 2}"#[..], br#"{"x": [{"a": 1, "a": 1}]}"#] {
            let Err(p) = json_fields(body) else { panic!("{}", String::from_utf8_lossy(body)) };
            assert!(p.message.contains("names `a` more than once"), "{}", p.message);
        }
    }

    #[test]
    fn nested_json_fields_are_read_by_dotted_path() {
        let body = br#"{"data":{"messageProfile":{"phoneNumber":"2015550123","otpCode":411435}},"ids":[7,{"on":true}],"gone":null}"#;
        let Ok(fields) = json_fields(body) else { panic!("a JSON object was refused") };
        assert_eq!(fields["data.messageProfile.phoneNumber"], "2015550123");
        assert_eq!(fields["data.messageProfile.otpCode"], "411435");
        assert_eq!((fields["ids.0"].as_str(), fields["ids.1.on"].as_str()), ("7", "true"));
        assert_eq!(fields.len(), 4, "{fields:?}");
    }

    proptest! {
        /// Any body: fields or a 400 naming the problem, never a panic.
        #[test]
        fn json_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
            if let Err(p) = json_fields(&body) {
                prop_assert_eq!(p.status, StatusCode::BAD_REQUEST);
            }
        }

        #[test]
        fn xml_bodies_never_panic(body in "(<[a-zA-Z]{1,6}>|</[a-zA-Z]{1,6}>|[ -~]{0,12}|&[a-z#0-9]{0,6};?){0,40}") {
            if let Err(p) = xml_fields(body.as_bytes()) {
                prop_assert_eq!(p.status, StatusCode::BAD_REQUEST);
            }
        }

        #[test]
        fn json_fields_keep_every_string_value(phone in "[+0-9 ]{0,20}", message in "\\PC{0,60}") {
            let body = serde_json::json!({"phone": phone, "message": message}).to_string();
            let Ok(fields) = json_fields(body.as_bytes()) else { panic!("a JSON object was refused") };
            prop_assert_eq!(&fields["phone"], &phone);
            prop_assert_eq!(&fields["message"], &message);
        }
    }
}
