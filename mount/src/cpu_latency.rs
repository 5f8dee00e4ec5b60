//! While the mount is busy, keep idle CPUs from sleeping.
//!
//! Every kernel request is two wake-ups: the kernel wakes a mount thread, the mount's reply wakes
//! the waiting process. When the CPU that should run the woken thread sits in a halt, waking it
//! is the slowest part of the round trip: on a virtual machine a halted vCPU is descheduled by
//! the host, and waking it costs far more than our handler. Measured on the 2-vCPU development
//! VM: `cat` of 19,575 files in a mount took 2.0–4.1 s with halting CPUs and 0.77–0.85 s with
//! this hint (0.4 s natively).
//!
//! The kernel's PM QoS interface takes the hint: while `/dev/cpu_dma_latency` is held open with
//! a limit of 0 µs, idle CPUs poll instead of halting. The mount holds it from its first request
//! of a burst until [`IDLE`] passes without one, then closes it, so an idle mount costs nothing.
//! The device needs root; elsewhere (or with `--cpu-latency off`) this does nothing.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// The kernel's CPU latency request device.
pub const DEVICE: &str = "/dev/cpu_dma_latency";

/// How long the hint outlives the last request.
pub const IDLE: Duration = Duration::from_millis(200);

/// Cheap to clone; every clone is the same hint.
#[derive(Clone)]
pub struct CpuLatency {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    start: Instant,
    /// Milliseconds since `start` of the last request.
    last: AtomicU64,
    /// Whether the request is held (or being taken).
    held: AtomicBool,
    wake: Mutex<bool>,
    cond: Condvar,
    idle: Duration,
    device: PathBuf,
}

impl CpuLatency {
    /// A hint that never does anything.
    pub fn off() -> CpuLatency {
        CpuLatency { inner: None }
    }

    /// Hold a 0 µs limit on `device` during bursts of requests, released `idle` after the last.
    /// Gives up for good, quietly, when the device cannot be opened (not root, no such device).
    pub fn start(device: PathBuf, idle: Duration) -> CpuLatency {
        let inner = Arc::new(Inner {
            start: Instant::now(),
            last: AtomicU64::new(0),
            held: AtomicBool::new(false),
            wake: Mutex::new(false),
            cond: Condvar::new(),
            idle,
            device,
        });
        let worker = inner.clone();
        let spawned = std::thread::Builder::new()
            .name("aether-cpu-latency".into())
            .spawn(move || worker.run());
        match spawned {
            Ok(_) => CpuLatency { inner: Some(inner) },
            Err(_) => CpuLatency::off(),
        }
    }

    /// A request arrived: make sure the hint is held.
    pub fn busy(&self) {
        let Some(inner) = &self.inner else { return };
        inner.last.store(inner.now_ms(), Ordering::Relaxed);
        if !inner.held.load(Ordering::Relaxed) && !inner.held.swap(true, Ordering::AcqRel) {
            *inner.wake.lock() = true;
            inner.cond.notify_one();
        }
    }

    /// Whether the limit is held right now.
    #[cfg(test)]
    pub fn held(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.held.load(Ordering::SeqCst))
    }
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn run(&self) {
        loop {
            {
                let mut wake = self.wake.lock();
                while !*wake {
                    self.cond.wait(&mut wake);
                }
                *wake = false;
            }
            let hint = match open_hint(&self.device) {
                Ok(f) => f,
                Err(e) => {
                    tracing::debug!(device = %self.device.display(), error = %e, "no CPU latency hint");
                    // `held` stays set: `busy` never wakes this thread again.
                    return;
                }
            };
            let idle_ms = self.idle.as_millis() as u64;
            loop {
                std::thread::sleep(self.idle / 4);
                if self.now_ms().saturating_sub(self.last.load(Ordering::Relaxed)) >= idle_ms {
                    break;
                }
            }
            drop(hint);
            self.held.store(false, Ordering::Release);
            // A request that came between the last check and the store above found `held` set
            // and did not wake us: look once more.
            if self.now_ms().saturating_sub(self.last.load(Ordering::Relaxed)) < idle_ms {
                self.held.store(true, Ordering::Release);
                *self.wake.lock() = true;
            }
        }
    }
}

/// The open device with a limit of 0 µs written (a native-endian 32-bit integer); the limit
/// holds until the file is closed.
pub fn open_hint(device: &std::path::Path) -> std::io::Result<File> {
    let mut f = File::options().write(true).open(device)?;
    f.write_all(&0i32.to_ne_bytes())?;
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eventually(what: &str, f: impl Fn() -> bool) {
        let start = Instant::now();
        while !f() {
            assert!(start.elapsed() < Duration::from_secs(5), "{what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn the_limit_is_held_during_a_burst_and_released_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("latency");
        std::fs::write(&device, b"").unwrap();
        let hint = CpuLatency::start(device.clone(), Duration::from_millis(100));
        assert!(!hint.held());
        for _ in 0..3 {
            hint.busy();
            eventually("the limit is written", || {
                std::fs::read(&device).unwrap() == 0i32.to_ne_bytes()
            });
            eventually("released once idle", || !hint.held());
            std::fs::write(&device, b"").unwrap();
        }
        // Requests keep coming, closer together than the idle time: the limit is taken once and
        // never dropped in between (taking it again would write it again).
        hint.busy();
        eventually("the limit is written", || {
            std::fs::read(&device).unwrap() == 0i32.to_ne_bytes()
        });
        std::fs::write(&device, b"").unwrap();
        for _ in 0..10 {
            std::thread::sleep(Duration::from_millis(30));
            hint.busy();
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(std::fs::read(&device).unwrap().is_empty(), "released during the burst");
        eventually("released after the burst", || !hint.held());
    }

    #[test]
    fn a_device_that_cannot_be_opened_turns_the_hint_off_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("missing");
        let hint = CpuLatency::start(device.clone(), Duration::from_millis(50));
        hint.busy();
        std::thread::sleep(Duration::from_millis(100));
        // The device appears later: the hint does not try again.
        std::fs::write(&device, b"").unwrap();
        hint.busy();
        std::thread::sleep(Duration::from_millis(100));
        assert!(std::fs::read(&device).unwrap().is_empty(), "tried the device again");
    }
}
