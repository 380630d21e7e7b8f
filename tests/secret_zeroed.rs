//! A dropped `Secret` leaves no copy of the password in freed memory.
//!
//! This binary's allocator looks at every block before it is freed and notes when the block
//! still holds the canary text; a `Secret` holding the canary must never be noticed, while a
//! plain `String` holding it is (which shows the check can fail).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use kiln::secret::Secret;

/// Counts freed blocks that still contain `CANARY`, while `WATCHING` is set.
struct Watching;

static WATCHING: AtomicBool = AtomicBool::new(false);
static FREED_WITH_CANARY: AtomicUsize = AtomicUsize::new(0);

/// Built at run time, byte by byte, so that no other heap copy of it exists.
const CANARY: &[u8] = b"kiln-canary-pw-7f3a9c";

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if WATCHING.load(Ordering::SeqCst) && layout.size() >= CANARY.len() {
            // SAFETY: `ptr` is a live block of `layout.size()` bytes until the call below. Only
            // blocks that held a string are of interest; any initialised bytes are fine to read.
            let bytes = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
            if bytes.windows(CANARY.len()).any(|w| w == CANARY) {
                FREED_WITH_CANARY.fetch_add(1, Ordering::SeqCst);
            }
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

fn canary() -> String {
    let mut s = String::with_capacity(CANARY.len());
    for &b in CANARY {
        s.push(char::from(b));
    }
    s
}

/// Frees blocks made by `make` and counts those that still held the canary.
fn freed_with_canary(make: impl FnOnce()) -> usize {
    FREED_WITH_CANARY.store(0, Ordering::SeqCst);
    WATCHING.store(true, Ordering::SeqCst);
    make();
    WATCHING.store(false, Ordering::SeqCst);
    FREED_WITH_CANARY.load(Ordering::SeqCst)
}

// One test function, so that no other test of this binary frees memory while it watches.
#[test]
fn a_dropped_secret_leaves_no_copy_and_a_plain_string_does() {
    let plain = freed_with_canary(|| drop(std::hint::black_box(canary())));
    assert_eq!(plain, 1, "the check sees a plain string's freed bytes");

    let secret = freed_with_canary(|| {
        let s = Secret::new(canary());
        assert_eq!(s.expose().as_bytes(), CANARY);
        let copy = s.clone();
        drop(std::hint::black_box(s));
        drop(std::hint::black_box(copy));
    });
    assert_eq!(secret, 0, "a secret and its clone are zeroed before they are freed");
}
