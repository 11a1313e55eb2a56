//! Every route, wired in one place. One file per resource.

pub mod accounts;
pub mod api_keys;
pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod contents;
pub mod conversations;
pub mod forecasts;
pub mod generations;
pub mod health;
pub mod jobs;
pub mod keyword_rules;
pub mod knowledge;
pub mod recommendations;
pub mod usage;
pub mod users;
pub mod webhooks;
pub mod wechat_callback;

use actix_web::HttpResponse;
use actix_web::http::header;
use serde::Serialize;
use utoipa_actix_web::scope;
use utoipa_actix_web::service_config::ServiceConfig;

/// Registers every documented route.
pub fn configure(cfg: &mut ServiceConfig) {
    // The WeChat callback stays out of the OpenAPI document: WeChat calls it, not clients.
    cfg.map(|c| c.configure(wechat_callback::configure));
    cfg.service(health::healthz)
        .service(health::readyz)
        .service(health::metrics)
        .service(
            scope::scope("/v1")
                .service(auth::token)
                .service(accounts::create)
                .service(accounts::list)
                .service(accounts::get)
                .service(accounts::update)
                .service(accounts::delete)
                .service(campaigns::create)
                .service(campaigns::list)
                .service(campaigns::get)
                .service(campaigns::update)
                .service(campaigns::delete)
                .service(forecasts::upload_metrics)
                .service(forecasts::sync_metrics)
                .service(forecasts::create)
                .service(forecasts::get)
                .service(conversations::list)
                .service(conversations::messages)
                .service(conversations::send)
                .service(conversations::resume)
                .service(conversations::get)
                .service(recommendations::upload_items)
                .service(recommendations::list_items)
                .service(recommendations::similar)
                .service(recommendations::get_item)
                .service(recommendations::upload_interactions)
                .service(recommendations::create)
                .service(recommendations::for_follower)
                .service(recommendations::create_segment)
                .service(recommendations::list_segments)
                .service(recommendations::get_segment)
                .service(generations::create)
                .service(contents::list)
                .service(contents::get)
                .service(contents::update)
                .service(contents::approve)
                .service(contents::reject)
                .service(contents::publish)
                .service(contents::publication)
                .service(contents::put_brand_voice)
                .service(users::create)
                .service(users::list)
                .service(users::get)
                .service(users::update)
                .service(users::delete)
                .service(api_keys::create)
                .service(api_keys::list)
                .service(api_keys::get)
                .service(api_keys::update)
                .service(api_keys::delete)
                .service(audit::list)
                .service(jobs::ping)
                .service(jobs::list)
                .service(jobs::get)
                .service(jobs::events)
                .service(jobs::cancel)
                .service(jobs::retry)
                .service(webhooks::create)
                .service(webhooks::list)
                .service(webhooks::get)
                .service(webhooks::update)
                .service(webhooks::delete)
                .service(webhooks::deliveries)
                .service(knowledge::create)
                .service(knowledge::list)
                .service(knowledge::import)
                .service(knowledge::embed)
                .service(knowledge::create_document)
                .service(knowledge::delete_document)
                .service(knowledge::get)
                .service(knowledge::update)
                .service(knowledge::delete)
                .service(keyword_rules::create)
                .service(keyword_rules::list)
                .service(keyword_rules::delete)
                .service(usage::get)
                .service(usage::set_budget),
        );
}

/// 201 with `Location` and the created object.
pub(crate) fn created<T: Serialize>(location: String, body: &T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}
