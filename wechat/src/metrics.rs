//! Prometheus instruments of WeChat API calls, in the process-wide default registry:
//! calls by endpoint and outcome (`ok`, the WeChat `errcode`, `http_<status>`,
//! `timeout`, `transport`, `decode`) and latency by endpoint. The endpoint label is the
//! API path, a fixed set, never a URL with a token in it.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};

use crate::client::ApiError;

struct Instruments {
    calls: IntCounterVec,
    latency: HistogramVec,
}

fn instruments() -> Option<&'static Instruments> {
    static CELL: OnceLock<Option<Instruments>> = OnceLock::new();
    CELL.get_or_init(|| {
        let make = || -> prometheus::Result<Instruments> {
            let calls = IntCounterVec::new(
                Opts::new(
                    "wxpilot_wechat_calls_total",
                    "WeChat API calls by endpoint and outcome (ok or the errcode)",
                ),
                &["endpoint", "outcome"],
            )?;
            let latency = HistogramVec::new(
                HistogramOpts::new(
                    "wxpilot_wechat_call_duration_seconds",
                    "WeChat API call latency by endpoint",
                )
                .buckets(vec![0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0]),
                &["endpoint"],
            )?;
            prometheus::default_registry().register(Box::new(calls.clone()))?;
            prometheus::default_registry().register(Box::new(latency.clone()))?;
            Ok(Instruments { calls, latency })
        };
        make().ok()
    })
    .as_ref()
}

/// The outcome label of a call's result.
pub fn outcome_label<T>(result: &Result<T, ApiError>) -> String {
    match result {
        Ok(_) => "ok".into(),
        Err(e) => match e.errcode() {
            Some(code) => code.to_string(),
            None => match e {
                ApiError::Http { status, .. } => format!("http_{status}"),
                ApiError::Transport { timeout: true, .. } => "timeout".into(),
                ApiError::Transport { .. } => "transport".into(),
                ApiError::Decode { .. } => "decode".into(),
                _ => "error".into(),
            },
        },
    }
}

/// Records one finished call.
pub(crate) fn observe_call<T>(endpoint: &str, elapsed: Duration, result: &Result<T, ApiError>) {
    if let Some(m) = instruments() {
        m.calls
            .with_label_values(&[endpoint, &outcome_label(result)])
            .inc();
        m.latency
            .with_label_values(&[endpoint])
            .observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_name_the_errcode_or_the_failure() {
        let ok: Result<(), ApiError> = Ok(());
        assert_eq!(outcome_label(&ok), "ok");
        let window = ApiError::from_errcode(
            45015,
            "response out of time limit",
            "/cgi-bin/message/custom/send",
        )
        .map(Err::<(), _>);
        assert_eq!(window.as_ref().map(outcome_label), Some("45015".to_owned()));
        let http: Result<(), _> = Err(ApiError::Http {
            api: "/x".into(),
            status: 502,
        });
        assert_eq!(outcome_label(&http), "http_502");
        let slow: Result<(), _> = Err(ApiError::Transport {
            api: "/x".into(),
            message: "t".into(),
            timeout: true,
        });
        assert_eq!(outcome_label(&slow), "timeout");
    }

    #[test]
    fn a_call_is_counted_in_the_process_registry() {
        let failed: Result<(), _> = Err(ApiError::Http {
            api: "/cgi-bin/metrics-test".into(),
            status: 503,
        });
        observe_call("/cgi-bin/metrics-test", Duration::from_millis(12), &failed);
        let mut text = Vec::new();
        prometheus::Encoder::encode(
            &prometheus::TextEncoder::new(),
            &prometheus::gather(),
            &mut text,
        )
        .expect("encodes");
        let text = String::from_utf8(text).expect("utf-8");
        assert!(
            text.contains(r#"wxpilot_wechat_calls_total{endpoint="/cgi-bin/metrics-test",outcome="http_503"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"wxpilot_wechat_call_duration_seconds_count{endpoint="/cgi-bin/metrics-test"} 1"#
        ));
    }
}
