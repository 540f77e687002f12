//! scenedex: make a video archive searchable by text.
//!
//! The pipeline's stages are modules of their own: `decode` → `sample` → `dedup` → `caption` →
//! `segment` → `embed` → `store` → `search`; `index` plans and runs an index update through
//! them, `backends` opens what settings ask for, and `cli` is one front end over all of it.
//! ARCHITECTURE.md maps what lives where.

pub mod backends;
pub mod caption;
pub mod cli;
pub mod clip;
pub mod decode;
pub mod dedup;
pub mod embed;
pub mod eval;
pub mod index;
mod private;
pub mod reembed;
pub mod runtime;
pub mod sample;
pub mod search;
pub mod segment;
pub mod serve;
pub mod speech;
pub mod stop;
pub mod store;
pub mod track;
mod weights;
