//! Deterministic synthetic project snapshots with ground truth, mirroring the structure of
//! `shared/bench/gen_memories.py`: ~30% of memories in near-duplicate groups of 2-6 (pairwise
//! cosine ~0.93-0.99, paraphrased texts of one fact), ~1.5% in chained triples (A~B ~ B~C ~ 0.91,
//! A~C ~ 0.83), the rest unrelated but sharing per-topic directions (cosine 0.0-0.3) and vocabulary,
//! and ~10% stale memories (older than 90 days with reuse < 3).

pub mod in_memory;

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use uuid::Uuid;

use crate::domain::{Memory, MemoryType, ProjectSnapshot};
use crate::engine::similarity::ann::gaussian;

/// `now` of the generated data: ages are relative to it.
pub fn anchor() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 0, 0, 0).single().unwrap_or_default()
}

#[derive(Debug, Clone)]
pub struct Truth {
    pub groups: Vec<Vec<Uuid>>,
    pub chains: Vec<Vec<Uuid>>,
    pub stale: Vec<Uuid>,
}

const TYPES: [(MemoryType, f64); 6] = [
    (MemoryType::ErrorFix, 0.30),
    (MemoryType::Discovery, 0.15),
    (MemoryType::Decision, 0.15),
    (MemoryType::Learning, 0.15),
    (MemoryType::Warning, 0.15),
    (MemoryType::CodebaseKnowledge, 0.10),
];
const GROUP_SIZES: [(usize, f64); 5] = [(2, 0.40), (3, 0.25), (4, 0.15), (5, 0.12), (6, 0.08)];
const LIBS: [&str; 12] = [
    "sqlalchemy",
    "psycopg",
    "celery",
    "fastapi",
    "pydantic",
    "redis-py",
    "httpx",
    "pytest",
    "tokio",
    "serde",
    "axum",
    "sqlx",
];
const MODULES: [&str; 12] = [
    "users", "billing", "auth", "orders", "sessions", "search", "ingest", "webhooks", "payments", "reports",
    "memories", "uploads",
];
const PROBLEMS: [(&str, &str, &str); 8] = [
    (
        "QueuePool limit of size 5 overflow 10 reached",
        "background tasks held connections during HTTP calls",
        "release the session before the outbound call",
    ),
    (
        "server closed the connection unexpectedly",
        "idle connections were killed by the load balancer",
        "enable pool_pre_ping and set pool_recycle=280",
    ),
    (
        "Task got Future attached to a different loop",
        "the engine was created at import time",
        "create the engine inside an async fixture",
    ),
    (
        "missing field `created_at` at line 1 column 212",
        "older events predate the field",
        "mark the field #[serde(default)]",
    ),
    (
        "ReadTimeout while calling the payments provider",
        "the default 5 s timeout was too short",
        "set an explicit Timeout(30.0, connect=5.0)",
    ),
    (
        "Input should be a valid datetime",
        "timestamps arrived without a timezone",
        "parse them as AwareDatetime and normalize to UTC",
    ),
    (
        "Cannot start a runtime from within a runtime",
        "block_on was called inside an async handler",
        "await the future directly",
    ),
    ("relation \"jobs\" does not exist", "the tests ran before the migrations", "run sqlx::migrate! in the test setup"),
];
const TEMPLATES: [&str; 3] = [
    "Fixed `{error}` in {path} (line {line}). Root cause: {cause}. Fix: {fix}.",
    "{lib} kept failing with {error}. The cause was that {cause}. I fixed it in {path} around line {line}: {fix}.",
    "Resolved the {lib} error \"{error}\" raised at {path}:{line}. It happened because {cause}. Solution: {fix}.",
];
const EXTRA: [&str; 4] = [
    "Verified with `pytest tests/unit/test_{module}.py -q`.",
    "It took about {mins} minutes to track down.",
    "Added a regression test in tests/unit/test_{module}.py.",
    "Confirmed on CI run #{run}.",
];

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

