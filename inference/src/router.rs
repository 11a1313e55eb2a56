//! Picks the local or the remote backend per job kind, by a policy from configuration, and
//! falls back to the other one when the first fails in a way the other might not.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::types::{
    Backend, BoxFuture, EmbedRequest, Embeddings, GenerateRequest, Generation, InferenceError,
    ModelInfo, TokenStream,
};

/// Which backend answers, and which one steps in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoutingPolicy {
    /// Local models; the remote when the local backend is overloaded, fails transiently, or
    /// has no model file.
    #[default]
    LocalFirst,
    /// The remote; local models when the remote fails in any way but a bad request.
    RemoteFirst,
    /// Local models only.
    LocalOnly,
    /// The remote only.
    RemoteOnly,
}

impl RoutingPolicy {
    /// The name used in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LocalFirst => "local_first",
            Self::RemoteFirst => "remote_first",
            Self::LocalOnly => "local_only",
            Self::RemoteOnly => "remote_only",
        }
    }

    /// Whether, under this policy, an error of the first backend sends the request to the
    /// second. Bad requests and cancellations never move: the other backend would refuse
    /// the same request, and nobody is waiting for a cancelled one.
    pub fn falls_back_on(self, error: &InferenceError) -> bool {
        match self {
            Self::LocalFirst => {
                error.is_transient() || matches!(error, InferenceError::ModelMissing { .. })
            }
            Self::RemoteFirst => !matches!(
                error,
                InferenceError::InvalidRequest(_) | InferenceError::Cancelled
            ),
            Self::LocalOnly | Self::RemoteOnly => false,
        }
    }
}

/// The default policy and the per-kind exceptions (`reply`, `generate`, `embed`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RoutingConfig {
    /// For kinds not listed in `kinds`.
    pub default: RoutingPolicy,
    /// Policy by job kind.
    pub kinds: BTreeMap<String, RoutingPolicy>,
}

impl RoutingConfig {
    /// The policy for a job kind.
    pub fn policy_for(&self, kind: &str) -> RoutingPolicy {
        self.kinds.get(kind).copied().unwrap_or(self.default)
    }
}

/// Holds the backends and hands out one [`RoutedBackend`] per job kind. As a [`Backend`]
/// itself it routes by the default policy.
pub struct Router {
    local: Option<Arc<dyn Backend>>,
    remote: Option<Arc<dyn Backend>>,
    config: RoutingConfig,
    default_route: RoutedBackend,
}

impl Router {
    /// A router over the backends that exist; a missing one is skipped by `*_first` policies
    /// and makes `*_only` policies answer [`InferenceError::ModelMissing`].
    pub fn new(
        local: Option<Arc<dyn Backend>>,
        remote: Option<Arc<dyn Backend>>,
        config: RoutingConfig,
    ) -> Self {
        let default_route = RoutedBackend::new(config.default, local.clone(), remote.clone());
        Self {
            local,
            remote,
            config,
            default_route,
        }
    }

    /// The policy in force for a job kind.
    pub fn policy_for(&self, kind: &str) -> RoutingPolicy {
        self.config.policy_for(kind)
    }

    /// The backend a job of this kind should use.
    pub fn for_kind(&self, kind: &str) -> Arc<dyn Backend> {
        Arc::new(RoutedBackend::new(
            self.policy_for(kind),
            self.local.clone(),
            self.remote.clone(),
        ))
    }

    /// The local backend, when there is one.
    pub fn local(&self) -> Option<&Arc<dyn Backend>> {
        self.local.as_ref()
    }

    /// The remote backend, when one is configured.
    pub fn remote(&self) -> Option<&Arc<dyn Backend>> {
        self.remote.as_ref()
    }
}

impl Backend for Router {
    fn name(&self) -> &str {
        "router"
    }

    fn models(&self) -> Vec<ModelInfo> {
        self.default_route.models()
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        self.default_route.embed(request)
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        self.default_route.generate_stream(request)
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, InferenceError>> {
        self.default_route.generate(request)
    }
}

/// One policy applied to a first and an optional second backend.
pub struct RoutedBackend {
    policy: RoutingPolicy,
    first: Option<Arc<dyn Backend>>,
    second: Option<Arc<dyn Backend>>,
}

impl RoutedBackend {
    /// Orders the backends as the policy says.
    pub fn new(
        policy: RoutingPolicy,
        local: Option<Arc<dyn Backend>>,
        remote: Option<Arc<dyn Backend>>,
    ) -> Self {
        let (first, second) = match policy {
            RoutingPolicy::LocalFirst => (local, remote),
            RoutingPolicy::RemoteFirst => (remote, local),
            RoutingPolicy::LocalOnly => (local, None),
            RoutingPolicy::RemoteOnly => (remote, None),
        };
        // A `*_first` policy with its first backend missing simply starts with the second.
        let (first, second) = match first {
            Some(first) => (Some(first), second),
            None => (second, None),
        };
        Self {
            policy,
            first,
            second,
        }
    }

    /// The policy applied.
    pub fn policy(&self) -> RoutingPolicy {
        self.policy
    }

