//! The OpenAPI document, derived from the handlers' `#[utoipa::path]` annotations as they
//! are registered in [`crate::routes::configure`], plus what no single handler states:
//! the bearer scheme and the problem+json answers every operation can give.

use actix_web::App;
use utoipa::OpenApi as _;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi, Ref, RefOr, Response, ResponseBuilder};
use utoipa_actix_web::AppExt;

use crate::error::{PROBLEM_JSON, Problem, ProblemField};

#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "wxpilot",
        description = "Multi-tenant WeChat Official Account platform with LLM help: AI customer service, \
content generation, recommendation and forecasting.\n\nAuthenticate with `Authorization: Bearer <API key or JWT>`. \
Every error is an RFC 9457 `application/problem+json` document.",
        license(name = "Apache-2.0")
    ),
    components(schemas(Problem, ProblemField)),
    tags(
        (name = "auth", description = "Tokens"),
        (name = "accounts", description = "WeChat Official Accounts"),
        (name = "campaigns", description = "Marketing campaigns"),
        (name = "knowledge", description = "FAQ pairs the customer service answers from"),
        (name = "conversations", description = "Followers' conversations, agents' replies and handoff"),
        (name = "contents", description = "Generated drafts, their versions, review and brand voices"),
        (name = "users", description = "People who sign in"),
        (name = "api-keys", description = "API keys"),
        (name = "audit", description = "Who changed what"),
        (name = "jobs", description = "Durable background jobs: states, progress, cancel, retry"),
        (name = "webhooks", description = "Signed job events to the tenant's endpoints"),
        (name = "usage", description = "What the tenant consumed"),
        (name = "forecasts", description = "Daily account metrics and their forecasts"),
        (name = "recommendations", description = "Items, interactions, per-follower recommendations with reasons, and segments tagged in WeChat"),
        (name = "operations", description = "Health, readiness and metrics")
    )
)]
struct ApiDoc;

/// The complete document, as served at `/openapi.json` and checked in as `openapi/openapi.json`.
pub fn document() -> OpenApi {
    let (_, mut api) = App::new()
        .into_utoipa_app()
        .openapi(ApiDoc::openapi())
        .configure(crate::routes::configure)
        .split_for_parts();
    api.info.version = env!("CARGO_PKG_VERSION").to_owned();
    add_shared_parts(&mut api);
    api
}

/// The document as pretty JSON with a trailing newline (the checked-in form).
pub fn document_json() -> anyhow::Result<String> {
    Ok(document().to_pretty_json()? + "\n")
}

const SHARED_RESPONSES: [(&str, &str, &str); 8] = [
    (
        "400",
        "BadRequest",
        "The request could not be read (malformed JSON or query)",
    ),
    (
        "401",
        "Unauthorized",
        "Missing, malformed, expired or revoked credential",
    ),
    (
        "403",
        "Forbidden",
        "The credential's role or scopes do not allow this",
    ),
    ("404", "NotFound", "No such object in this tenant"),
    (
        "413",
        "PayloadTooLarge",
        "The body is over the configured limit",
    ),
    (
        "415",
        "UnsupportedMediaType",
        "The body is not application/json",
    ),
    (
        "422",
        "ValidationFailed",
        "The body is well-formed but breaks a rule; `errors` names each field",
    ),
    (
        "500",
        "InternalError",
        "Our fault; quote the X-Request-Id response header",
    ),
];

fn problem_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            Content::new(Some(Ref::from_schema_name("Problem"))),
        )
        .build()
}

fn add_shared_parts(api: &mut OpenApi) {
    let components = api.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            Http::builder()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "An API key (`wxp_…`) or a JWT from `POST /v1/auth/token`".to_owned(),
                ))
                .build(),
        ),
    );
    for (_, name, description) in SHARED_RESPONSES {
        components
            .responses
            .insert(name.to_owned(), RefOr::T(problem_response(description)));
    }
    for (path, item) in api.paths.paths.iter_mut() {
        let has_path_params = path.contains('{');
        for (method, operation) in operations(item) {
            let secured = operation.security.as_ref().is_some_and(|s| !s.is_empty());
            let has_body = operation.request_body.is_some();
            for (status, name, _) in SHARED_RESPONSES {
                let applies = match status {
                    "401" | "403" => secured,
                    "404" => has_path_params,
                    "413" | "415" | "422" => has_body,
                    "400" => has_body || method == "get",
                    _ => true,
                };
                if applies {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| {
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}")))
                        });
                }
            }
        }
    }
}

fn operations(item: &mut PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("post", item.post.as_mut()),
        ("put", item.put.as_mut()),
        ("patch", item.patch.as_mut()),
        ("delete", item.delete.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
    .collect()
}
