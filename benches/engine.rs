//! Criterion bench: planning a 1 000-memory x 1536-dimension synthetic project.

use consolidator::domain::Options;
use consolidator::engine::merge::embed::CentroidEmbedder;
use consolidator::engine::plan::{EngineConfig, plan};
use consolidator::engine::synthesis::ExtractiveSynthesizer;
use consolidator::synthetic::{anchor, generate};
use criterion::{Criterion, criterion_group, criterion_main};
use uuid::Uuid;

fn plan_1k_x_1536(c: &mut Criterion) {
    let (snapshot, _) = generate(1_000, 1_536, 42);
    let options = Options::default();
    let config = EngineConfig::default();
    c.bench_function("plan 1k x 1536", |b| {
        b.iter(|| {
            plan(&snapshot, &options, &config, Uuid::from_u128(1), anchor(), &ExtractiveSynthesizer, &CentroidEmbedder)
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = plan_1k_x_1536
}
criterion_main!(benches);
