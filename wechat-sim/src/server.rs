//! The HTTP face of the simulator: WeChat's API paths, plus a small admin API under
//! `/_sim/` so a simulator started from the command line can be driven by curl.

use std::collections::HashMap;
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use wxpilot_wechat::Clock as _;

use crate::Shared;
use crate::config::AccountSpec;
use crate::multipart;
use crate::state::{Injection, SimRequest, default_errmsg};

/// Largest request body accepted (WeChat's own limits are lower: images 1 MB, thumbs 64 KB).
pub(crate) const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/_sim/accounts", web::post().to(admin_register))
        .route("/_sim/followers/say", web::post().to(admin_say))
        .route("/_sim/clock/advance", web::post().to(admin_advance))
        .route("/_sim/inject", web::post().to(admin_inject))
        .route("/_sim/sent", web::get().to(admin_sent))
        .route("/_sim/calls", web::get().to(admin_calls))
        .default_service(web::to(dispatch));
}

fn json_response(status: StatusCode, value: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(value.to_string())
}

/// Every WeChat API path: parse, hand to the rules, answer their JSON.
async fn dispatch(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let query: HashMap<String, String> =
        web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .unwrap_or_default();
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut sim_req = SimRequest {
        path: req.path().to_owned(),
        query,
        json: None,
        media: None,
    };
    if let Some(boundary) = multipart::boundary(content_type) {
        sim_req.media = multipart::find_part(&body, &boundary, "media")
            .map(|p| (p.file_name, p.content_type, p.data.len()));
    } else if !body.is_empty() {
        sim_req.json = serde_json::from_slice(&body).ok();
    }
    let now = shared.clock.now_unix_ms();
    let answer = shared.state().handle(&sim_req, now);
    let status = if answer.get("errcode").and_then(Value::as_i64) == Some(40066) {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::OK
    };
    json_response(status, &answer)
}

fn admin_error(e: &crate::SimError) -> HttpResponse {
    json_response(StatusCode::BAD_REQUEST, &json!({ "error": e.to_string() }))
}

async fn admin_register(shared: web::Data<Shared>, spec: web::Json<AccountSpec>) -> HttpResponse {
    match shared.state().register(spec.into_inner()) {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(e) => admin_error(&e),
    }
}

#[derive(Deserialize)]
struct Say {
    appid: String,
    openid: String,
    text: String,
}

async fn admin_say(shared: web::Data<Shared>, say: web::Json<Say>) -> HttpResponse {
    let shared: Arc<Shared> = shared.into_inner();
    match shared
        .follower_says(&say.appid, &say.openid, &say.text)
        .await
    {
        Ok(report) => match serde_json::to_value(&report) {
            Ok(v) => json_response(StatusCode::OK, &v),
            Err(e) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": e.to_string() }),
            ),
        },
        Err(e) => admin_error(&e),
    }
}

#[derive(Deserialize)]
struct Advance {
    seconds: u64,
}

async fn admin_advance(shared: web::Data<Shared>, by: web::Json<Advance>) -> HttpResponse {
    shared
        .clock
        .advance(std::time::Duration::from_secs(by.seconds));
    json_response(
        StatusCode::OK,
        &json!({ "now_ms": shared.clock.now_unix_ms() }),
    )
}

#[derive(Deserialize)]
struct Inject {
    appid: Option<String>,
    path: Option<String>,
    errcode: i64,
    errmsg: Option<String>,
    times: u32,
}

async fn admin_inject(shared: web::Data<Shared>, inj: web::Json<Inject>) -> HttpResponse {
    let inj = inj.into_inner();
    shared.state().inject(Injection {
        appid: inj.appid,
        path: inj.path,
        errcode: inj.errcode,
        errmsg: inj
            .errmsg
            .unwrap_or_else(|| default_errmsg(inj.errcode).to_owned()),
        remaining: inj.times,
    });
    HttpResponse::NoContent().finish()
}

async fn admin_sent(shared: web::Data<Shared>) -> HttpResponse {
    let sent = shared.state().sent.clone();
    json_response(StatusCode::OK, &json!(sent))
}

async fn admin_calls(shared: web::Data<Shared>) -> HttpResponse {
    let calls = shared.state().calls.clone();
    json_response(StatusCode::OK, &json!(calls))
}