fn weighted<T: Copy>(rng: &mut ChaCha8Rng, items: &[(T, f64)]) -> T {
    let mut x: f64 = rng.random::<f64>();
    for &(item, w) in items {
        if x < w {
            return item;
        }
        x -= w;
    }
    items[items.len() - 1].0
}

fn unit(v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
    v.into_iter().map(|x| x / norm).collect()
}

fn random_unit(rng: &mut ChaCha8Rng, dim: usize) -> Vec<f32> {
    unit((0..dim).map(|_| gaussian(rng)).collect())
}

fn orthonormal(rng: &mut ChaCha8Rng, against: &[&[f32]], dim: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dim).map(|_| gaussian(rng)).collect();
    for b in against {
        let d: f32 = v.iter().zip(b.iter()).map(|(x, y)| x * y).sum();
        for (x, y) in v.iter_mut().zip(b.iter()) {
            *x -= d * y;
        }
    }
    unit(v)
}

fn mix(a: f32, x: &[f32], y: &[f32]) -> Vec<f32> {
    let b = (1.0 - a * a).max(0.0).sqrt();
    unit(x.iter().zip(y).map(|(p, q)| a * p + b * q).collect())
}

struct Fact {
    memory_type: MemoryType,
    lib: &'static str,
    module: &'static str,
    problem: (&'static str, &'static str, &'static str),
    path: String,
    line: u32,
}

fn render(rng: &mut ChaCha8Rng, fact: &Fact) -> (String, Option<String>, Option<String>, Option<String>) {
    let (error, cause, fix) = fact.problem;
    let fill = |t: &str, rng: &mut ChaCha8Rng| {
        t.replace("{error}", error)
            .replace("{cause}", cause)
            .replace("{fix}", fix)
            .replace("{lib}", fact.lib)
            .replace("{path}", &fact.path)
            .replace("{line}", &fact.line.to_string())
            .replace("{module}", fact.module)
            .replace("{mins}", &rng.random_range(5..180).to_string())
            .replace("{run}", &rng.random_range(1_000..99_999).to_string())
    };
    let template = *pick(rng, &TEMPLATES);
    let mut text = fill(template, rng);
    if rng.random::<f64>() < 0.6 {
        let extra = *pick(rng, &EXTRA);
        text.push(' ');
        text.push_str(&fill(extra, rng));
    }
    let kind = fact.memory_type.as_str();
    let goal = Some(format!("Handle the {} {kind} in {}", fact.lib, fact.path));
    let result = Some(format!("{}; the error no longer occurs.", fix[..1].to_uppercase() + &fix[1..]));
    let feedback = Some(format!("pytest: {} passed, 0 failed", rng.random_range(3..400)));
    (text, goal, result, feedback)
}

/// A snapshot of `n` memories with `dim`-dimensional unit embeddings, and its ground truth.
pub fn generate(n: usize, dim: usize, seed: u64) -> (ProjectSnapshot, Truth) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let now = anchor();
    let topics: Vec<Vec<f32>> = (0..LIBS.len()).map(|_| random_unit(&mut rng, dim)).collect();
    let n_chains = (n as f64 * 0.015 / 3.0).round() as usize;
    let mut grouped_target = ((n as f64 * 0.30).round() as usize).saturating_sub(3 * n_chains);
    let mut units: Vec<(&str, usize)> = Vec::new();
    while grouped_target >= 2 {
        let k = weighted(&mut rng, &GROUP_SIZES).min(grouped_target);
        units.push(("group", k));
        grouped_target -= k;
    }
    units.extend(std::iter::repeat_n(("chain", 3), n_chains));
    let used: usize = units.iter().map(|u| u.1).sum();
    units.extend(std::iter::repeat_n(("single", 1), n.saturating_sub(used)));

