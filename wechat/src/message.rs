//! Inbound callback bodies: messages and events a follower's actions send to an account.
//!
//! Parsing is two steps: [`parse_fields`] turns the body into a flat list of leaf
//! fields (paths below the root, e.g. `Content`, `PublishEventInfo/publish_id`), and
//! [`InboundMessage::from_fields`] types them. Unknown `MsgType` or `Event` values are
//! kept with their raw fields, not refused.
//!
//! Hardening, applied before and during parsing:
//! * bodies over [`XmlLimits::max_body_bytes`] are refused, as is nesting deeper than
//!   [`XmlLimits::max_depth`];
//! * any `<!DOCTYPE …>` (the only place entities can be declared) is refused, and so is a
//!   reference to any entity other than the five predefined ones (no XXE, no entity
//!   expansion);
//! * control characters XML 1.0 forbids (0x00–0x08, 0x0B, 0x0C, 0x0E–0x1F) are removed
//!   first, so one stray byte from a follower's phone does not drop their message.
//!
//! Three body shapes arrive: plain; compatible (plain fields plus `<Encrypt>`); safe
//! (`ToUserName` and `<Encrypt>` only). [`parse_envelope`] reads the encrypted part.

use std::borrow::Cow;
use std::fmt;

use quick_xml::Reader;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event as XmlEvent;

/// Size and shape limits for inbound bodies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Largest body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Deepest element nesting accepted (the root counts as 1).
    pub max_depth: usize,
}

impl XmlLimits {
    /// Real callbacks are a few KiB; publish results with many articles stay well below this.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
    /// Real callbacks nest at most 5 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 16;
}

impl Default for XmlLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_depth: Self::DEFAULT_MAX_DEPTH,
        }
    }
}

/// Why a body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// The body is larger than the configured limit.
    #[error("body of {size} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Elements nest deeper than the configured limit.
    #[error("elements nest deeper than {limit} levels")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// The body has a document type declaration (where entities would be declared).
    #[error("DOCTYPE and entity declarations are not accepted")]
    Doctype,
    /// The body references an entity other than `&lt; &gt; &amp; &apos; &quot;`.
    #[error("reference to undeclared entity &{0};")]
    UnknownEntity(String),
    /// The body is not UTF-8.
    #[error("body is not valid UTF-8")]
    Utf8,
    /// The body is not well-formed XML.
    #[error("malformed XML: {0}")]
    Malformed(String),
    /// A field every message must have is missing.
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    /// A field has a value of the wrong form.
    #[error("field {field} has invalid value {value:?}")]
    InvalidField {
        /// Field name.
        field: &'static str,
        /// The value found.
        value: String,
    },
}

/// Whether XML 1.0 forbids this character (the C0 controls other than tab, LF and CR,
/// and U+FFFE/U+FFFF).
pub fn is_forbidden_xml_char(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

fn is_forbidden_xml_byte(b: u8) -> bool {
    matches!(b, 0x00..=0x08 | 0x0b | 0x0c | 0x0e..=0x1f)
}

/// Removes the control bytes XML 1.0 forbids. They are ASCII, so never part of a
/// multi-byte UTF-8 sequence: removing them keeps valid UTF-8 valid.
pub fn strip_forbidden_control_bytes(body: &[u8]) -> Cow<'_, [u8]> {
    if body.iter().any(|&b| is_forbidden_xml_byte(b)) {
        Cow::Owned(
            body.iter()
                .copied()
                .filter(|&b| !is_forbidden_xml_byte(b))
                .collect(),
        )
    } else {
        Cow::Borrowed(body)
    }
}

/// The leaf fields of a body, in document order, keyed by their path below the root
/// (`Content`, `ScanCodeInfo/ScanResult`, `PublishEventInfo/article_detail/item/idx`).
/// Repeated elements give repeated entries.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Fields {
    entries: Vec<(String, String)>,
}

impl Fields {
    /// The first value at `path`.
    pub fn get(&self, path: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    /// Every value at `path`, in document order.
    pub fn get_all<'a>(&'a self, path: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(p, _)| p == path)
            .map(|(_, v)| v.as_str())
    }

    /// All `(path, value)` pairs in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries.iter().map(|(p, v)| (p.as_str(), v.as_str()))
    }

    /// Number of leaf fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no leaf fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// An element being read: its name, the text seen so far, and whether it has children.
struct OpenElement {
    name: String,
    text: String,
    /// Whitespace-only text outside CDATA, kept aside: it is indentation unless the
    /// element turns out to hold nothing else.
    whitespace: String,
    saw_cdata: bool,
    has_children: bool,
}