    fn no_backend(&self) -> InferenceError {
        let hint = match self.policy {
            RoutingPolicy::LocalOnly => {
                "enable the local models ([inference.local]) and run scripts/fetch-models.sh"
            }
            RoutingPolicy::RemoteOnly => {
                "configure [inference.remote] (base_url, chat_model, embedding_model)"
            }
            RoutingPolicy::LocalFirst | RoutingPolicy::RemoteFirst => {
                "configure [inference.remote] or enable the local models"
            }
        };
        InferenceError::ModelMissing {
            what: format!("no backend for routing policy {}", self.policy.as_str()),
            hint: hint.into(),
        }
    }

    /// Runs `call` on the first backend, and on the second when the policy says the error
    /// warrants it.
    async fn route<'a, T, F>(&'a self, what: &str, call: F) -> Result<T, InferenceError>
    where
        F: Fn(&'a dyn Backend) -> BoxFuture<'a, Result<T, InferenceError>>,
    {
        let Some(first) = &self.first else {
            return Err(self.no_backend());
        };
        match call(first.as_ref()).await {
            Err(error) if self.policy.falls_back_on(&error) => match &self.second {
                Some(second) => {
                    tracing::warn!(
                        policy = self.policy.as_str(),
                        from = first.name(),
                        to = second.name(),
                        operation = what,
                        error = %error,
                        "falling back to the other inference backend"
                    );
                    call(second.as_ref()).await
                }
                None => Err(error),
            },
            other => other,
        }
    }
}

impl Backend for RoutedBackend {
    fn name(&self) -> &str {
        self.policy.as_str()
    }

    fn models(&self) -> Vec<ModelInfo> {
        let mut models: Vec<ModelInfo> = Vec::new();
        for backend in self.first.iter().chain(self.second.iter()) {
            for model in backend.models() {
                if !models.contains(&model) {
                    models.push(model);
                }
            }
        }
        models
    }

    fn embed(&self, request: EmbedRequest) -> BoxFuture<'_, Result<Embeddings, InferenceError>> {
        Box::pin(async move {
            self.route("embed", |backend| backend.embed(request.clone()))
                .await
        })
    }

    fn generate_stream(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<TokenStream, InferenceError>> {
        // Only a failure to start moves to the other backend: once tokens have reached the
        // caller, switching models mid-answer would splice two different texts.
        Box::pin(async move {
            self.route("generate_stream", |backend| {
                backend.generate_stream(request.clone())
            })
            .await
        })
    }

    fn generate(
        &self,
        request: GenerateRequest,
    ) -> BoxFuture<'_, Result<Generation, InferenceError>> {
        Box::pin(async move {
            self.route("generate", |backend| backend.generate(request.clone()))
                .await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote_error(retryable: bool) -> InferenceError {
        InferenceError::Remote {
            status: Some(500),
            message: "x".into(),
            retryable,
        }
    }

    #[test]
    fn local_first_moves_on_transient_errors_and_missing_models_only() {
        let p = RoutingPolicy::LocalFirst;
        assert!(p.falls_back_on(&InferenceError::Overloaded));
        assert!(p.falls_back_on(&InferenceError::Timeout(5)));
        assert!(p.falls_back_on(&InferenceError::ModelMissing {
            what: "m".into(),
            hint: "h".into()
        }));
        assert!(!p.falls_back_on(&InferenceError::Internal("bug".into())));
        assert!(!p.falls_back_on(&InferenceError::InvalidRequest("x".into())));
        assert!(!p.falls_back_on(&remote_error(false)));
    }

    #[test]
    fn remote_first_moves_on_any_error_but_bad_requests_and_cancellation() {
        let p = RoutingPolicy::RemoteFirst;
        assert!(p.falls_back_on(&remote_error(false)));
        assert!(p.falls_back_on(&remote_error(true)));
        assert!(p.falls_back_on(&InferenceError::Internal("x".into())));
        assert!(!p.falls_back_on(&InferenceError::InvalidRequest("x".into())));
        assert!(!p.falls_back_on(&InferenceError::Cancelled));
    }

    #[test]
    fn only_policies_never_move() {
        for p in [RoutingPolicy::LocalOnly, RoutingPolicy::RemoteOnly] {
            assert!(!p.falls_back_on(&InferenceError::Overloaded));
            assert!(!p.falls_back_on(&remote_error(true)));
        }
    }

    #[test]
    fn per_kind_policy_overrides_the_default() {
        let config: RoutingConfig =
            serde_json::from_str(r#"{"default":"remote_first","kinds":{"embed":"local_only"}}"#)
                .unwrap();
        assert_eq!(config.policy_for("embed"), RoutingPolicy::LocalOnly);
        assert_eq!(config.policy_for("reply"), RoutingPolicy::RemoteFirst);
        assert!(serde_json::from_str::<RoutingConfig>(r#"{"default":"sideways"}"#).is_err());
        assert!(serde_json::from_str::<RoutingConfig>(r#"{"defualt":"local_only"}"#).is_err());
    }
}
