//! Small helpers shared by the side-by-side benchmarks (`cargo bench -p kopia-notify`).

use std::time::Duration;

/// A whole-number setting from the environment, e.g. `BENCH_ROUNDS`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of timing samples (the upper one of an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
