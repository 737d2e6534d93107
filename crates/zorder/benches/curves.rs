//! Encode throughput of the Morton and Hilbert curves in 2 and 4 dimensions,
//! over a fixed pseudo-random batch of points, at the full 32-bit resolution
//! and at 16 bits per coordinate (enough for 65,536 rank buckets per column,
//! more than OPTIMIZE needs). Hilbert's cost grows with `D * bits`; Morton's
//! barely does.
//!
//! Run with `cargo bench -p zorder`; CI only compiles it.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use zorder::{Curve, Grid};

/// Points per measured batch.
const BATCH: usize = 4096;

/// A deterministic batch of points (xorshift64, fixed seed).
fn points<const D: usize>() -> Vec<[u32; D]> {
    let mut state = 0x9E37_79B9_7F4A_7C15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // The high half of the state: the cast keeps 32 random bits.
        (state >> 32) as u32
    };
    (0..BATCH)
        .map(|_| std::array::from_fn(|_| next()))
        .collect()
}

fn encode<const D: usize>(c: &mut Criterion) {
    let mut group = c.benchmark_group(format!("encode_{D}d"));
    group.throughput(Throughput::Elements(BATCH as u64));
    let grids = [
        Grid::<D>::FULL,
        Grid::new(16).expect("16 bits fit for D <= 8"),
    ];
    for (grid, curve) in grids
        .into_iter()
        .flat_map(|g| [(g, Curve::Morton), (g, Curve::Hilbert)])
    {
        let points: Vec<[u32; D]> = points::<D>()
            .into_iter()
            .map(|point| point.map(|c| c >> (32 - grid.bits())))
            .collect();
        group.bench_function(format!("{curve}_{}bits", grid.bits()), |b| {
            b.iter(|| {
                points.iter().fold(0u128, |acc, &point| {
                    acc ^ curve.index(black_box(point), grid)
                })
            });
        });
    }
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = encode::<2>, encode::<4>
}
criterion_main!(benches);