    let mut memories = Vec::with_capacity(n);
    let mut truth = Truth { groups: Vec::new(), chains: Vec::new(), stale: Vec::new() };
    for (kind, k) in units {
        let memory_type = weighted(&mut rng, &TYPES);
        let lib_index = rng.random_range(0..LIBS.len());
        let module = *pick(&mut rng, &MODULES);
        let fact = Fact {
            memory_type,
            lib: LIBS[lib_index],
            module,
            problem: *pick(&mut rng, &PROBLEMS),
            path: format!("backend/app/{}/{module}.py", pick(&mut rng, &["api", "services", "db", "workers"])),
            line: rng.random_range(12..1200),
        };
        let w: f32 = rng.random_range(0.0..0.3);
        let noise = random_unit(&mut rng, dim);
        let center = mix(w.sqrt(), &topics[lib_index], &noise);
        let vectors: Vec<Vec<f32>> = match kind {
            "single" => vec![center],
            "group" => (0..k)
                .map(|_| {
                    let c: f32 = rng.random_range(0.965..0.995);
                    let u = orthonormal(&mut rng, &[&center], dim);
                    mix(c, &center, &u)
                })
                .collect(),
            _ => {
                let u = orthonormal(&mut rng, &[&center], dim);
                let v = orthonormal(&mut rng, &[&center, &u], dim);
                let (a, c): (f32, f32) = (rng.random_range(0.905..0.915), rng.random_range(0.905..0.915));
                vec![mix(a, &center, &u), center.clone(), mix(c, &center, &v)]
            }
        };
        let mut ids = Vec::new();
        for vector in vectors {
            let (text, goal, result, feedback) = render(&mut rng, &fact);
            let old = rng.random::<f64>() < 0.6;
            let age_days: f64 = if old { rng.random_range(91.0..200.0) } else { rng.random_range(0.0..70.0) };
            let low = rng.random::<f64>() < if old { 0.24 } else { 0.3 };
            let reused_count = if low { rng.random_range(0..3) } else { rng.random_range(3..40) };
            let id = Uuid::from_u128(rng.random::<u128>() & !(0xF << 76) | (0x4 << 76));
            if old && reused_count < 3 {
                truth.stale.push(id);
            }
            ids.push(id);
            let mut tags = vec![fact.lib.to_owned(), memory_type.as_str().to_owned()];
            if rng.random::<f64>() < 0.5 {
                tags.push(pick(&mut rng, &["performance", "reliability", "async", "tech-debt"]).to_string());
            }
            let mut files = vec![fact.path.clone()];
            if rng.random::<f64>() < 0.3 {
                files.push(format!("tests/unit/test_{module}.py"));
            }
            memories.push(Memory {
                id,
                version: 1,
                memory_type,
                task_id: Some(format!("task-{}", rng.random_range(1..1_000_000))),
                execution_summary: text,
                goal,
                result,
                feedback,
                tags,
                files,
                embedding: Some(vector.into()),
                success: Some(rng.random::<f64>() < 0.85),
                reused_count,
                last_reused_at: None,
                learned_at: now - Duration::seconds((age_days * 86_400.0) as i64),
                source_type: None,
                consolidated_from: Vec::new(),
                synthesized_from: Vec::new(),
                task_ids: Vec::new(),
            });
        }
        match kind {
            "group" => truth.groups.push(ids),
            "chain" => truth.chains.push(ids),
            _ => {}
        }
    }
    // Rows of one unit are scattered, as in the Python generator.
    for i in (1..memories.len()).rev() {
        let j = rng.random_range(0..=i);
        memories.swap(i, j);
    }
    let snapshot = ProjectSnapshot::new(Uuid::from_u128(u128::from(seed)), Some(dim), memories);
    (snapshot, truth)
}

/// The synthetic project of `generate`, as memories to insert.
pub fn synthetic_memories(memories: usize, dim: usize, seed: u64) -> Vec<crate::domain::NewMemory> {
    let (snapshot, _) = generate(memories, dim, seed);
    snapshot.memories.into_iter().map(crate::domain::NewMemory::from).collect()
}
