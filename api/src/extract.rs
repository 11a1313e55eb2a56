//! Extractors that fail with problem+json: a JSON body read with the configured size
//! limit and parsed with the path of the offending field, and query strings.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::error::PayloadError;
use actix_web::http::header;
use actix_web::web::{self, Bytes};
use actix_web::{FromRequest, HttpRequest};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body.
pub struct Json<T>(pub T);

/// Longest time a client may take to send its body.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The body size limit, set once as app data.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

impl<T: DeserializeOwned + 'static> FromRequest for Json<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let content_type_ok = is_json(req);
        let body = read_body(req, payload);
        Box::pin(async move {
            if !content_type_ok {
                return Err(ApiError::UnsupportedMediaType(
                    "send the body as Content-Type: application/json".into(),
                ));
            }
            parse(&body.await?).map(Json)
        })
    }
}

/// A raw body (uploads in JSON lines or CSV) under the same size limit, read timeout and
/// problem+json errors as [`Json`]; the handler parses it.
pub struct RawBody(pub Bytes);

impl FromRequest for RawBody {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = read_body(req, payload);
        Box::pin(async move { body.await.map(RawBody) })
    }
}

/// Reads the body within the configured limit (413 by the declared length or as it
/// arrives) and the read timeout (408).
fn read_body(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl Future<Output = Result<Bytes, ApiError>> + 'static {
    let limit = req.app_data::<BodyLimit>().map_or(1024 * 1024, |l| l.0);
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let bytes = web::Bytes::from_request(req, payload);
    async move {
        if declared.is_some_and(|len| len > limit) {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        let body = tokio::time::timeout(BODY_TIMEOUT, bytes)
            .await
            .map_err(|_| ApiError::RequestTimeout)?
            .map_err(|e| body_error(&e, limit))?;
        if body.len() > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        Ok(body)
    }
}

fn is_json(req: &HttpRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|mime| mime == "application/json" || mime.ends_with("+json"))
}

fn body_error(err: &actix_web::Error, limit: usize) -> ApiError {
    match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => ApiError::PayloadTooLarge(limit),
        _ => match err.as_error::<actix_web::error::JsonPayloadError>() {
            Some(actix_web::error::JsonPayloadError::Overflow { .. }) => {
                ApiError::PayloadTooLarge(limit)
            }
            _ if err.to_string().contains("overflow") => ApiError::PayloadTooLarge(limit),
            _ => ApiError::BadRequest(format!("could not read the request body: {err}")),
        },
    }
}

/// Parses a JSON body: syntax problems are 400, shape problems 422 with the field path.
/// Every request body of this API is a JSON object.
pub fn parse<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Err(ApiError::field("body", "must be a JSON object")),
            Err(e) => Err(ApiError::BadRequest(format!(
                "the body is not valid JSON: {e}"
            ))),
        };
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the body is not valid JSON: {e}")))?;
    if let Some(path) = nul_path(&value, String::new()) {
        let field = if path.is_empty() {
            "body".to_owned()
        } else {
            path
        };
        return Err(ApiError::field(&field, "must not contain NUL characters"));
    }
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        json_error(&path, &inner)
    })
}

/// The path of the first string (or key) holding a NUL character: no database stores it
/// as text, and no WeChat text contains it.
pub(crate) fn nul_path(value: &serde_json::Value, path: String) -> Option<String> {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => Some(path),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| nul_path(v, format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let here = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if k.contains('\0') {
                Some(here)
            } else {
                nul_path(v, here)
            }
        }),
        _ => None,
    }
}

fn json_error(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    match err.classify() {
        Category::Data => {
            let message = strip_position(&err.to_string());
            let field = missing_field(&message)
                .map(|name| join_path(path, name))
                .unwrap_or_else(|| {
                    if path == "." {
                        "body".into()
                    } else {
                        path.to_owned()
                    }
                });
            ApiError::field(&field, message)
        }
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::BadRequest(format!("the body is not valid JSON: {err}"))
        }
    }
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

fn backticked<'a>(message: &'a str, lead: &str) -> Option<&'a str> {
    let rest = message.strip_prefix(lead)?;
    let rest = rest.strip_prefix('`')?;
    rest.split('`').next()
}

fn missing_field(message: &str) -> Option<&str> {
    backticked(message, "missing field ")
}

fn join_path(path: &str, name: &str) -> String {
    if path == "." || path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A query string, failing with 400 problem+json.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let query = req.query_string();
        let has_nul =
            serde_urlencoded::from_str::<Vec<(String, String)>>(query).is_ok_and(|pairs| {
                pairs
                    .iter()
                    .any(|(k, v)| k.contains('\0') || v.contains('\0'))
            });
        std::future::ready(if has_nul {
            Err(ApiError::BadRequest(
                "the query string must not contain NUL characters".into(),
            ))
        } else {
            serde_urlencoded::from_str::<T>(query)
                .map(Query)
                .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))
        })
    }
}

/// The request's media type, lower-cased, without parameters (`text/csv` of
/// `text/csv; charset=utf-8`); empty when there is none.
pub fn media_type(req: &actix_web::HttpRequest) -> String {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Whether `media_type` names JSON lines.
pub fn is_json_lines(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/x-ndjson" | "application/jsonl" | "application/x-jsonlines"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Input {
        name: String,
        count: u32,
        mode: Mode,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        Safe,
    }

    fn field_of(body: &str) -> (u16, Vec<String>) {
        use actix_web::ResponseError;
        match parse::<Input>(&Bytes::from(body.to_owned())) {
            Ok(_) => (200, vec![]),
            Err(e) => {
                let problem = e.problem();
                assert_eq!(problem.status, e.status_code().as_u16());
                (
                    problem.status,
                    problem.errors.into_iter().map(|f| f.field).collect(),
                )
            }
        }
    }

    #[test]
    fn shape_errors_name_the_field() {
        assert_eq!(
            field_of(r#"{"name":"a","count":1,"mode":"safe"}"#),
            (200, vec![])
        );
        assert_eq!(
            field_of(r#"{"name":"a","count":"x","mode":"safe"}"#),
            (422, vec!["count".to_owned()])
        );
        assert_eq!(
            field_of(r#"{"name":"a","mode":"safe"}"#),
            (422, vec!["count".to_owned()])
        );
        assert_eq!(
            field_of(r#"{"name":"a","count":1,"mode":"loud"}"#),
            (422, vec!["mode".to_owned()])
        );
        assert_eq!(
            field_of(r#"{"name":"a","count":1,"mode":"safe","x":1}"#),
            (422, vec!["x".to_owned()])
        );
    }

    #[test]
    fn nul_characters_are_refused_with_their_field() {
        assert_eq!(
            field_of(r#"{"name":"a\u0000b","count":1,"mode":"safe"}"#),
            (422, vec!["name".to_owned()])
        );
        assert_eq!(
            field_of(r#"{"name":"a","count":1,"mode":"safe","x":["ok","\u0000"]}"#),
            (422, vec!["x[1]".to_owned()])
        );
    }

    #[test]
    fn syntax_errors_are_bad_requests() {
        assert_eq!(field_of(r#"{"name":"a","#), (400, vec![]));
        assert_eq!(field_of("{\"name\":\"\u{0}"), (400, vec![]));
        assert_eq!(
            field_of(r#"{"name":"a","count":1,"mode":"safe"} trailing"#),
            (400, vec![])
        );
    }
}
