//! Delivering follower messages to an account's callback URL, as WeChat does: signed,
//! encrypted in the account's mode, retried when no answer comes in time (three
//! deliveries in all), each answer and its timing recorded.

use std::time::{Duration, Instant};

use serde::Serialize;
use wxpilot_wechat::reply::cdata;
use wxpilot_wechat::{MessageCrypt, XmlLimits, parse_fields, url_signature};

use crate::config::CallbackMode;

/// What one delivery got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum AttemptOutcome {
    /// An HTTP answer arrived in time.
    Answered {
        /// Status code.
        status: u16,
        /// Body as text (lossy UTF-8).
        body: String,
    },
    /// No complete answer within the timeout: WeChat drops the connection and retries.
    TimedOut,
    /// The connection failed (refused, reset).
    Failed(String),
}

/// One delivery of a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryAttempt {
    /// 1, 2 or 3.
    pub number: u32,
    /// When it started, counted from the first delivery.
    pub started_after: Duration,
    /// How long until the answer (or the timeout).
    pub elapsed: Duration,
    /// What came back.
    pub outcome: AttemptOutcome,
    /// The full callback URL used (query included).
    pub url: String,
    /// The body posted.
    pub body: String,
}

/// The deliveries of one follower message and what they got back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryReport {
    /// The account.
    pub appid: String,
    /// `MsgId` of the message (the same on every delivery).
    pub msg_id: Option<u64>,
    /// The message XML before encryption.
    pub message_xml: String,
    /// Every delivery, in order (empty when the account has no callback URL).
    pub attempts: Vec<DeliveryAttempt>,
    /// The passive reply, decrypted and verified where encrypted, when the answer was
    /// more than an acknowledgement.
    pub reply: ReplyOutcome,
}

/// What the account answered, read as WeChat reads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ReplyOutcome {
    /// No delivery got an answer (WeChat shows the follower "该公众号暂时无法提供服务").
    NoAnswer,
    /// `success` or an empty body: acknowledged, nothing shown.
    Acknowledged,
    /// A passive reply (the plaintext XML; decrypted and signature-checked in the
    /// encrypted modes).
    Reply(String),
    /// An answer WeChat cannot use (bad signature, bad XML, HTTP error status).
    Invalid(String),
}

impl DeliveryReport {
    /// Number of deliveries made.
    pub fn deliveries(&self) -> usize {
        self.attempts.len()
    }
}

/// Builds the XML of a follower's text message.
pub(crate) fn text_message_xml(
    original_id: &str,
    openid: &str,
    create_time: i64,
    content: &str,
    msg_id: u64,
) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime>\
         <MsgType><![CDATA[text]]></MsgType><Content>{}</Content><MsgId>{msg_id}</MsgId></xml>",
        cdata(original_id),
        cdata(openid),
        cdata(content)
    )
}

/// Everything needed to deliver one message.
pub(crate) struct Delivery<'a> {
    pub(crate) http: &'a reqwest::Client,
    pub(crate) url: &'a str,
    pub(crate) mode: CallbackMode,
    pub(crate) crypt: &'a MessageCrypt,
    pub(crate) token: &'a str,
    pub(crate) original_id: &'a str,
    pub(crate) openid: Option<&'a str>,
    pub(crate) timeout: Duration,
    pub(crate) deliveries: u32,
    pub(crate) retry_gap: Duration,
    /// Simulated Unix seconds for the signature timestamp.
    pub(crate) timestamp: i64,
}

fn random_nonce() -> String {
    let mut b = [0u8; 4];
    let _ = getrandom::fill(&mut b);
    u32::from_le_bytes(b).to_string()
}

fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Delivery<'_> {
    /// Delivers `message_xml` up to `deliveries` times; stops at the first answer in time.
    pub(crate) async fn run(&self, message_xml: &str) -> (Vec<DeliveryAttempt>, ReplyOutcome) {
        let first = Instant::now();
        let mut attempts = Vec::new();
        let mut reply = ReplyOutcome::NoAnswer;
        for number in 1..=self.deliveries.max(1) {
            let (url, body) = match self.envelope(message_xml) {
                Ok(v) => v,
                Err(e) => {
                    reply = ReplyOutcome::Invalid(format!("could not encrypt: {e}"));
                    break;
                }
            };
            let started = Instant::now();
            let request = self
                .http
                .post(&url)
                .header("content-type", "text/xml")
                .body(body.clone())
                .send();
            let outcome = match tokio::time::timeout(self.timeout, async {
                let response = request.await?;
                let status = response.status().as_u16();
                let text = response.text().await?;
                Ok::<_, reqwest::Error>((status, text))
            })
            .await
            {
                Ok(Ok((status, text))) => AttemptOutcome::Answered { status, body: text },
                Ok(Err(e)) => AttemptOutcome::Failed(e.to_string()),
                Err(_) => AttemptOutcome::TimedOut,
            };
            let answered = matches!(outcome, AttemptOutcome::Answered { .. });
            if let AttemptOutcome::Answered { status, body } = &outcome {
                reply = self.read_reply(*status, body);
            }
            attempts.push(DeliveryAttempt {
                number,
                started_after: started.duration_since(first),
                elapsed: started.elapsed(),
                outcome,
                url,
                body,
            });
            if answered {
                break;
            }
            if number < self.deliveries && !self.retry_gap.is_zero() {
                tokio::time::sleep(self.retry_gap).await;
            }
        }
        (attempts, reply)
    }

    /// The URL (with signatures) and body of one delivery.
    fn envelope(&self, message_xml: &str) -> Result<(String, String), wxpilot_wechat::CryptoError> {
        let timestamp = self.timestamp.to_string();
        let nonce = random_nonce();
        let signature = url_signature(self.token, &timestamp, &nonce);
        let sep = if self.url.contains('?') { '&' } else { '?' };
        let mut url = format!(
            "{}{sep}signature={signature}&timestamp={timestamp}&nonce={nonce}",
            self.url
        );
        if let Some(openid) = self.openid {
            url.push_str("&openid=");
            url.push_str(&query_escape(openid));
        }
        if self.mode == CallbackMode::Plain {
            return Ok((url, message_xml.to_owned()));
        }
        let encrypted = self.crypt.encrypt_reply(message_xml, &timestamp, &nonce)?;
        url.push_str("&encrypt_type=aes&msg_signature=");
        url.push_str(&encrypted.msg_signature);
        let encrypt_element = format!("<Encrypt>{}</Encrypt>", cdata(&encrypted.encrypt));
        let body = match self.mode {
            CallbackMode::Safe => format!(
                "<xml><ToUserName>{}</ToUserName>{encrypt_element}</xml>",
                cdata(self.original_id)
            ),
            // Compatible: the plain fields with <Encrypt> added.
            _ => match message_xml.rfind("</xml>") {
                Some(pos) => format!("{}{encrypt_element}</xml>", &message_xml[..pos]),
                None => format!("<xml>{encrypt_element}</xml>"),
            },
        };
        Ok((url, body))
    }

    fn read_reply(&self, status: u16, body: &str) -> ReplyOutcome {
        if !(200..300).contains(&status) {
            return ReplyOutcome::Invalid(format!("HTTP {status}"));
        }
        let trimmed = body.trim();
        if trimmed.is_empty() || trimmed == wxpilot_wechat::SUCCESS {
            return ReplyOutcome::Acknowledged;
        }
        let fields = match parse_fields(trimmed.as_bytes(), &XmlLimits::default()) {
            Ok(f) => f,
            Err(e) => return ReplyOutcome::Invalid(format!("reply is not XML: {e}")),
        };
        let Some(encrypt) = fields.get("Encrypt") else {
            if self.mode == CallbackMode::Safe {
                return ReplyOutcome::Invalid("plain reply in safe mode".into());
            }
            return ReplyOutcome::Reply(trimmed.to_owned());
        };
        let get = |k: &str| fields.get(k).unwrap_or("");
        match self.crypt.decrypt_message(
            get("MsgSignature"),
            get("TimeStamp"),
            get("Nonce"),
            encrypt,
        ) {
            Ok(xml) => ReplyOutcome::Reply(xml),
            Err(e) => ReplyOutcome::Invalid(format!("encrypted reply refused: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_escaped() {
        assert_eq!(query_escape("o-6_bm+/=x"), "o-6_bm%2B%2F%3Dx");
    }

    #[test]
    fn text_message_is_well_formed() {
        let xml = text_message_xml("gh_1", "o1", 1_700_000_000, "a]]>b", 42);
        let msg = wxpilot_wechat::parse_message(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(msg.from_user_name, "o1");
        assert_eq!(msg.to_user_name, "gh_1");
        assert_eq!(msg.create_time, 1_700_000_000);
        assert_eq!(msg.msg_id.as_deref(), Some("42"));
        assert_eq!(msg.fields.get("Content"), Some("a]]>b"));
    }
}
