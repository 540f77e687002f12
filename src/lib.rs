//! scenedex: make a video archive searchable by text.
//!
//! The pipeline's stages are modules of their own: `decode` → `sample` → `dedup` → `caption` →
//! `segment` → `embed` → `store` → `search`; `index` runs one file through them, and `cli` wires
//! them into commands. ARCHITECTURE.md maps what lives where.

pub mod caption;
pub mod cli;
pub mod decode;
pub mod dedup;
pub mod embed;
pub mod index;
pub mod sample;
pub mod search;
pub mod segment;
pub mod stop;
pub mod store;
