//! The collectives a platform spec judges (`[burnin.collective]`'s `all_reduce`, `all_gather`)
//! and how their bandwidth is counted, the way nccl-tests counts it: one definition for the spec,
//! the burn-in that measures them and the reports that show them.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Op {
    AllReduce,
    AllGather,
}

impl Op {
    pub const ALL: [Op; 2] = [Op::AllReduce, Op::AllGather];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::AllReduce => "all_reduce",
            Op::AllGather => "all_gather",
        }
    }

    /// nccl-tests' bus-bandwidth factor for `n` ranks: 2(n-1)/n for all-reduce, (n-1)/n for
    /// all-gather (its doc/PERFORMANCE.md), so figures compare across rank counts.
    pub fn bus_factor(self, n: u32) -> f64 {
        let n = f64::from(n.max(1));
        match self {
            Op::AllReduce => 2.0 * (n - 1.0) / n,
            Op::AllGather => (n - 1.0) / n,
        }
    }

    /// Algorithm bandwidth (bytes / time) and bus bandwidth, GB/s (10^9 bytes), for `bytes`
    /// (the all-reduce buffer, or the whole all-gather output, as nccl-tests counts) moved in
    /// `seconds` across `n` ranks.
    pub fn bandwidths(self, bytes: u64, seconds: f64, n: u32) -> (f64, f64) {
        if seconds <= 0.0 || !seconds.is_finite() {
            return (0.0, 0.0);
        }
        let algbw = bytes as f64 / seconds / 1e9;
        (algbw, algbw * self.bus_factor(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bus_bandwidth_is_computed_as_nccl_tests_does() {
        // 8 GiB all-reduce over 72 GPUs in 17.4 ms: algbw 493.7 GB/s, busbw x 2*71/72.
        let (alg, bus) = Op::AllReduce.bandwidths(8 << 30, 0.0174, 72);
        assert!((alg - 493.7).abs() < 0.1, "{alg}");
        assert!((bus - alg * 142.0 / 72.0).abs() < 1e-9, "{bus}");
        let (alg, bus) = Op::AllGather.bandwidths(1 << 30, 0.01, 8);
        assert!((bus - alg * 7.0 / 8.0).abs() < 1e-9);
        assert_eq!(Op::AllReduce.bus_factor(1), 0.0);
        assert_eq!(Op::AllReduce.bandwidths(1 << 20, 0.0, 8), (0.0, 0.0));
    }
}
