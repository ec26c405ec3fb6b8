//! Criterion benches of the steps every request of the worker loop takes: rendering the body
//! from a compiled template, recording the outcome into the worker's tally, and the open
//! model's scheduler tick. Run them with `cargo bench --bench hot_path`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use volley::engine::pacing::{OpenSchedule, Schedule, StopRule};
use volley::metrics::{Outcome, Tally};
use volley::scenario::OnSaturation;
use volley::template::{RenderContext, Template};

/// The ~200-byte JSON body that benches/compare.sh sends.
const BODY: &str = r#"{"id":"{{uuid}}","seq":{{seq}},"org_id":"22222222-2222-4222-8222-222222222222","phone":"+15551234567","customer":{"id":"c-000123","tier":"gold","segments":["retail","emea"]}}"#;

fn render(c: &mut Criterion) {
    let template = Template::compile(BODY, &BTreeMap::new(), None).expect("the body compiles");
    let mut rng = SmallRng::seed_from_u64(1);
    let mut group = c.benchmark_group("render");
    // The worker's way: render into a reused buffer and split the body off it.
    let mut buffer = BytesMut::new();
    let mut seq = 0u64;
    group.bench_function("body into reused BytesMut", |b| {
        b.iter(|| {
            seq += 1;
            let mut context = RenderContext {
                row: &[],
                seq,
                worker: 3,
                rng: &mut rng,
            };
            buffer.reserve(template.size_hint());
            template.render_into(&mut buffer, &mut context);
            buffer.split().freeze()
        });
    });
    // A fresh vector per body, for comparison.
    group.bench_function("body into new Vec", |b| {
        b.iter(|| {
            seq += 1;
            let mut context = RenderContext {
                row: &[],
                seq,
                worker: 3,
                rng: &mut rng,
            };
            let mut body = Vec::with_capacity(template.size_hint());
            template.render_into(&mut body, &mut context);
            bytes::Bytes::from(body)
        });
    });
    group.finish();
}

fn record(c: &mut Criterion) {
    let mut group = c.benchmark_group("record");
    let mut latency = 0u64;
    // Latencies spread over 100 us to ~13 ms, as against a server on loopback.
    let mut next_latency = move || {
        latency = (latency + 7_919) % 13_000;
        100 + latency
    };

    let mut closed = Tally::new_growing(false);
    group.bench_function("closed tally", |b| {
        b.iter(|| {
            let latency = next_latency();
            closed.record(Outcome::Ok, latency, latency);
        });
    });

    let mut open = Tally::new_growing(true);
    group.bench_function("open tally", |b| {
        b.iter(|| {
            let latency = next_latency();
            open.record(Outcome::Ok, latency + 50, latency);
        });
    });

    // The worker records under its slot's mutex, which only the once-a-second collection
    // contends for.
    let slot = Mutex::new(Tally::new_growing(false));
    group.bench_function("closed tally behind its mutex", |b| {
        b.iter(|| {
            let latency = next_latency();
            let mut tally = slot.lock().expect("tally lock");
            tally.request_bytes += 202;
            tally.record(Outcome::Ok, latency, latency);
        });
    });
    group.finish();
}

fn schedule(c: &mut Criterion) {
    let stop = StopRule {
        deadline: None,
        iterations: None,
        issued: AtomicU64::new(0),
        cancel: CancellationToken::new(),
    };
    let mut group = c.benchmark_group("open schedule");
    for (name, on_saturation) in [
        ("claim", OnSaturation::Queue),
        ("claim with drop", OnSaturation::Drop),
    ] {
        // Request 0 is due in an hour, so no claim is late and none is dropped.
        let schedule = OpenSchedule::new(
            Instant::now() + Duration::from_secs(3600),
            Schedule::Constant(50_000.0),
            on_saturation,
        );
        let mut dropped = 0;
        // The worker reads the clock once before claiming; the bench leaves that read out,
        // because tokio's test-util feature, on in bench builds, makes it slower.
        let now = Instant::now();
        group.bench_function(name, |b| {
            b.iter(|| schedule.claim(&stop, now, &mut dropped));
        });
    }
    group.finish();
}

criterion_group!(benches, render, record, schedule);
criterion_main!(benches);
