//! Timing of the knowledge-base path on a synthetic Chinese FAQ set:
//! `cargo run --release -p wxpilot-kb --example bench_kb [faqs] [queries]`.
//!
//! The questions are combinations of customer-service words, so the vocabulary and the
//! posting-list lengths resemble a real account's FAQ; the vectors are pseudo-random
//! unit vectors of the multilingual-e5-small size (384).

use std::time::{Duration, Instant};

use wxpilot_kb::decision::{DecisionPolicy, decide};
use wxpilot_kb::knowledge::{EntryContent, FaqEntry, HybridConfig, KnowledgeEntry, KnowledgeIndex};
use wxpilot_kb::reply::shape_reply;

const SUBJECTS: &[&str] = &[
    "订单",
    "退货",
    "退款",
    "发票",
    "积分",
    "会员",
    "优惠券",
    "快递",
    "运费",
    "地址",
    "门店",
    "商品",
    "尺码",
    "颜色",
    "库存",
    "预售",
    "赠品",
    "保修",
    "维修",
    "安装",
    "电池",
    "屏幕",
    "充电器",
    "账号",
    "密码",
    "手机号",
    "支付",
    "花呗",
    "信用卡",
    "分期",
    "价格",
    "活动",
    "直播",
    "小程序",
    "公众号",
    "客服",
    "投诉",
    "评价",
];
const ACTIONS: &[&str] = &[
    "怎么修改",
    "多久到账",
    "可以取消吗",
    "在哪里查看",
    "怎么申请",
    "为什么失败",
    "需要什么材料",
    "能不能延期",
    "有什么规定",
    "怎么使用",
    "过期了怎么办",
    "收费吗",
    "几天能处理好",
    "可以换吗",
    "怎么联系",
];
const DIM: usize = 384;

/// A small deterministic generator, so runs are comparable.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() as usize) % items.len()]
    }
    fn unit_vector(&mut self) -> Vec<f32> {
        let v: Vec<f32> = (0..DIM)
            .map(|_| (self.next() % 2000) as f32 / 1000.0 - 1.0)
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.into_iter().map(|x| x / norm).collect()
    }
}

fn question(rng: &mut Lcg) -> String {
    format!(
        "{}的{}{}",
        rng.pick(SUBJECTS),
        rng.pick(SUBJECTS),
        rng.pick(ACTIONS)
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut times: Vec<Duration>) {
    times.sort();
    let mean = times.iter().sum::<Duration>() / times.len() as u32;
    println!(
        "{name}: mean {:.3} ms, p50 {:.3} ms, p99 {:.3} ms over {} queries",
        mean.as_secs_f64() * 1e3,
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3,
        times.len()
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let faqs: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2000);
    let queries: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);

    let start = Instant::now();
    wxpilot_kb::warm_up();
    println!(
        "jieba dictionary load: {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let mut rng = Lcg(42);
    let entries: Vec<(KnowledgeEntry, Option<Vec<f32>>)> = (0..faqs)
        .map(|i| {
            let entry = KnowledgeEntry {
                id: format!("faq-{i}"),
                content: EntryContent::Faq(FaqEntry {
                    question: question(&mut rng),
                    answer: "请在订单页操作。".into(),
                    alternative_questions: vec![question(&mut rng)],
                }),
            };
            (entry, Some(rng.unit_vector()))
        })
        .collect();
    let start = Instant::now();
    let index = KnowledgeIndex::build(entries)?;
    println!(
        "build: {faqs} FAQs (2 questions each, {DIM}-d vectors) in {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );

    let start = Instant::now();
    let json = serde_json::to_vec(&index)?;
    let serialize = start.elapsed();
    let start = Instant::now();
    let back: KnowledgeIndex = serde_json::from_slice(&json)?;
    println!(
        "serde_json: {:.1} MiB, serialise {:.1} ms, deserialise {:.1} ms ({} entries)",
        json.len() as f64 / (1024.0 * 1024.0),
        serialize.as_secs_f64() * 1e3,
        start.elapsed().as_secs_f64() * 1e3,
        back.len()
    );

    let config = HybridConfig::default();
    let policy = DecisionPolicy::default();
    let texts: Vec<String> = (0..queries).map(|_| question(&mut rng)).collect();
    let vectors: Vec<Vec<f32>> = (0..queries).map(|_| rng.unit_vector()).collect();
    let mut bm25_times = Vec::with_capacity(queries);
    let mut hybrid_times = Vec::with_capacity(queries);
    for (text, vector) in texts.iter().zip(&vectors) {
        let start = Instant::now();
        let hits = index.search(text, None, 5, &config)?;
        bm25_times.push(start.elapsed());
        std::hint::black_box(&hits);
        let start = Instant::now();
        let hits = index.search(text, Some(vector), 5, &config)?;
        let decision = decide(&hits, &policy);
        hybrid_times.push(start.elapsed());
        std::hint::black_box(&decision);
    }
    report("search, BM25 only, top 5", bm25_times);
    report("search + decide, hybrid, top 5", hybrid_times);

    let long_reply = "退货请在签收后七天内提交申请，并保持商品完好。\\n".repeat(200);
    let start = Instant::now();
    let parts = shape_reply(&long_reply);
    println!(
        "shape_reply: {} bytes into {} messages in {:.3} ms",
        long_reply.len(),
        parts.len(),
        start.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
