//! A process-wide stop request, set by Ctrl-C and checked between frames, so that work ends at
//! a clean point (no half-written file) instead of wherever the signal lands.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
