//! Waiting for a power change to show: BMCs accept a request at once and act seconds later.

use std::thread;
use std::time::{Duration, Instant};

use super::{Bmc, BmcError, PowerState};

/// Poll `power_state` every `every` until it reads `want`, or fail with
/// `NotObserved` after `limit`. A failed read ends the wait with that error.
pub fn wait_for_power(bmc: &dyn Bmc, want: &PowerState, limit: Duration, every: Duration) -> Result<(), BmcError> {
    let start = Instant::now();
    loop {
        let now = bmc.power_state()?;
        if &now == want {
            return Ok(());
        }
        if start.elapsed() + every > limit {
            return Err(BmcError::NotObserved {
                bmc: bmc.label().to_string(),
                what: format!("power {want} (still {now})"),
                waited: limit,
            });
        }
        thread::sleep(every);
    }
}
