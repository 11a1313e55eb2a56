//! HTML for article bodies: sanitising to what WeChat's editor keeps, visible text with
//! positions, image URL listing and rewriting, and turning plain model text into HTML.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

/// Tags WeChat's editor keeps; everything else is unwrapped (its text stays).
const ALLOWED_TAGS: &[&str] = &[
    "p",
    "br",
    "strong",
    "b",
    "em",
    "i",
    "u",
    "span",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "ul",
    "ol",
    "li",
    "img",
    "a",
    "table",
    "thead",
    "tbody",
    "tfoot",
    "tr",
    "th",
    "td",
    "caption",
    "colgroup",
    "col",
    "hr",
    "sup",
    "sub",
];

/// Tags removed together with their content: code, embedded documents and form controls
/// whose text is not article text.
const DROPPED_WITH_CONTENT: &[&str] = &[
    "script", "style", "iframe", "object", "embed", "form", "noscript", "textarea", "select",
    "button", "svg", "math", "template", "title",
];

/// Inline style properties kept. Layout-changing properties that could hide text from a
/// reviewer (display, position, visibility, opacity) and anything that loads a resource
/// (background-image, content) are not here.
const ALLOWED_STYLE_PROPERTIES: &[&str] = &[
    "color",
    "background-color",
    "font-size",
    "font-weight",
    "font-style",
    "font-family",
    "text-align",
    "text-decoration",
    "text-indent",
    "line-height",
    "letter-spacing",
    "vertical-align",
    "margin",
    "margin-top",
    "margin-right",
    "margin-bottom",
    "margin-left",
    "padding",
    "padding-top",
    "padding-right",
    "padding-bottom",
    "padding-left",
    "border",
    "border-radius",
    "width",
    "max-width",
    "height",
];

/// Tags after which the text continues on a new line (for text extraction).
const BLOCK_TAGS: &[&str] = &[
    "p",
    "br",
    "div",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "ul",
    "ol",
    "li",
    "table",
    "tr",
    "td",
    "th",
    "hr",
    "caption",
];

/// The attribute callback ammonia runs on every kept attribute.
type AttributeFilter = Box<dyn Fn(&str, &str, &str) -> Option<String> + Send + Sync>;

fn sanitizer(extra_filter: Option<AttributeFilter>) -> ammonia::Builder<'static> {
    let mut tag_attributes: HashMap<&'static str, HashSet<&'static str>> = HashMap::new();
    tag_attributes.insert("a", HashSet::from(["href"]));
    tag_attributes.insert(
        "img",
        HashSet::from(["src", "alt", "data-src", "width", "height"]),
    );
    tag_attributes.insert("td", HashSet::from(["colspan", "rowspan"]));
    tag_attributes.insert("th", HashSet::from(["colspan", "rowspan"]));
    tag_attributes.insert("ol", HashSet::from(["start"]));

    let mut builder = ammonia::Builder::empty();
    builder
        .tags(ALLOWED_TAGS.iter().copied().collect())
        .clean_content_tags(DROPPED_WITH_CONTENT.iter().copied().collect())
        .tag_attributes(tag_attributes)
        .generic_attributes(HashSet::from(["style"]))
        .filter_style_properties(ALLOWED_STYLE_PROPERTIES.iter().copied().collect())
        .url_schemes(HashSet::from(["http", "https"]))
        // Relative URLs mean nothing inside mp.weixin.qq.com.
        .url_relative(ammonia::UrlRelative::Deny)
        .link_rel(None)
        .strip_comments(true)
        .attribute_filter(move |element, attribute, value| {
            // ammonia checks schemes of `src`/`href` itself, but `data-src` (WeChat's
            // lazy-load image source) is a plain attribute to it.
            if element == "img" && attribute == "data-src" && !crate::limits::is_http_url(value) {
                return None;
            }
            match &extra_filter {
                Some(filter) => filter(element, attribute, value).map(Cow::Owned),
                None => Some(Cow::Borrowed(value)),
            }
        });
    builder
}

/// Reduces `html` to the tags, attributes and inline styles WeChat's editor keeps: no
/// scripts, frames, forms, objects, event attributes, or non-http(s) URLs.
pub fn sanitize(html: &str) -> String {
    sanitizer(None).clean(html).to_string()
}

