//! Sample image generator (placeholder).
