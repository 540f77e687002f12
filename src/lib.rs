//! scenedex: make a video archive searchable by text.
//!
//! The pipeline's stages are modules of their own: `decode` → `sample` → `dedup` → `caption` (so far),
//! and `cli` wires them into commands. ARCHITECTURE.md maps what lives where.

pub mod caption;
pub mod cli;
pub mod decode;
pub mod dedup;
pub mod embed;
pub mod sample;
pub mod segment;
pub mod stop;
pub mod store;