fn is_image_source(element: &str, attribute: &str) -> bool {
    element == "img" && (attribute == "src" || attribute == "data-src")
}

/// The distinct image URLs (`src` and `data-src`) of the images that survive sanitising,
/// in document order. The publish step uploads these and then calls [`rewrite_image_urls`].
pub fn image_urls(html: &str) -> Vec<String> {
    let found: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&found);
    let collect: AttributeFilter = Box::new(move |element, attribute, value| {
        if is_image_source(element, attribute)
            && let Ok(mut urls) = sink.lock()
            && !urls.iter().any(|url| url == value)
        {
            urls.push(value.to_owned());
        }
        Some(value.to_owned())
    });
    // Only the callback's side effect is wanted here.
    let _sanitised = sanitizer(Some(collect)).clean(html);
    found.lock().map(|urls| urls.clone()).unwrap_or_default()
}

/// Sanitises `html` and replaces image URLs (`src` and `data-src`) found in `mapping`; other
/// URLs are left as they are. Keys are URLs as [`image_urls`] lists them.
pub fn rewrite_image_urls(html: &str, mapping: &HashMap<String, String>) -> String {
    let mapping = mapping.clone();
    let rewrite: AttributeFilter = Box::new(move |element, attribute, value| {
        if is_image_source(element, attribute)
            && let Some(new_url) = mapping.get(value)
        {
            return Some(new_url.clone());
        }
        Some(value.to_owned())
    });
    sanitizer(Some(rewrite)).clean(html).to_string()
}

/// One visible character of an HTML text and the span of the source it came from, in
/// character offsets into the HTML (end exclusive). An entity such as `&amp;` is one
/// character spanning five; a line break inserted for a block tag has an empty span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourcedChar {
    /// The character as it renders.
    pub ch: char,
    /// First source character.
    pub start: usize,
    /// One past the last source character.
    pub end: usize,
}

/// The text of `html` as it renders, character by character, with source positions. Tags
/// and comments are skipped, the content of script-like tags dropped, common entities
/// decoded, and a `'\n'` inserted at block tags so words in different paragraphs do not run
/// together.
pub fn visible_chars(html: &str) -> Vec<SourcedChar> {
    let chars: Vec<char> = html.chars().collect();
    let mut out = Vec::with_capacity(chars.len());
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '<' if starts_markup(&chars, i) => {
                let tag = read_tag(&chars, i);
                if tag.is_block {
                    out.push(SourcedChar {
                        ch: '\n',
                        start: i,
                        end: i,
                    });
                }
                i = match &tag.raw_text_name {
                    Some(name) => skip_past_closing_tag(&chars, tag.end, name),
                    None => tag.end,
                };
            }
            '&' => {
                let (ch, len) = decode_entity(&chars, i).unwrap_or(('&', 1));
                out.push(SourcedChar {
                    ch,
                    start: i,
                    end: i + len,
                });
                i += len;
            }
            ch => {
                out.push(SourcedChar {
                    ch,
                    start: i,
                    end: i + 1,
                });
                i += 1;
            }
        }
    }
    out
}

/// The rendered text of `html` (see [`visible_chars`]).
pub fn visible_text(html: &str) -> String {
    visible_chars(html).iter().map(|c| c.ch).collect()
}

/// How many characters of `html` render, not counting whitespace (WeChat's word count).
pub fn visible_char_count(html: &str) -> usize {
    visible_chars(html)
        .iter()
        .filter(|c| !c.ch.is_whitespace())
        .count()
}

/// `<` starts markup only when a tag name, `/`, `!` or `?` follows, as in HTML parsing.
fn starts_markup(chars: &[char], i: usize) -> bool {
    chars
        .get(i + 1)
        .is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
}

struct Tag {
    /// Index just past the tag.
    end: usize,
    is_block: bool,
    /// For an opening script-like tag, its name: the content up to its closing tag is skipped.
    raw_text_name: Option<String>,
}