impl OpenElement {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            text: String::new(),
            whitespace: String::new(),
            saw_cdata: false,
            has_children: false,
        }
    }

    fn push_text(&mut self, text: &str) {
        if text.chars().all(char::is_whitespace) {
            self.whitespace.push_str(text);
        } else {
            // Whitespace between two text runs belongs to the text.
            self.text.push_str(&std::mem::take(&mut self.whitespace));
            self.text.push_str(text);
        }
    }

    fn push_cdata(&mut self, text: &str) {
        self.saw_cdata = true;
        self.whitespace.clear();
        self.text.push_str(text);
    }

    /// Text from an entity or character reference: content, never indentation.
    fn push_reference(&mut self, text: &str) {
        self.text.push_str(&std::mem::take(&mut self.whitespace));
        self.text.push_str(text);
    }

    fn value(mut self) -> String {
        if !self.saw_cdata && self.text.is_empty() {
            return self.whitespace;
        }
        if !self.saw_cdata {
            self.text.push_str(&self.whitespace);
        }
        self.text
    }
}

fn leaf_path(stack: &[OpenElement], leaf: &str) -> String {
    // Skip the root (`<xml>`).
    let mut path = String::new();
    for e in stack.iter().skip(1) {
        path.push_str(&e.name);
        path.push('/');
    }
    path.push_str(leaf);
    path
}

/// Parses a body into its leaf [`Fields`] after the size check and control-byte removal.
pub fn parse_fields(body: &[u8], limits: &XmlLimits) -> Result<Fields, XmlError> {
    if body.len() > limits.max_body_bytes {
        return Err(XmlError::TooLarge {
            size: body.len(),
            limit: limits.max_body_bytes,
        });
    }
    let cleaned = strip_forbidden_control_bytes(body);
    let text = std::str::from_utf8(&cleaned).map_err(|_| XmlError::Utf8)?;
    parse_fields_str(text, limits)
}

fn parse_fields_str(text: &str, limits: &XmlLimits) -> Result<Fields, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<OpenElement> = Vec::new();
    let mut fields = Fields::default();
    let malformed = |e: quick_xml::Error| XmlError::Malformed(e.to_string());

    loop {
        match reader.read_event().map_err(malformed)? {
            XmlEvent::Start(start) => {
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                if let Some(parent) = stack.last_mut() {
                    parent.has_children = true;
                }
                stack.push(OpenElement::new(start.local_name().as_ref()));
            }
            XmlEvent::Empty(empty) => {
                if stack.len() >= limits.max_depth {
                    return Err(XmlError::TooDeep {
                        limit: limits.max_depth,
                    });
                }
                if let Some(parent) = stack.last_mut() {
                    parent.has_children = true;
                }
                if !stack.is_empty() {
                    let path = leaf_path(&stack, empty.local_name().as_ref());
                    fields.entries.push((path, String::new()));
                }
            }
            XmlEvent::End(_) => {
                let Some(element) = stack.pop() else {
                    return Err(XmlError::Malformed("unmatched closing tag".into()));
                };
                // Leaves below the root become fields; text of parents is layout.
                if !element.has_children && !stack.is_empty() {
                    let path = leaf_path(&stack, &element.name);
                    fields.entries.push((path, element.value()));
                }
            }
            XmlEvent::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.push_text(&t.xml10_content());
                }
            }
            XmlEvent::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.push_cdata(&c.xml10_content());
                }
            }
            XmlEvent::GeneralRef(r) => {
                let resolved: String = if r.is_char_ref() {
                    match r.resolve_char_ref().map_err(malformed)? {
                        Some(c) if !is_forbidden_xml_char(c) => c.to_string(),
                        Some(_) => String::new(),
                        None => return Err(XmlError::Malformed("bad character reference".into())),
                    }
                } else {
                    let name: &str = &r;
                    match resolve_predefined_entity(name) {
                        Some(s) => s.to_owned(),
                        None => return Err(XmlError::UnknownEntity(name.to_owned())),
                    }
                };
                if let Some(top) = stack.last_mut() {
                    top.push_reference(&resolved);
                }
            }
            XmlEvent::DocType(_) => return Err(XmlError::Doctype),
            XmlEvent::Decl(_) | XmlEvent::PI(_) | XmlEvent::Comment(_) => {}
            XmlEvent::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(XmlError::Malformed(
            "unclosed element at end of body".into(),
        ));
    }
    Ok(fields)
}

/// The encrypted part of a compatible- or safe-mode body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedEnvelope {
    /// The account's original id, when the body carries it.
    pub to_user_name: Option<String>,
    /// The base64 ciphertext, to check against `msg_signature` and decrypt.
    pub encrypt: String,
}

