//! Just enough `multipart/form-data` reading for the upload endpoints: finds one part
//! by name and reports its file name, content type and size.

/// A part of a multipart body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The `filename` of its Content-Disposition (empty if none).
    pub file_name: String,
    /// Its Content-Type (empty if none).
    pub content_type: String,
    /// Its bytes.
    pub data: Vec<u8>,
}

/// The boundary of a `multipart/form-data; boundary=…` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_owned())
            .filter(|b| !b.is_empty())
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > haystack.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The quoted value of `key="…"` in a header line.
fn header_param(line: &str, key: &str) -> Option<String> {
    let pattern = format!("{key}=\"");
    let start = line
        .match_indices(&pattern)
        // `name="` must not match inside `filename="`.
        .find(|(i, _)| *i == 0 || !line.as_bytes()[i - 1].is_ascii_alphanumeric())
        .map(|(i, _)| i + pattern.len())?;
    let end = line[start..].find('"')?;
    Some(line[start..start + end].to_owned())
}

/// The part named `name` in `body`, if present and well-formed.
pub fn find_part(body: &[u8], boundary: &str, name: &str) -> Option<Part> {
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    let first = find(rest, delimiter.as_bytes())?;
    rest = &rest[first + delimiter.len()..];
    loop {
        // After a delimiter: "--" ends the body, otherwise CRLF and a part.
        if rest.starts_with(b"--") {
            return None;
        }
        rest = rest.strip_prefix(b"\r\n")?;
        let headers_end = find(rest, b"\r\n\r\n")?;
        let headers = String::from_utf8_lossy(&rest[..headers_end]).into_owned();
        let content = &rest[headers_end + 4..];
        let next = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let data = &content[..next];
        let mut part_name = None;
        let mut file_name = String::new();
        let mut content_type = String::new();
        for line in headers.split("\r\n") {
            let (key, value) = line.split_once(':').unwrap_or((line, ""));
            if key.trim().eq_ignore_ascii_case("content-disposition") {
                part_name = header_param(value, "name");
                file_name = header_param(value, "filename").unwrap_or_default();
            } else if key.trim().eq_ignore_ascii_case("content-type") {
                content_type = value.trim().to_owned();
            }
        }
        if part_name.as_deref() == Some(name) {
            return Some(Part {
                file_name,
                content_type,
                data: data.to_vec(),
            });
        }
        rest = &content[next + 2 + delimiter.len()..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_media_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nhello\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n\x00\x01\r\n--XyZ--\r\n";
        assert_eq!(
            boundary("multipart/form-data; boundary=XyZ").as_deref(),
            Some("XyZ")
        );
        let part = find_part(body, "XyZ", "media").unwrap();
        assert_eq!(part.file_name, "a.png");
        assert_eq!(part.content_type, "image/png");
        assert_eq!(part.data, b"\x89PNG\r\n\x00\x01");
        assert_eq!(find_part(body, "XyZ", "missing"), None);
        assert_eq!(find_part(b"garbage", "XyZ", "media"), None);
        assert_eq!(boundary("application/json"), None);
    }
}