fn read_tag(chars: &[char], start: usize) -> Tag {
    if chars[start..].starts_with(&['<', '!', '-', '-']) {
        let end = find_sequence(chars, start + 4, &['-', '-', '>']).map_or(chars.len(), |p| p + 3);
        return Tag {
            end,
            is_block: false,
            raw_text_name: None,
        };
    }
    let closing = chars.get(start + 1) == Some(&'/');
    let name_start = start + 1 + usize::from(closing);
    let name: String = chars[name_start.min(chars.len())..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    // Find '>' outside quoted attribute values.
    let mut quote = None;
    let mut end = chars.len();
    for (offset, &c) in chars[start + 1..].iter().enumerate() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, '>') => {
                end = start + 1 + offset + 1;
                break;
            }
            _ => {}
        }
    }
    let raw_text_name =
        (!closing && DROPPED_WITH_CONTENT.contains(&name.as_str())).then_some(name.clone());
    Tag {
        end,
        is_block: BLOCK_TAGS.contains(&name.as_str()),
        raw_text_name,
    }
}

fn find_sequence(chars: &[char], from: usize, needle: &[char]) -> Option<usize> {
    (from..chars.len()).find(|&p| chars[p..].starts_with(needle))
}

fn skip_past_closing_tag(chars: &[char], from: usize, name: &str) -> usize {
    let needle: Vec<char> = format!("</{name}").chars().collect();
    let mut p = from;
    while p < chars.len() {
        let candidate = &chars[p..];
        if candidate.len() >= needle.len()
            && candidate[..needle.len()]
                .iter()
                .zip(&needle)
                .all(|(a, b)| a.to_ascii_lowercase() == *b)
        {
            return chars[p..]
                .iter()
                .position(|&c| c == '>')
                .map_or(chars.len(), |q| p + q + 1);
        }
        p += 1;
    }
    chars.len()
}

/// Decodes the entity at `chars[i]` (`&name;`, `&#123;`, `&#x7B;`) into its character and
/// the entity's length, or `None` when it is not one we know.
fn decode_entity(chars: &[char], i: usize) -> Option<(char, usize)> {
    const LONGEST: usize = 10;
    let semicolon = chars[i + 1..]
        .iter()
        .take(LONGEST)
        .position(|&c| c == ';')?
        + i
        + 1;
    let body: String = chars[i + 1..semicolon].iter().collect();
    let ch = if let Some(number) = body.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        char::from_u32(code)?
    } else {
        match body.as_str() {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "nbsp" => '\u{a0}',
            "ldquo" => '“',
            "rdquo" => '”',
            "lsquo" => '‘',
            "rsquo" => '’',
            "mdash" => '—',
            "ndash" => '–',
            "hellip" => '…',
            "middot" => '·',
            "times" => '×',
            "yen" => '¥',
            "copy" => '©',
            "reg" => '®',
            _ => return None,
        }
    };
    Some((ch, semicolon + 1 - i))
}

/// Escapes text for use inside HTML elements and quoted attributes.
pub fn escape_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// Whether `text` already contains HTML markup (as opposed to plain or Markdown-ish text).
pub fn looks_like_html(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    [
        "<p", "<br", "<h1", "<h2", "<h3", "<section", "<ul", "<ol", "<strong", "<span", "</",
    ]
    .iter()
    .any(|tag| lower.contains(tag))
}

/// Turns plain model text into HTML: blank lines separate paragraphs, single newlines become
/// `<br>`, and the bits of Markdown small models write anyway are honoured (`#` headings,
/// `-`/`*`/`•` bullet lists, `**bold**`). Everything is escaped.
pub fn plain_text_to_html(text: &str) -> String {
    let mut html = String::new();
    let mut paragraph: Vec<String> = Vec::new();
    let mut list: Vec<String> = Vec::new();
    let flush_paragraph = |html: &mut String, paragraph: &mut Vec<String>| {
        if !paragraph.is_empty() {
            html.push_str("<p>");
            html.push_str(&paragraph.join("<br>"));
            html.push_str("</p>");
            paragraph.clear();
        }
    };
    let flush_list = |html: &mut String, list: &mut Vec<String>| {
        if !list.is_empty() {
            html.push_str("<ul>");
            for item in list.iter() {
                html.push_str("<li>");
                html.push_str(item);
                html.push_str("</li>");
            }
            html.push_str("</ul>");
            list.clear();
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            flush_paragraph(&mut html, &mut paragraph);
            flush_list(&mut html, &mut list);
        } else if let Some(heading) = markdown_heading(line) {
            flush_paragraph(&mut html, &mut paragraph);
            flush_list(&mut html, &mut list);
            html.push_str("<h2>");
            html.push_str(&inline_markup(heading));
            html.push_str("</h2>");
        } else if let Some(item) = ["- ", "* ", "• "].iter().find_map(|m| line.strip_prefix(m)) {
            flush_paragraph(&mut html, &mut paragraph);
            list.push(inline_markup(item.trim()));
        } else {
            flush_list(&mut html, &mut list);
            paragraph.push(inline_markup(line));
        }
    }
    flush_paragraph(&mut html, &mut paragraph);
    flush_list(&mut html, &mut list);
    html
}