/// Reads `<Encrypt>` and `<ToUserName>` from an encrypted body.
pub fn parse_envelope(body: &[u8], limits: &XmlLimits) -> Result<EncryptedEnvelope, XmlError> {
    let fields = parse_fields(body, limits)?;
    envelope_from_fields(&fields)
}

/// Reads `<Encrypt>` and `<ToUserName>` from already parsed fields.
pub fn envelope_from_fields(fields: &Fields) -> Result<EncryptedEnvelope, XmlError> {
    let encrypt = fields
        .get("Encrypt")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(XmlError::MissingField("Encrypt"))?;
    Ok(EncryptedEnvelope {
        to_user_name: fields.get("ToUserName").map(str::to_owned),
        encrypt: encrypt.to_owned(),
    })
}

/// A message or event, typed, with every raw field kept.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The account's original id (`gh_…`).
    pub to_user_name: String,
    /// The follower's openid.
    pub from_user_name: String,
    /// Unix seconds.
    pub create_time: i64,
    /// The raw `MsgType`.
    pub msg_type: String,
    /// `MsgId` of a message (events have none).
    pub msg_id: Option<String>,
    /// What it is.
    pub kind: MessageKind,
    /// All leaf fields as received.
    pub fields: Fields,
}

/// The typed content of an inbound message. Missing text fields read as empty strings
/// and missing or malformed numbers as `None`: a partial message still reaches its
/// handler, with [`InboundMessage::fields`] to look deeper.
#[derive(Debug, Clone, PartialEq)]
pub enum MessageKind {
    /// `text`.
    Text {
        /// What the follower wrote.
        content: String,
    },
    /// `image`.
    Image {
        /// Image URL.
        pic_url: String,
        /// Media id.
        media_id: String,
    },
    /// `voice`.
    Voice {
        /// Media id.
        media_id: String,
        /// Audio format (`amr`, `speex`).
        format: String,
        /// Speech recognition result, when enabled.
        recognition: Option<String>,
    },
    /// `video`.
    Video {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `shortvideo`.
    ShortVideo {
        /// Media id.
        media_id: String,
        /// Thumbnail media id.
        thumb_media_id: String,
    },
    /// `location` (a location the follower sent).
    Location {
        /// `Location_X`.
        latitude: Option<f64>,
        /// `Location_Y`.
        longitude: Option<f64>,
        /// Map zoom.
        scale: Option<u32>,
        /// Place description.
        label: String,
    },
    /// `link`.
    Link {
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// URL.
        url: String,
    },
    /// `event`.
    Event(EventKind),
    /// A `MsgType` this crate does not know; see [`InboundMessage::fields`].
    Unknown,
}

/// The typed content of an `event` message.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// `subscribe`: followed, maybe by scanning a parametric QR code.
    Subscribe {
        /// The raw `EventKey` when present and not empty.
        event_key: Option<String>,
        /// The scene of the QR code (`EventKey` without its `qrscene_` prefix).
        scene: Option<String>,
        /// QR code ticket.
        ticket: Option<String>,
    },
    /// `unsubscribe`.
    Unsubscribe,
    /// `SCAN`: an existing follower scanned a parametric QR code.
    Scan {
        /// The scene (`EventKey`).
        scene: String,
        /// QR code ticket.
        ticket: Option<String>,
    },
    /// `CLICK`: a menu button.
    Click {
        /// The button key.
        key: String,
    },
    /// `VIEW`: a menu link.
    View {
        /// The URL opened.
        url: String,
        /// The menu id, when present.
        menu_id: Option<String>,
    },
    /// `LOCATION`: periodic location report.
    Location {
        /// Latitude.
        latitude: Option<f64>,
        /// Longitude.
        longitude: Option<f64>,
        /// Precision.
        precision: Option<f64>,
    },
    /// `PUBLISHJOBFINISH`: the result of `freepublish/submit`.
    PublishJobFinish(PublishResult),
    /// `TEMPLATESENDJOBFINISH`: the delivery result of a template message.
    TemplateSendJobFinish {
        /// The template message id (`MsgID`).
        msg_id: Option<String>,
        /// `success`, `failed:user block`, `failed: system failed`.
        status: String,
    },
    /// An `Event` this crate does not know; see [`InboundMessage::fields`].
    Unknown {
        /// The raw `Event`.
        event: String,
    },
}

/// `PUBLISHJOBFINISH` contents (under `PublishEventInfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishResult {
    /// `publish_id` as returned by `freepublish/submit`.
    pub publish_id: Option<String>,
    /// `publish_status`.
    pub status: Option<PublishStatus>,
    /// `article_id` on success.
    pub article_id: Option<String>,
    /// `article_detail/item/article_url`, in order.
    pub article_urls: Vec<String>,
    /// `fail_idx`: 1-based indexes of failed articles.
    pub fail_idx: Vec<u32>,
}

