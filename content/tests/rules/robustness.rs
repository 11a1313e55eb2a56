//! Mangled input never panics and always gets an answer (a value or a typed error).

use wxpilot_content::compliance::ComplianceScanner;
use wxpilot_content::html;
use wxpilot_content::limits::ContentField;
use wxpilot_content::parse::{ParseOptions, parse_output};
use wxpilot_content::prompt::ContentKind;

/// A small deterministic generator, so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap_or(0) % n.max(1)
    }
}

const PIECES: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    "\"",
    "'",
    ",",
    ":",
    "：",
    "\\",
    "\\u12",
    "\n",
    "```json\n",
    "```",
    "TITLE:",
    "BODY:",
    "DIGEST：",
    "---",
    "<p>",
    "</p>",
    "<script>",
    "<!--",
    "&amp;",
    "&#x6700;",
    "&",
    "<",
    "最",
    "佳",
    "第一次",
    "ＮＯ．１",
    "１００％",
    "\u{200B}",
    "國家級",
    "title",
    "body",
    "True",
    "None",
    "//",
    "/*",
    "é",
    "😀",
    " ",
    "null",
    "12",
    "-",
    "İ",
];

fn mangled(rng: &mut Lcg) -> String {
    let len = rng.below(60);
    (0..len).map(|_| PIECES[rng.below(PIECES.len())]).collect()
}

#[test]
fn random_answers_never_panic() {
    let scanner = ComplianceScanner::new(&[]).expect("builds");
    let mut rng = Lcg(7);
    let kinds = [
        ContentKind::Article,
        ContentKind::Moments,
        ContentKind::MenuReply,
    ];
    let options = [
        ParseOptions::default(),
        ParseOptions {
            truncate_overlong: true,
            plain_text_fallback: true,
        },
    ];
    let mut parsed = 0;
    for round in 0..3_000 {
        let text = mangled(&mut rng);
        let kind = kinds[round % kinds.len()];
        if parse_output(kind, &text, options[round % 2]).is_ok() {
            parsed += 1;
        }
        let chars = text.chars().count();
        for hit in scanner.check_text(&text, ContentField::Text).hits {
            assert!(
                hit.start < hit.end && hit.end <= chars,
                "{hit:?} in {text:?}"
            );
        }
        let body_chars = text.chars().count();
        for hit in scanner.scan_html(&text, 0, ContentField::Body) {
            assert!(
                hit.start < hit.end && hit.end <= body_chars,
                "{hit:?} in {text:?}"
            );
        }
        let clean = html::sanitize(&text);
        assert!(!clean.to_ascii_lowercase().contains("<script"), "{clean}");
    }
    // The generator does produce parseable answers, so both paths are exercised.
    assert!(parsed > 100, "only {parsed} parsed");
}