fn markdown_heading(line: &str) -> Option<&str> {
    let rest = line.trim_start_matches('#');
    let level = line.len() - rest.len();
    (1..=6)
        .contains(&level)
        .then(|| rest.strip_prefix(' '))
        .flatten()
        .map(str::trim)
}

/// Escapes a line and turns `**bold**` pairs into `<strong>`.
fn inline_markup(line: &str) -> String {
    let pieces: Vec<&str> = line.split("**").collect();
    // An odd number of pieces means the markers pair up.
    if pieces.len() < 3 || pieces.len().is_multiple_of(2) {
        return escape_text(line);
    }
    let mut out = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        if index % 2 == 1 {
            out.push_str("<strong>");
            out.push_str(&escape_text(piece));
            out.push_str("</strong>");
        } else {
            out.push_str(&escape_text(piece));
        }
    }
    out
}

/// Model output for a body, as safe HTML: sanitised if it is HTML, converted if it is not.
pub fn body_to_html(body: &str) -> String {
    if looks_like_html(body) {
        sanitize(body)
    } else {
        sanitize(&plain_text_to_html(body))
    }
}

/// `content_html` with the brand's signature appended as its own paragraph (nothing when the
/// signature is empty).
pub fn append_signature(content_html: &str, signature: &str) -> String {
    let signature = signature.trim();
    if signature.is_empty() {
        return content_html.to_owned();
    }
    let lines: Vec<String> = signature.lines().map(escape_text).collect();
    format!("{content_html}<p>{}</p>", lines.join("<br>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_handlers_frames_and_javascript_links_are_removed() {
        let dirty = concat!(
            "<p onclick=\"steal()\">你好<script>alert(1)</script></p>",
            "<iframe src=\"https://evil.example/\">frame text</iframe>",
            "<a href=\"javascript:alert(1)\">点我</a>",
            "<a href=\"https://example.com/x\" onmouseover=\"x()\">链接</a>",
            "<img src=\"x\" onerror=\"alert(1)\">",
            "<form action=\"/post\"><input name=\"q\"><button>提交</button></form>",
            "<object data=\"movie.swf\">obj</object>",
            "<div style=\"background-image:url(javascript:alert(1));color:red\">块</div>",
        );
        let clean = sanitize(dirty);
        for banned in [
            "script",
            "alert",
            "onclick",
            "onmouseover",
            "onerror",
            "iframe",
            "frame text",
            "javascript",
            "form",
            "input",
            "button",
            "提交",
            "object",
            "obj",
            "url(",
        ] {
            assert!(!clean.contains(banned), "{banned:?} survived in {clean}");
        }
        assert_eq!(
            clean,
            concat!(
                "<p>你好</p>",
                "<a>点我</a>",
                "<a href=\"https://example.com/x\">链接</a>",
                "<img>",
                "块"
            )
        );
    }

    #[test]
    fn allowed_formatting_and_images_are_kept() {
        let html = concat!(
            "<section style=\"text-align:center;position:fixed\">",
            "<h2>标题</h2>",
            "<p style=\"color:#333;font-size:15px;line-height:1.75;display:none\">",
            "<strong>粗</strong><em>斜</em><u>下划线</u><span style=\"color:red\">红</span><br>",
            "</p>",
            "<blockquote>引用</blockquote>",
            "<ul><li>一</li></ul><ol><li>二</li></ol>",
            "<img src=\"https://mmbiz.qpic.cn/a.jpg\" data-src=\"https://mmbiz.qpic.cn/a.jpg\" alt=\"图\">",
            "<table><tbody><tr><td colspan=\"2\">格</td></tr></tbody></table>",
            "</section>",
        );
        assert_eq!(
            sanitize(html),
            concat!(
                "<section style=\"text-align:center\">",
                "<h2>标题</h2>",
                "<p style=\"color:#333;font-size:15px;line-height:1.75\">",
                "<strong>粗</strong><em>斜</em><u>下划线</u><span style=\"color:red\">红</span><br>",
                "</p>",
                "<blockquote>引用</blockquote>",
                "<ul><li>一</li></ul><ol><li>二</li></ol>",
                "<img src=\"https://mmbiz.qpic.cn/a.jpg\" data-src=\"https://mmbiz.qpic.cn/a.jpg\" alt=\"图\">",
                "<table><tbody><tr><td colspan=\"2\">格</td></tr></tbody></table>",
                "</section>",
            )
        );
    }

    #[test]
    fn non_http_image_sources_are_dropped() {
        let clean = sanitize(
            "<img src=\"data:image/png;base64,AAAA\" data-src=\"javascript:x\" alt=\"a\">",
        );
        assert_eq!(clean, "<img alt=\"a\">");
    }

    #[test]
    fn image_urls_are_listed_once_in_order() {
        let html = concat!(
            "<p><img src=\"https://a.example/1.png\"></p>",
            "<img data-src=\"https://a.example/2.png\" src=\"https://a.example/1.png\">",
            "<img src=\"javascript:alert(1)\">",
            "<a href=\"https://a.example/not-an-image.png\">x</a>",
        );
        assert_eq!(
            image_urls(html),
            vec!["https://a.example/1.png", "https://a.example/2.png"]
        );
    }

    #[test]
    fn image_urls_are_rewritten_by_the_mapping() {
        let html = "<p><img src=\"https://a.example/1.png\" data-src=\"https://a.example/1.png\"><img src=\"https://a.example/2.png\"></p>";
        let mapping = HashMap::from([(
            "https://a.example/1.png".to_owned(),
            "https://mmbiz.qpic.cn/mmbiz_png/abc/0".to_owned(),
        )]);
        assert_eq!(
            rewrite_image_urls(html, &mapping),
            "<p><img src=\"https://mmbiz.qpic.cn/mmbiz_png/abc/0\" data-src=\"https://mmbiz.qpic.cn/mmbiz_png/abc/0\"><img src=\"https://a.example/2.png\"></p>"
        );
    }

    #[test]
    fn visible_text_maps_back_to_source_positions() {
        let html = "<p>A&amp;B</p><!-- 注释 --><script>var x = '最';</script><p>最<b>佳</b></p>";
        let chars = visible_chars(html);
        let text: String = chars.iter().map(|c| c.ch).collect();
        assert_eq!(text, "\nA&B\n\n最佳\n");
        let amp = chars.iter().find(|c| c.ch == '&').copied();
        assert_eq!(
            amp,
            Some(SourcedChar {
                ch: '&',
                start: 4,
                end: 9
            })
        );
        let source: Vec<char> = html.chars().collect();
        let best = chars.iter().find(|c| c.ch == '佳').map(|c| source[c.start]);
        assert_eq!(best, Some('佳'));
        assert_eq!(visible_char_count(html), 5);
    }

    #[test]
    fn a_lone_less_than_sign_is_text() {
        assert_eq!(
            visible_text("1 < 2 &unknown; &#x6700;"),
            "1 < 2 &unknown; 最"
        );
    }

    #[test]
    fn plain_text_and_markdown_become_safe_html() {
        let text = "# 春季上新\n\n第一段第一行\n第二行 <b>\n\n- **新品**一\n- 新品二\n\n结尾";
        assert_eq!(
            body_to_html(text),
            "<h2>春季上新</h2><p>第一段第一行<br>第二行 &lt;b&gt;</p><ul><li><strong>新品</strong>一</li><li>新品二</li></ul><p>结尾</p>"
        );
    }

    #[test]
    fn signature_is_escaped_and_appended() {
        assert_eq!(
            append_signature("<p>正文</p>", "小店 <官方>\n欢迎关注"),
            "<p>正文</p><p>小店 &lt;官方&gt;<br>欢迎关注</p>"
        );
        assert_eq!(append_signature("<p>正文</p>", "  "), "<p>正文</p>");
    }
}