/// `publish_status` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishStatus {
    /// 0: published.
    Success,
    /// 1: still publishing.
    Publishing,
    /// 2: failed the originality check.
    OriginalFailed,
    /// 3: failed.
    Failed,
    /// 4: rejected by platform review.
    AuditFailed,
    /// 5: published, then all articles deleted by the user.
    DeletedAfterSuccess,
    /// 6: published, then all articles banned by the platform.
    BannedAfterSuccess,
    /// A code this crate does not know.
    Other(u32),
}

impl PublishStatus {
    /// Maps a `publish_status` code.
    pub fn from_code(code: u32) -> Self {
        match code {
            0 => Self::Success,
            1 => Self::Publishing,
            2 => Self::OriginalFailed,
            3 => Self::Failed,
            4 => Self::AuditFailed,
            5 => Self::DeletedAfterSuccess,
            6 => Self::BannedAfterSuccess,
            other => Self::Other(other),
        }
    }
}

/// What identifies a delivery across WeChat's retries (namespace it by account).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DedupKey {
    /// A message's `MsgId`.
    MsgId(String),
    /// An event (or a message without `MsgId`): sender and time, plus the event name so
    /// two different events in the same second (e.g. `subscribe` and `LOCATION`) are
    /// not taken for retries of each other.
    Event {
        /// `FromUserName`.
        from_user_name: String,
        /// `CreateTime`.
        create_time: i64,
        /// `Event` (or `MsgType` for a message without `MsgId`).
        event: String,
    },
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MsgId(id) => write!(f, "msgid:{id}"),
            Self::Event {
                from_user_name,
                create_time,
                event,
            } => write!(f, "event:{from_user_name}:{create_time}:{event}"),
        }
    }
}

/// Parses and types a plain (or compatible-mode) body.
pub fn parse_message(body: &[u8], limits: &XmlLimits) -> Result<InboundMessage, XmlError> {
    InboundMessage::from_fields(parse_fields(body, limits)?)
}

fn text(fields: &Fields, name: &str) -> String {
    fields.get(name).unwrap_or_default().to_owned()
}

fn optional(fields: &Fields, name: &str) -> Option<String> {
    fields
        .get(name)
        .filter(|s| !s.trim().is_empty())
        .map(str::to_owned)
}

fn number<T: std::str::FromStr>(fields: &Fields, name: &str) -> Option<T> {
    fields.get(name).and_then(|s| s.trim().parse().ok())
}

fn required<'a>(fields: &'a Fields, name: &'static str) -> Result<&'a str, XmlError> {
    fields.get(name).ok_or(XmlError::MissingField(name))
}

impl InboundMessage {
    /// Types parsed fields. `ToUserName`, `FromUserName`, `CreateTime` and `MsgType` are
    /// required; anything else unknown is kept, not refused.
    pub fn from_fields(fields: Fields) -> Result<Self, XmlError> {
        let to_user_name = required(&fields, "ToUserName")?.to_owned();
        let from_user_name = required(&fields, "FromUserName")?.to_owned();
        let raw_time = required(&fields, "CreateTime")?;
        let create_time = raw_time
            .trim()
            .parse()
            .map_err(|_| XmlError::InvalidField {
                field: "CreateTime",
                value: raw_time.to_owned(),
            })?;
        let msg_type = required(&fields, "MsgType")?.trim().to_owned();

        let is = |name: &str| msg_type.eq_ignore_ascii_case(name);
        let kind = if is("event") {
            MessageKind::Event(event_kind(&fields))
        } else if is("text") {
            MessageKind::Text {
                content: text(&fields, "Content"),
            }
        } else if is("image") {
            MessageKind::Image {
                pic_url: text(&fields, "PicUrl"),
                media_id: text(&fields, "MediaId"),
            }
        } else if is("voice") {
            MessageKind::Voice {
                media_id: text(&fields, "MediaId"),
                format: text(&fields, "Format"),
                recognition: optional(&fields, "Recognition"),
            }
        } else if is("video") {
            MessageKind::Video {
                media_id: text(&fields, "MediaId"),
                thumb_media_id: text(&fields, "ThumbMediaId"),
            }
        } else if is("shortvideo") {
            MessageKind::ShortVideo {
                media_id: text(&fields, "MediaId"),
                thumb_media_id: text(&fields, "ThumbMediaId"),
            }
        } else if is("location") {
            MessageKind::Location {
                latitude: number(&fields, "Location_X"),
                longitude: number(&fields, "Location_Y"),
                scale: number(&fields, "Scale"),
                label: text(&fields, "Label"),
            }
        } else if is("link") {
            MessageKind::Link {
                title: text(&fields, "Title"),
                description: text(&fields, "Description"),
                url: text(&fields, "Url"),
            }
        } else {
            MessageKind::Unknown
        };
        let msg_id = if matches!(kind, MessageKind::Event(_)) {
            None
        } else {
            optional(&fields, "MsgId").map(|s| s.trim().to_owned())
        };
        Ok(Self {
            to_user_name,
            from_user_name,
            create_time,
            msg_type,
            msg_id,
            kind,
            fields,
        })
    }

