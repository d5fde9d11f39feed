//! The driver with a fake host: every step of a delivery, natively, against the
//! real core. (The real runtime runs the same driver in tests/tests/worker.rs and
//! tests/tests/dedup.rs.)

mod dedup;
mod delivery;
mod fake;
