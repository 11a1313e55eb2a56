//! Passive replies: the XML answered in the body of a callback (within WeChat's 5 s).
//!
//! Text is carried in CDATA sections; content holding `]]>` is split across two sections
//! so the XML stays well-formed, and characters XML 1.0 forbids are dropped (one stray
//! control character from a model would otherwise make WeChat show the follower
//! "该公众号暂时无法提供服务").

use std::fmt::Write as _;

use crate::message::{InboundMessage, is_forbidden_xml_char};

/// Most UTF-8 bytes WeChat accepts in a passive text reply.
pub const MAX_TEXT_REPLY_BYTES: usize = 2048;
/// Most articles in a news reply. WeChat accepts only one when the reply answers a
/// follower's text, image, voice, video, link or location message; up to 8 otherwise.
pub const MAX_NEWS_ARTICLES: usize = 8;
/// The body that acknowledges a callback without replying (stops WeChat's retries).
pub const SUCCESS: &str = "success";

/// One article of a news (图文) reply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewsArticle {
    /// Title.
    pub title: String,
    /// Short description.
    pub description: String,
    /// Cover image URL.
    pub pic_url: String,
    /// Link opened on tap.
    pub url: String,
}

/// What a passive reply carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyBody {
    /// Text, at most [`MAX_TEXT_REPLY_BYTES`] bytes (split longer text with [`split_text_reply`]).
    Text {
        /// The text.
        content: String,
    },
    /// An image already uploaded as media.
    Image {
        /// Its media id.
        media_id: String,
    },
    /// 1 to [`MAX_NEWS_ARTICLES`] articles.
    News {
        /// The articles, in display order.
        articles: Vec<NewsArticle>,
    },
}

/// A passive reply to one follower.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassiveReply {
    /// The follower's openid (the inbound `FromUserName`).
    pub to_user_name: String,
    /// The account's original id (the inbound `ToUserName`).
    pub from_user_name: String,
    /// Unix seconds.
    pub create_time: i64,
    /// What to send.
    pub body: ReplyBody,
}

/// Why a reply cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Text longer than WeChat accepts; split it first.
    #[error("text reply is {bytes} bytes, more than the {limit} allowed")]
    TextTooLong {
        /// UTF-8 length of the content.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A news reply needs at least one article.
    #[error("news reply has no articles")]
    NoArticles,
    /// More articles than WeChat accepts.
    #[error("news reply has {count} articles, more than the {limit} allowed")]
    TooManyArticles {
        /// Articles given.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl PassiveReply {
    /// A reply to `message`: addressed to its sender, from the account it was sent to.
    pub fn to_message(message: &InboundMessage, create_time: i64, body: ReplyBody) -> Self {
        Self {
            to_user_name: message.from_user_name.clone(),
            from_user_name: message.to_user_name.clone(),
            create_time,
            body,
        }
    }

    /// Renders the reply XML (plain mode; encrypt it with
    /// [`crate::MessageCrypt::encrypt_reply`] for the encrypted modes).
    pub fn to_xml(&self) -> Result<String, ReplyError> {
        let mut out = String::with_capacity(256);
        out.push_str("<xml><ToUserName>");
        push_cdata(&mut out, &self.to_user_name);
        out.push_str("</ToUserName><FromUserName>");
        push_cdata(&mut out, &self.from_user_name);
        // Writing to a String cannot fail.
        let _ = write!(
            out,
            "</FromUserName><CreateTime>{}</CreateTime>",
            self.create_time
        );
        match &self.body {
            ReplyBody::Text { content } => {
                if content.len() > MAX_TEXT_REPLY_BYTES {
                    return Err(ReplyError::TextTooLong {
                        bytes: content.len(),
                        limit: MAX_TEXT_REPLY_BYTES,
                    });
                }
                out.push_str("<MsgType><![CDATA[text]]></MsgType><Content>");
                push_cdata(&mut out, content);
                out.push_str("</Content>");
            }
            ReplyBody::Image { media_id } => {
                out.push_str("<MsgType><![CDATA[image]]></MsgType><Image><MediaId>");
                push_cdata(&mut out, media_id);
                out.push_str("</MediaId></Image>");
            }
            ReplyBody::News { articles } => {
                if articles.is_empty() {
                    return Err(ReplyError::NoArticles);
                }
                if articles.len() > MAX_NEWS_ARTICLES {
                    return Err(ReplyError::TooManyArticles {
                        count: articles.len(),
                        limit: MAX_NEWS_ARTICLES,
                    });
                }
                let _ = write!(
                    out,
                    "<MsgType><![CDATA[news]]></MsgType><ArticleCount>{}</ArticleCount><Articles>",
                    articles.len()
                );
                for a in articles {
                    out.push_str("<item><Title>");
                    push_cdata(&mut out, &a.title);
                    out.push_str("</Title><Description>");
                    push_cdata(&mut out, &a.description);
                    out.push_str("</Description><PicUrl>");
                    push_cdata(&mut out, &a.pic_url);
                    out.push_str("</PicUrl><Url>");
                    push_cdata(&mut out, &a.url);
                    out.push_str("</Url></item>");
                }
                out.push_str("</Articles>");
            }
        }
        out.push_str("</xml>");
        Ok(out)
    }
}

/// Appends `text` as one or more CDATA sections: every `]]>` becomes `]]]]><![CDATA[>`,
/// and characters XML 1.0 forbids are dropped.
pub fn push_cdata(out: &mut String, text: &str) {
    out.push_str("<![CDATA[");
    let mut rest = text;
    while let Some(pos) = rest.find("]]>") {
        push_allowed(out, &rest[..pos]);
        out.push_str("]]]]><![CDATA[>");
        rest = &rest[pos + 3..];
    }
    push_allowed(out, rest);
    out.push_str("]]>");
}

/// `text` wrapped as CDATA (see [`push_cdata`]).
pub fn cdata(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 12);
    push_cdata(&mut out, text);
    out
}

