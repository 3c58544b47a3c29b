//! Measuring tools: a latency histogram that merges across rounds and
//! processes, the figures of one measured round, and the process's peak
//! resident memory.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: quantiles are within about 1.6 %.
const SUB_BUCKETS: u64 = 64;
const SUB_BITS: u32 = SUB_BUCKETS.trailing_zeros();

/// Latencies in nanoseconds, in log-linear buckets (like HdrHistogram):
/// cheap to record, small to send as JSON, exact enough for p50 and p99.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// `(bucket, count)` pairs of the non-empty buckets, by bucket.
    buckets: Vec<(u32, u64)>,
    #[serde(skip)]
    dense: Vec<u64>,
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one latency.
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let index = bucket_of(nanos) as usize;
        if self.dense.len() <= index {
            self.dense.resize(index + 1, 0);
        }
        self.dense[index] += 1;
    }

    /// Adds every latency of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, count) in other.pairs() {
            let index = bucket as usize;
            if self.dense.len() <= index {
                self.dense.resize(index + 1, 0);
            }
            self.dense[index] += count;
        }
        self.buckets.clear();
    }

    /// Moves the recorded latencies into the compact form that is sent.
    pub fn compact(mut self) -> Self {
        self.buckets = self.pairs();
        self.dense = Vec::new();
        self
    }

    fn pairs(&self) -> Vec<(u32, u64)> {
        if self.dense.is_empty() {
            return self.buckets.clone();
        }
        let mut pairs: Vec<(u32, u64)> = self
            .dense
            .iter()
            .enumerate()
            .filter(|(_, count)| **count > 0)
            .map(|(bucket, count)| (bucket as u32, *count))
            .collect();
        // Buckets not yet folded into `dense` (a deserialised histogram).
        for (bucket, count) in &self.buckets {
            match pairs.iter_mut().find(|(b, _)| b == bucket) {
                Some(pair) => pair.1 += count,
                None => pairs.push((*bucket, *count)),
            }
        }
        pairs.sort_unstable();
        pairs
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.pairs().iter().map(|(_, count)| count).sum()
    }

    /// The latency below which a `q` share of the recorded ones lie (the
    /// middle of its bucket); zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let pairs = self.pairs();
        let total: u64 = pairs.iter().map(|(_, count)| count).sum();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (bucket, count) in pairs {
            seen += count;
            if seen >= rank {
                let (low, high) = bounds_of(bucket);
                return Duration::from_nanos(low + (high - low) / 2);
            }
        }
        Duration::ZERO
    }
}

/// Values below `SUB_BUCKETS` get a bucket each; above, each power of two
/// is split into `SUB_BUCKETS` equal buckets.
fn bucket_of(value: u64) -> u32 {
    if value < SUB_BUCKETS {
        return value as u32;
    }
    let magnitude = 63 - value.leading_zeros(); // >= SUB_BITS
    let shift = magnitude - SUB_BITS;
    let sub = (value >> shift) - SUB_BUCKETS; // 0..SUB_BUCKETS
    ((shift + 1) as u64 * SUB_BUCKETS + sub) as u32
}

/// The values a bucket holds, `[low, high)`.
fn bounds_of(bucket: u32) -> (u64, u64) {
    let bucket = u64::from(bucket);
    if bucket < SUB_BUCKETS {
        return (bucket, bucket + 1);
    }
    let shift = bucket / SUB_BUCKETS - 1;
    let sub = bucket % SUB_BUCKETS;
    let low = (SUB_BUCKETS + sub) << shift;
    (low, low + (1 << shift))
}

/// The figures of one measured round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Commands answered (for the same-user runs: successes and refusals).
    pub ops: u64,
    /// Of them, refused with FailedPrecondition (same-user runs only).
    pub refused: u64,
    /// Wall-clock seconds of the round.
    pub secs: f64,
    /// Each command's latency.
    pub latencies: Histogram,
    /// Commands answered by the adapter's commits in the round and the
    /// commits (SQLite transactions, sled syncs) they took.
    pub commits: (u64, u64),
    /// CPU seconds the whole process (every thread) spent in the round.
    pub cpu_secs: f64,
    /// Context switches of all the process's threads in the round.
    pub switches: u64,
}

