//! Throughput of the content rules on a long article, for docs/BENCHMARKS.md.
//!
//! `cargo run --release -p wxpilot-content --example bench_content`

use std::hint::black_box;
use std::time::{Duration, Instant};

use wxpilot_content::compliance::{ComplianceScanner, tenant_term};
use wxpilot_content::html;
use wxpilot_content::limits::{ArticleDraft, ContentField, Draft, validate_draft};
use wxpilot_content::parse::{ParseOptions, parse_output};
use wxpilot_content::prompt::ContentKind;

/// A styled article of about 15,000 visible characters with some absolute terms in it.
fn long_article() -> String {
    let paragraph = "<p style=\"color:#333;font-size:15px;line-height:1.75\">秋季新豆已经到店，\
                     我们选用云南保山的小粒咖啡，第一次到店的顾客可以免费试饮。这是本店最好的一款豆子，\
                     口感<strong>醇厚</strong>，回甘明显，欢迎周末来品尝。<img src=\"https://example.com/a.jpg\"></p>";
    paragraph.repeat(220)
}

fn time<T>(label: &str, rounds: u32, mut f: impl FnMut() -> T) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        black_box(f());
    }
    let each = start.elapsed() / rounds;
    println!("{label}: {each:?} each ({rounds} rounds)");
    each
}

fn main() {
    let body = long_article();
    let visible = html::visible_char_count(&body);
    println!(
        "article: {} bytes of HTML, {visible} visible characters",
        body.len()
    );
    let tenant: Vec<_> = (0..200)
        .map(|i| tenant_term(&format!("客户敏感词{i}"), None))
        .collect();
    time(
        "scanner build (built-in list + 200 tenant words)",
        200,
        || ComplianceScanner::new(&tenant),
    );
    let Ok(scanner) = ComplianceScanner::new(&tenant) else {
        eprintln!("the term list does not build");
        return;
    };
    let scan = time("compliance scan of the body", 200, || {
        scanner.scan_html(&body, 0, ContentField::Body).len()
    });
    println!(
        "  {:.1} M visible characters/s, {} hits",
        visible as f64 / scan.as_secs_f64() / 1e6,
        scanner.scan_html(&body, 0, ContentField::Body).len()
    );
    let clean = time("sanitise the body", 50, || html::sanitize(&body));
    println!(
        "  {:.1} MB/s of HTML",
        body.len() as f64 / clean.as_secs_f64() / 1e6
    );
    let draft = Draft {
        articles: vec![ArticleDraft {
            title: "秋季新豆上市".to_owned(),
            content_html: body.clone(),
            ..ArticleDraft::default()
        }],
    };
    time("validate_draft", 200, || validate_draft(&draft).is_ok());
    let answer = format!(
        "Sure!\n```json\n{{\"title\": \"秋季新豆上市\", \"digest\": \"产地直送\", \"body\": \"{}\",}}\n```",
        "第一段内容，欢迎品尝。\\n\\n".repeat(100)
    );
    time(
        "parse a fenced JSON answer (1,100 characters of body)",
        500,
        || parse_output(ContentKind::Article, &answer, ParseOptions::default()).is_ok(),
    );
}
