//! A process-wide stop request, set by Ctrl-C and checked between frames, so that work ends at
//! a clean point (no half-written file) instead of wherever the signal lands.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Marks a request to a service as in flight while it lives: such a request cannot be cut
/// short cleanly, so a stop waits for it (up to its time-out).
pub struct InFlight(());

impl InFlight {
    pub fn start() -> InFlight {
        IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
        InFlight(())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Whether a stop must wait on requests in flight.
pub fn waiting_on_requests() -> bool {
    IN_FLIGHT.load(Ordering::SeqCst) > 0
}

pub fn request() {
    STOP.store(true, Ordering::SeqCst);
}

pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