/// Appends `text` escaped as XML character data (`&`, `<`, `>`), dropping forbidden
/// characters.
pub fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c if is_forbidden_xml_char(c) => {}
            c => out.push(c),
        }
    }
}

fn push_allowed(out: &mut String, text: &str) {
    if text.chars().any(is_forbidden_xml_char) {
        out.extend(text.chars().filter(|&c| !is_forbidden_xml_char(c)));
    } else {
        out.push_str(text);
    }
}

/// Cuts `text` into parts of at most `max_bytes` UTF-8 bytes each, only on character
/// boundaries, in order; text that fits comes back as one part (an empty text as one
/// empty part). `max_bytes` below 4 is raised to 4 so any character fits.
pub fn split_text(text: &str, max_bytes: usize) -> Vec<&str> {
    let max_bytes = max_bytes.max(4);
    let mut parts = Vec::with_capacity(text.len() / max_bytes + 1);
    let mut rest = text;
    while rest.len() > max_bytes {
        let mut cut = max_bytes;
        while !rest.is_char_boundary(cut) {
            cut -= 1; // terminates: index 0 is always a boundary, and max_bytes >= 4
        }
        let (head, tail) = rest.split_at(cut);
        parts.push(head);
        rest = tail;
    }
    parts.push(rest);
    parts
}

