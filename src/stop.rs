//! A process-wide stop request, set by Ctrl-C and checked between frames, so that work ends at
//! a clean point (no half-written file) instead of wherever the signal lands.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static BUILDING: AtomicUsize = AtomicUsize::new(0);

/// Counts a piece of work a stop has to wait for while it lives.
pub struct Busy(&'static AtomicUsize);

impl Busy {
    fn on(count: &'static AtomicUsize) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Marks a request to a service as in flight: such a request cannot be cut short cleanly, so
/// a stop waits for it (up to its time-out).
pub fn in_flight() -> Busy {
    Busy::on(&IN_FLIGHT)
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

/// Marks the store as building a search graph: the engine cannot be stopped part-way, so a
/// stop waits for it (up to a minute or so).
pub fn building() -> Busy {
    Busy::on(&BUILDING)
}

/// Whether a stop must wait for a search graph being built.
pub fn waiting_on_graph() -> bool {
    BUILDING.load(Ordering::SeqCst) > 0
}