impl Sample {
    /// Commands per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.secs > 0.0 {
            self.ops as f64 / self.secs
        } else {
            0.0
        }
    }

    /// Adds `other` (a later round of the same measurement).
    pub fn add(&mut self, other: &Sample) {
        self.ops += other.ops;
        self.refused += other.refused;
        self.secs += other.secs;
        self.latencies.merge(&other.latencies);
        self.commits.0 += other.commits.0;
        self.commits.1 += other.commits.1;
        self.cpu_secs += other.cpu_secs;
        self.switches += other.switches;
    }

    /// CPU microseconds per command, all threads of the process together.
    pub fn cpu_micros_per_op(&self) -> f64 {
        self.cpu_secs * 1e6 / self.ops.max(1) as f64
    }

    /// Context switches per command, all threads of the process together.
    pub fn switches_per_op(&self) -> f64 {
        self.switches as f64 / self.ops.max(1) as f64
    }

    /// Commands per commit (the group-commit batch); `None` without commits.
    pub fn batch(&self) -> Option<f64> {
        (self.commits.1 > 0).then(|| self.commits.0 as f64 / self.commits.1 as f64)
    }
}

/// The process's peak resident memory so far (`VmHWM`), in KiB; `None`
/// where `/proc` does not tell.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak resident memory to the current one (Linux 4.0+), so a
/// later [`peak_rss_kib`] covers only what follows. Returns whether it could.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU time the process has used so far, user and system, all threads
/// (`/proc/self/stat`, in clock ticks of 10 ms); `None` without `/proc`.
pub fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which may hold spaces: utime and
    // stime are the 12th and 13th.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

/// Context switches (voluntary and not) of every thread of the process so
/// far; threads that ended are not counted. `None` without `/proc`.
pub fn context_switches() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let Ok(status) = std::fs::read_to_string(task.ok()?.path().join("status")) else {
            continue;
        };
        total += status
            .lines()
            .filter(|l| l.contains("ctxt_switches:"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum::<u64>();
    }
    Some(total)
}

/// Starts measuring a round's CPU time and context switches.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    cpu_secs: f64,
    switches: u64,
}

impl Usage {
    /// The process's usage now.
    pub fn now() -> Self {
        Usage {
            cpu_secs: process_cpu_secs().unwrap_or(0.0),
            switches: context_switches().unwrap_or(0),
        }
    }

    /// Records the usage since `self` into `sample`.
    pub fn finish(self, sample: &mut Sample) {
        let now = Usage::now();
        sample.cpu_secs = (now.cpu_secs - self.cpu_secs).max(0.0);
        sample.switches = now.switches.saturating_sub(self.switches);
    }
}

/// The median of `values` (the mean of the middle two for an even count);
/// `None` when empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    let middle = sorted.len() / 2;
    Some(if sorted.len() % 2 == 1 {
        sorted[middle]
    } else {
        (sorted[middle - 1] + sorted[middle]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_values_in_order() {
        let mut previous = 0;
        for value in (0..100_000u64).chain([1 << 40, u64::MAX / 2]) {
            let bucket = bucket_of(value);
            assert!(bucket >= previous, "{value}");
            let (low, high) = bounds_of(bucket);
            assert!(low <= value && value < high, "{value}: {low}..{high}");
            previous = bucket;
        }
    }

    #[test]
    fn quantiles_survive_json_and_merging() {
        let mut first = Histogram::new();
        for micros in 1..=100u64 {
            first.record(Duration::from_micros(micros));
        }
        let sent: Histogram =
            serde_json::from_str(&serde_json::to_string(&first.compact()).unwrap()).unwrap();
        let mut total = Histogram::new();
        total.merge(&sent);
        total.merge(&sent);
        assert_eq!(total.count(), 200);
        let p50 = total.quantile(0.5).as_secs_f64() * 1e6;
        let p99 = total.quantile(0.99).as_secs_f64() * 1e6;
        assert!((p50 - 50.0).abs() < 1.5, "{p50}");
        assert!((p99 - 99.0).abs() < 2.0, "{p99}");
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }
}
