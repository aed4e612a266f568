//! Benchmarks for aiprod (see benches/README.md).