    /// The raw `Event` of an event message.
    pub fn event(&self) -> Option<&str> {
        match self.kind {
            MessageKind::Event(_) => self.fields.get("Event").map(str::trim),
            _ => None,
        }
    }

    /// The key that identifies this delivery across retries: `MsgId` for messages,
    /// `FromUserName` + `CreateTime` (+ event name) for events.
    pub fn dedup_key(&self) -> DedupKey {
        match &self.msg_id {
            Some(id) => DedupKey::MsgId(id.clone()),
            None => DedupKey::Event {
                from_user_name: self.from_user_name.clone(),
                create_time: self.create_time,
                event: self.event().unwrap_or(&self.msg_type).to_owned(),
            },
        }
    }
}

fn event_kind(fields: &Fields) -> EventKind {
    let event = fields.get("Event").unwrap_or_default().trim();
    let is = |name: &str| event.eq_ignore_ascii_case(name);
    if is("subscribe") {
        let event_key = optional(fields, "EventKey");
        let scene = event_key
            .as_deref()
            .and_then(|k| k.strip_prefix("qrscene_"))
            .map(str::to_owned);
        EventKind::Subscribe {
            event_key,
            scene,
            ticket: optional(fields, "Ticket"),
        }
    } else if is("unsubscribe") {
        EventKind::Unsubscribe
    } else if is("SCAN") {
        EventKind::Scan {
            scene: text(fields, "EventKey"),
            ticket: optional(fields, "Ticket"),
        }
    } else if is("CLICK") {
        EventKind::Click {
            key: text(fields, "EventKey"),
        }
    } else if is("VIEW") {
        EventKind::View {
            url: text(fields, "EventKey"),
            menu_id: optional(fields, "MenuId"),
        }
    } else if is("LOCATION") {
        EventKind::Location {
            latitude: number(fields, "Latitude"),
            longitude: number(fields, "Longitude"),
            precision: number(fields, "Precision"),
        }
    } else if is("PUBLISHJOBFINISH") {
        let info = |name: &str| format!("PublishEventInfo/{name}");
        EventKind::PublishJobFinish(PublishResult {
            publish_id: optional(fields, &info("publish_id")).map(|s| s.trim().to_owned()),
            status: number(fields, &info("publish_status")).map(PublishStatus::from_code),
            article_id: optional(fields, &info("article_id")).map(|s| s.trim().to_owned()),
            article_urls: fields
                .get_all(&info("article_detail/item/article_url"))
                .map(str::to_owned)
                .collect(),
            fail_idx: fields
                .get_all(&info("fail_idx"))
                .chain(fields.get_all(&info("fail_idx/idx")))
                .filter_map(|s| s.trim().parse().ok())
                .collect(),
        })
    } else if is("TEMPLATESENDJOBFINISH") {
        EventKind::TemplateSendJobFinish {
            msg_id: optional(fields, "MsgID").map(|s| s.trim().to_owned()),
            status: text(fields, "Status"),
        }
    } else {
        EventKind::Unknown {
            event: event.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<InboundMessage, XmlError> {
        parse_message(body.as_bytes(), &XmlLimits::default())
    }

    fn head(msg_type: &str) -> String {
        format!(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\
             <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\
             <CreateTime>1409735668</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>"
        )
    }

    fn event(name: &str, rest: &str) -> InboundMessage {
        parse(&format!(
            "{}<Event><![CDATA[{name}]]></Event>{rest}</xml>",
            head("event")
        ))
        .unwrap()
    }

    #[test]
    fn text_message_with_whitespace_layout() {
        let m = parse(
            "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n\
             <FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n\
             <CreateTime>1409735668</CreateTime>\n<MsgType><![CDATA[text]]></MsgType>\n\
             <Content>\n  <![CDATA[ abcdteT ]]>\n</Content>\n<MsgId>6054768590064713728</MsgId>\n</xml>",
        )
        .unwrap();
        assert_eq!(m.to_user_name, "gh_10f6c3c3ac5a");
        assert_eq!(m.from_user_name, "oyORnuP8q7ou2gfYjqLzSIWZf0rs");
        assert_eq!(m.create_time, 1_409_735_668);
        assert_eq!(
            m.kind,
            MessageKind::Text {
                content: " abcdteT ".into()
            }
        );
        assert_eq!(m.msg_id.as_deref(), Some("6054768590064713728"));
        assert_eq!(m.dedup_key(), DedupKey::MsgId("6054768590064713728".into()));
        assert_eq!(m.dedup_key().to_string(), "msgid:6054768590064713728");
    }

    #[test]
    fn escaped_text_and_character_references() {
        let m = parse(&format!(
            "{}<Content>a &lt;b&gt; &amp; &#20013;&#x6587; &quot;q&apos;</Content><MsgId>1</MsgId></xml>",
            head("text")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Text {
                content: "a <b> & 中文 \"q'".into()
            }
        );
    }

    #[test]
    fn media_location_link_messages() {
        let m = parse(&format!(
            "{}<PicUrl><![CDATA[http://p/1.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>2</MsgId></xml>",
            head("image")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Image {
                pic_url: "http://p/1.jpg".into(),
                media_id: "m1".into()
            }
        );
        let m = parse(&format!(
            "{}<MediaId><![CDATA[v]]></MediaId><Format><![CDATA[amr]]></Format><Recognition><![CDATA[腾讯]]></Recognition><MsgId>3</MsgId></xml>",
            head("voice")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Voice {
                media_id: "v".into(),
                format: "amr".into(),
                recognition: Some("腾讯".into())
            }
        );
        for (t, expect_short) in [("video", false), ("shortvideo", true)] {
            let m = parse(&format!(
                "{}<MediaId><![CDATA[a]]></MediaId><ThumbMediaId><![CDATA[b]]></ThumbMediaId><MsgId>4</MsgId></xml>",
                head(t)
            ))
            .unwrap();
            let (media_id, thumb_media_id) = ("a".to_string(), "b".to_string());
            let expected = if expect_short {
                MessageKind::ShortVideo {
                    media_id,
                    thumb_media_id,
                }
            } else {
                MessageKind::Video {
                    media_id,
                    thumb_media_id,
                }
            };
            assert_eq!(m.kind, expected);
        }
        let m = parse(&format!(
            "{}<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale><Label><![CDATA[位置信息]]></Label><MsgId>5</MsgId></xml>",
            head("location")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Location {
                latitude: Some(23.134521),
                longitude: Some(113.358803),
                scale: Some(20),
                label: "位置信息".into()
            }
        );
        let m = parse(&format!(
            "{}<Title><![CDATA[t]]></Title><Description><![CDATA[d]]></Description><Url><![CDATA[u]]></Url><MsgId>6</MsgId></xml>",
            head("link")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Link {
                title: "t".into(),
                description: "d".into(),
                url: "u".into()
            }
        );
    }

    #[test]
    fn events() {
        let m = event(
            "subscribe",
            "<EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket>",
        );
        assert_eq!(
            m.kind,
            MessageKind::Event(EventKind::Subscribe {
                event_key: Some("qrscene_123123".into()),
                scene: Some("123123".into()),
                ticket: Some("TICKET".into())
            })
        );
        assert_eq!(m.msg_id, None);
        assert_eq!(
            m.dedup_key(),
            DedupKey::Event {
                from_user_name: "oyORnuP8q7ou2gfYjqLzSIWZf0rs".into(),
                create_time: 1_409_735_668,
                event: "subscribe".into()
            }
        );
        assert_eq!(
            m.dedup_key().to_string(),
            "event:oyORnuP8q7ou2gfYjqLzSIWZf0rs:1409735668:subscribe"
        );

        let m = event("subscribe", "<EventKey><![CDATA[]]></EventKey>");
        assert_eq!(
            m.kind,
            MessageKind::Event(EventKind::Subscribe {
                event_key: None,
                scene: None,
                ticket: None
            })
        );
        assert_eq!(
            event("unsubscribe", "").kind,
            MessageKind::Event(EventKind::Unsubscribe)
        );
        assert_eq!(
            event(
                "SCAN",
                "<EventKey><![CDATA[SCENE_VALUE]]></EventKey><Ticket><![CDATA[T]]></Ticket>"
            )
            .kind,
            MessageKind::Event(EventKind::Scan {
                scene: "SCENE_VALUE".into(),
                ticket: Some("T".into())
            })
        );
        assert_eq!(
            event(
                "CLICK",
                "<EventKey><![CDATA[V1001_TODAY_MUSIC]]></EventKey>"
            )
            .kind,
            MessageKind::Event(EventKind::Click {
                key: "V1001_TODAY_MUSIC".into()
            })
        );
        assert_eq!(
            event(
                "VIEW",
                "<EventKey><![CDATA[http://www.qq.com/]]></EventKey><MenuId>12</MenuId>"
            )
            .kind,
            MessageKind::Event(EventKind::View {
                url: "http://www.qq.com/".into(),
                menu_id: Some("12".into())
            })
        );
        assert_eq!(
            event(
                "LOCATION",
                "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>"
            )
            .kind,
            MessageKind::Event(EventKind::Location {
                latitude: Some(23.137466),
                longitude: Some(113.352425),
                precision: Some(119.38504)
            })
        );
        assert_eq!(
            event(
                "TEMPLATESENDJOBFINISH",
                "<MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>"
            )
            .kind,
            MessageKind::Event(EventKind::TemplateSendJobFinish {
                msg_id: Some("200163836".into()),
                status: "failed:user block".into()
            })
        );
    }

    #[test]
    fn publish_job_finish_success_and_failure() {
        let m = event(
            "PUBLISHJOBFINISH",
            "<PublishEventInfo><publish_id>2247503051</publish_id><publish_status>0</publish_status>\
             <article_id><![CDATA[b5O2OUs25HBxRceL7hfReg-U9QGeq9zQjiDvyWP4Hq4]]></article_id>\
             <article_detail><count>2</count>\
             <item><idx>1</idx><article_url><![CDATA[https://mp.weixin.qq.com/s/a]]></article_url></item>\
             <item><idx>2</idx><article_url><![CDATA[https://mp.weixin.qq.com/s/b]]></article_url></item>\
             </article_detail></PublishEventInfo>",
        );
        assert_eq!(
            m.kind,
            MessageKind::Event(EventKind::PublishJobFinish(PublishResult {
                publish_id: Some("2247503051".into()),
                status: Some(PublishStatus::Success),
                article_id: Some("b5O2OUs25HBxRceL7hfReg-U9QGeq9zQjiDvyWP4Hq4".into()),
                article_urls: vec![
                    "https://mp.weixin.qq.com/s/a".into(),
                    "https://mp.weixin.qq.com/s/b".into()
                ],
                fail_idx: vec![],
            }))
        );
        let m = event(
            "PUBLISHJOBFINISH",
            "<PublishEventInfo><publish_id>2247503052</publish_id><publish_status>2</publish_status>\
             <fail_idx>1</fail_idx><fail_idx>2</fail_idx></PublishEventInfo>",
        );
        let MessageKind::Event(EventKind::PublishJobFinish(r)) = m.kind else {
            panic!("not a publish result: {m:?}");
        };
        assert_eq!(r.status, Some(PublishStatus::OriginalFailed));
        assert_eq!(r.fail_idx, vec![1, 2]);
        assert!(r.article_urls.is_empty());
        assert_eq!(PublishStatus::from_code(42), PublishStatus::Other(42));
    }

    #[test]
    fn unknown_types_are_kept_with_raw_fields() {
        let m = event(
            "scancode_push",
            "<EventKey><![CDATA[rselfmenu_0_1]]></EventKey><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType>\
             <ScanResult><![CDATA[1]]></ScanResult></ScanCodeInfo>",
        );
        assert_eq!(
            m.kind,
            MessageKind::Event(EventKind::Unknown {
                event: "scancode_push".into()
            })
        );
        assert_eq!(m.fields.get("ScanCodeInfo/ScanType"), Some("qrcode"));
        let m = parse(&format!(
            "{}<Foo>bar</Foo><MsgId>77</MsgId></xml>",
            head("miniprogrampage")
        ))
        .unwrap();
        assert_eq!(m.kind, MessageKind::Unknown);
        assert_eq!(m.msg_type, "miniprogrampage");
        assert_eq!(m.fields.get("Foo"), Some("bar"));
        assert_eq!(m.dedup_key(), DedupKey::MsgId("77".into()));
    }

    #[test]
    fn missing_or_invalid_required_fields() {
        assert_eq!(
            parse("<xml><ToUserName>a</ToUserName></xml>"),
            Err(XmlError::MissingField("FromUserName"))
        );
        assert_eq!(
            parse(
                "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><CreateTime>x</CreateTime><MsgType>text</MsgType></xml>"
            ),
            Err(XmlError::InvalidField {
                field: "CreateTime",
                value: "x".into()
            })
        );
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        let xxe = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}<Content>&xxe;</Content></xml>",
            head("text")
        );
        assert_eq!(parse(&xxe), Err(XmlError::Doctype));
        assert_eq!(parse("<!DOCTYPE xml><xml/>"), Err(XmlError::Doctype));
        let undeclared = format!("{}<Content>&xxe;</Content></xml>", head("text"));
        assert_eq!(
            parse(&undeclared),
            Err(XmlError::UnknownEntity("xxe".into()))
        );
        // A bare entity declaration outside a DOCTYPE is not XML at all.
        assert!(parse("<xml><!ENTITY a \"b\"></xml>").is_err());
        // A follower *writing* "<!DOCTYPE" inside CDATA is just text.
        let m = parse(&format!(
            "{}<Content><![CDATA[<!DOCTYPE html>]]></Content><MsgId>1</MsgId></xml>",
            head("text")
        ))
        .unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Text {
                content: "<!DOCTYPE html>".into()
            }
        );
    }

    #[test]
    fn forbidden_control_characters_are_stripped() {
        let body = format!(
            "{}<Content><![CDATA[a\u{2}b\u{10}c]]></Content><MsgId>1</MsgId></xml>",
            head("text")
        );
        let m = parse(&body).unwrap();
        assert_eq!(
            m.kind,
            MessageKind::Text {
                content: "abc".into()
            }
        );
        // Tab, LF and CR are allowed and kept (CRLF normalised to LF by XML rules).
        let body = format!(
            "{}<Content><![CDATA[a\tb\r\nc]]></Content><MsgId>1</MsgId></xml>",
            head("text")
        );
        assert_eq!(
            parse(&body).unwrap().kind,
            MessageKind::Text {
                content: "a\tb\nc".into()
            }
        );
        // A character reference to a forbidden character is dropped too.
        let body = format!("{}<Content>x&#2;y</Content></xml>", head("text"));
        assert_eq!(
            parse(&body).unwrap().kind,
            MessageKind::Text {
                content: "xy".into()
            }
        );
    }

    #[test]
    fn limits() {
        let limits = XmlLimits {
            max_body_bytes: 10,
            max_depth: 16,
        };
        assert_eq!(
            parse_fields(b"<xml><a>1</a></xml>", &limits),
            Err(XmlError::TooLarge {
                size: 19,
                limit: 10
            })
        );
        let deep = format!("{}{}", "<a>".repeat(17), "</a>".repeat(17));
        assert_eq!(
            parse_fields(deep.as_bytes(), &XmlLimits::default()),
            Err(XmlError::TooDeep { limit: 16 })
        );
        assert!(matches!(
            parse_fields(b"<xml><a>1</b></xml>", &XmlLimits::default()),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse_fields(b"<xml><a>1</a>", &XmlLimits::default()),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(
            parse_fields(b"<xml>\xff</xml>", &XmlLimits::default()),
            Err(XmlError::Utf8)
        );
    }

    #[test]
    fn envelopes_in_safe_and_compatible_mode() {
        let safe = b"<xml>\n<ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n<Encrypt><![CDATA[hyzAe4Oz==]]></Encrypt>\n</xml>";
        assert_eq!(
            parse_envelope(safe, &XmlLimits::default()).unwrap(),
            EncryptedEnvelope {
                to_user_name: Some("gh_10f6c3c3ac5a".into()),
                encrypt: "hyzAe4Oz==".into()
            }
        );
        let compatible = format!(
            "{}<Content><![CDATA[hi]]></Content><MsgId>1</MsgId><Encrypt><![CDATA[QUJD]]></Encrypt></xml>",
            head("text")
        );
        let env = parse_envelope(compatible.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(env.encrypt, "QUJD");
        assert_eq!(env.to_user_name.as_deref(), Some("gh_10f6c3c3ac5a"));
        // The plain fields of a compatible body still parse as a message.
        assert!(matches!(
            parse(&compatible).unwrap().kind,
            MessageKind::Text { .. }
        ));
        assert_eq!(
            parse_envelope(
                b"<xml><ToUserName>a</ToUserName></xml>",
                &XmlLimits::default()
            ),
            Err(XmlError::MissingField("Encrypt"))
        );
    }

    #[test]
    fn fields_keep_order_and_repeats() {
        let f = parse_fields(
            b"<xml><a>1</a><b><c>2</c><c>3</c></b><d/></xml>",
            &XmlLimits::default(),
        )
        .unwrap();
        assert_eq!(
            f.iter().collect::<Vec<_>>(),
            vec![("a", "1"), ("b/c", "2"), ("b/c", "3"), ("d", "")]
        );
        assert_eq!(f.get_all("b/c").collect::<Vec<_>>(), vec!["2", "3"]);
        assert_eq!(f.len(), 4);
    }
}
