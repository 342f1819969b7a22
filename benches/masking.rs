//! PII masking throughput (placeholder while the benchmark is written).

fn main() {}