/// [`split_text`] at WeChat's passive text limit, [`MAX_TEXT_REPLY_BYTES`].
pub fn split_text_reply(text: &str) -> Vec<&str> {
    split_text(text, MAX_TEXT_REPLY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{MessageKind, XmlLimits, parse_fields, parse_message};

    fn text_reply(content: &str) -> PassiveReply {
        PassiveReply {
            to_user_name: "oFollower".into(),
            from_user_name: "gh_account".into(),
            create_time: 1_700_000_000,
            body: ReplyBody::Text {
                content: content.into(),
            },
        }
    }

    #[test]
    fn text_reply_layout() {
        assert_eq!(
            text_reply("你好").to_xml().unwrap(),
            "<xml><ToUserName><![CDATA[oFollower]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName>\
             <CreateTime>1700000000</CreateTime><MsgType><![CDATA[text]]></MsgType>\
             <Content><![CDATA[你好]]></Content></xml>"
        );
    }

    #[test]
    fn cdata_terminator_in_content_survives_a_round_trip() {
        for content in ["a]]>b", "]]>", "]]>]]>", "x]]]>y", "]]", "末尾]]>"] {
            let xml = text_reply(content).to_xml().unwrap();
            // Parse back with quick-xml through our parser.
            let fields = parse_fields(xml.as_bytes(), &XmlLimits::default()).unwrap();
            assert_eq!(fields.get("Content"), Some(content), "xml: {xml}");
            assert_eq!(fields.get("MsgType"), Some("text"));
        }
        assert_eq!(cdata("a]]>b"), "<![CDATA[a]]]]><![CDATA[>b]]>");
    }

    #[test]
    fn cdata_terminator_round_trips_through_raw_quick_xml() {
        use quick_xml::Reader;
        use quick_xml::events::Event;
        let xml = text_reply("see ]]> here").to_xml().unwrap();
        let mut reader = Reader::from_str(&xml);
        let mut in_content = false;
        let mut text = String::new();
        loop {
            match reader.read_event().unwrap() {
                Event::Start(e) if e.local_name().as_ref() == "Content" => in_content = true,
                Event::End(e) if e.local_name().as_ref() == "Content" => in_content = false,
                Event::CData(c) if in_content => text.push_str(&c.xml10_content()),
                Event::Eof => break,
                _ => {}
            }
        }
        assert_eq!(text, "see ]]> here");
    }

    #[test]
    fn forbidden_characters_are_dropped_from_replies() {
        let xml = text_reply("a\u{0}b\u{1b}c\td").to_xml().unwrap();
        assert!(xml.contains("<![CDATA[abc\td]]>"));
    }

    #[test]
    fn too_long_text_is_refused() {
        let long = "a".repeat(MAX_TEXT_REPLY_BYTES + 1);
        assert_eq!(
            text_reply(&long).to_xml(),
            Err(ReplyError::TextTooLong {
                bytes: 2049,
                limit: 2048
            })
        );
        assert!(text_reply(&long[1..]).to_xml().is_ok());
    }

    #[test]
    fn image_and_news_layout() {
        let mut r = text_reply("");
        r.body = ReplyBody::Image {
            media_id: "MID".into(),
        };
        assert!(
            r.to_xml()
                .unwrap()
                .ends_with("<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[MID]]></MediaId></Image></xml>")
        );
        let article = NewsArticle {
            title: "T".into(),
            description: "D".into(),
            pic_url: "P".into(),
            url: "U".into(),
        };
        r.body = ReplyBody::News {
            articles: vec![article.clone(); 2],
        };
        let xml = r.to_xml().unwrap();
        assert!(xml.contains("<ArticleCount>2</ArticleCount><Articles><item><Title><![CDATA[T]]></Title>\
             <Description><![CDATA[D]]></Description><PicUrl><![CDATA[P]]></PicUrl><Url><![CDATA[U]]></Url></item><item>"));
        let fields = parse_fields(xml.as_bytes(), &XmlLimits::default()).unwrap();
        assert_eq!(fields.get_all("Articles/item/Url").count(), 2);

        r.body = ReplyBody::News {
            articles: vec![article; 9],
        };
        assert_eq!(
            r.to_xml(),
            Err(ReplyError::TooManyArticles { count: 9, limit: 8 })
        );
        r.body = ReplyBody::News { articles: vec![] };
        assert_eq!(r.to_xml(), Err(ReplyError::NoArticles));
    }

    #[test]
    fn reply_addresses_the_sender() {
        let body = b"<xml><ToUserName><![CDATA[gh_1]]></ToUserName><FromUserName><![CDATA[o_2]]></FromUserName>\
            <CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content><MsgId>9</MsgId></xml>";
        let msg = parse_message(body, &XmlLimits::default()).unwrap();
        assert!(matches!(msg.kind, MessageKind::Text { .. }));
        let reply = PassiveReply::to_message(
            &msg,
            2,
            ReplyBody::Text {
                content: "ok".into(),
            },
        );
        assert_eq!(reply.to_user_name, "o_2");
        assert_eq!(reply.from_user_name, "gh_1");
    }

    #[test]
    fn split_683_chinese_characters_into_two_parts() {
        let text = "中".repeat(683); // 2049 bytes
        assert_eq!(text.len(), 2049);
        let parts = split_text_reply(&text);
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 2046);
        assert_eq!(parts[1], "中");
        assert!(parts.iter().all(|p| p.len() <= MAX_TEXT_REPLY_BYTES));
        assert_eq!(parts.concat(), text);
    }

    #[test]
    fn split_edges() {
        assert_eq!(split_text_reply(""), vec![""]);
        let exact = "a".repeat(2048);
        assert_eq!(split_text_reply(&exact), vec![exact.as_str()]);
        let mixed = "ab😀c中";
        assert_eq!(split_text(mixed, 5), vec!["ab", "😀c", "中"]);
        assert_eq!(split_text("😀😀", 1), vec!["😀", "😀"]);
    }
}
