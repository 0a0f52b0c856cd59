//! Watching the running gate: the Prometheus metrics every part counts into, and the
//! `[admin] listen` HTTP endpoint that serves them with the health checks.

pub mod health;
pub mod http;
pub mod metrics;
