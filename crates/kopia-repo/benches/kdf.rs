//! Times Kopia's password KDF, `scrypt-65536-8-1`, as our implementation runs it against the
//! RustCrypto `scrypt` crate: `cargo bench -p kopia-repo --bench kdf`. Prints medians; no harness.

use std::time::{Duration, Instant};

use kopia_repo::crypto::scrypt::{scrypt, ScryptParams};

const PASSWORD: &[u8] = b"foobarbazfoobarbaz";
const ROUNDS: usize = 15;

fn median(mut run: impl FnMut() -> [u8; 32]) -> (Duration, [u8; 32]) {
    let mut key = run(); // warm-up
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            key = run();
            start.elapsed()
        })
        .collect();
    times.sort();
    (times[ROUNDS / 2], key)
}

fn main() {
    let salt: Vec<u8> = (0u8..32).collect();
    let ours = ScryptParams::new(16, 8, 1).expect("valid parameters");
    let reference = ::scrypt::Params::new(16, 8, 1, 32).expect("valid parameters");
    // Interleave the two so that machine load affects both alike.
    let mut ours_times = Vec::new();
    let mut reference_times = Vec::new();
    for _ in 0..3 {
        let (t, ours_key) = median(|| {
            let mut key = [0u8; 32];
            scrypt(PASSWORD, &salt, &ours, &mut key).expect("valid output length");
            key
        });
        ours_times.push(t);
        let (t, reference_key) = median(|| {
            let mut key = [0u8; 32];
            ::scrypt::scrypt(PASSWORD, &salt, &reference, &mut key).expect("valid output length");
            key
        });
        reference_times.push(t);
        assert_eq!(ours_key, reference_key, "implementations disagree");
    }
    ours_times.sort();
    reference_times.sort();
    let (ours, reference) = (ours_times[1], reference_times[1]);
    println!("scrypt-65536-8-1, median of {ROUNDS} runs (median of 3 series):");
    println!("  kopia-repo scrypt: {:>8.1} ms", ours.as_secs_f64() * 1e3);
    println!(
        "  scrypt 0.11 crate: {:>8.1} ms",
        reference.as_secs_f64() * 1e3
    );
    println!(
        "  ratio:             {:>8.2}x",
        ours.as_secs_f64() / reference.as_secs_f64()
    );
}
