//! The reference workload of `SEMANTICS.md`: an `orders` change stream as
//! newline-delimited JSON, deterministic per seed.
//!
//! Events are creates, updates and deletes of orders, with updates
//! concentrated on recent orders (as in real order streams), late
//! arrivals, redelivered duplicates, no-op updates, and broken lines.

use std::fmt::Write as _;

/// How a workload is shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadSpec {
    /// Events in total.
    pub events: usize,
    /// Distinct orders.
    pub orders: usize,
    /// Delivered batches (files).
    pub batches: usize,
    /// Seed of the generator: the same seed gives the same bytes.
    pub seed: u64,
    /// Fraction of events delivered one batch late.
    pub late: f64,
    /// Fraction of events delivered twice.
    pub duplicate: f64,
    /// Fraction of lines that are broken.
    pub corrupt: f64,
    /// Fraction of changes that are deletes.
    pub delete: f64,
    /// Fraction of updates that change nothing tracked.
    pub noop: f64,
}

impl WorkloadSpec {
    /// 100 k events, 20 k orders, 10 batches.
    pub fn small() -> Self {
        Self::sized(100_000, 20_000, 10)
    }

    /// 1 M events, 200 k orders, 10 batches.
    pub fn medium() -> Self {
        Self::sized(1_000_000, 200_000, 10)
    }

    /// 5 M events, 1 M orders, 20 batches.
    pub fn large() -> Self {
        Self::sized(5_000_000, 1_000_000, 20)
    }

    /// A workload of the given size with the default mess.
    pub fn sized(events: usize, orders: usize, batches: usize) -> Self {
        Self {
            events,
            orders: orders.max(1),
            batches: batches.max(1),
            seed: 42,
            late: 0.05,
            duplicate: 0.02,
            corrupt: 0.001,
            delete: 0.03,
            noop: 0.05,
        }
    }

    /// A named scale: `small`, `medium` or `large`.
    pub fn scale(name: &str) -> Option<Self> {
        match name {
            "small" => Some(Self::small()),
            "medium" => Some(Self::medium()),
            "large" => Some(Self::large()),
            _ => None,
        }
    }
}

/// SplitMix64: tiny, fast and good enough to shape a workload.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer in `[0, n)`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Product categories of the workload.
pub const CATEGORIES: [&str; 8] = [
    "books", "garden", "toys", "music", "kitchen", "sports", "beauty", "tools",
];
/// Sales regions of the workload.
pub const REGIONS: [&str; 5] = ["eu-west", "eu-north", "us-east", "us-west", "apac"];
/// Order statuses, in the order an order goes through them.
pub const STATUSES: [&str; 4] = ["placed", "paid", "shipped", "delivered"];

#[derive(Debug, Clone)]
struct Order {
    customer: u64,
    category: usize,
    region: usize,
    amount_cents: u64,
    status: usize,
    day: u32,
    live: bool,
}

/// Generates the workload: one `String` of JSON lines per batch.
pub fn generate(spec: &WorkloadSpec) -> Vec<String> {
    let mut rng = Rng::new(spec.seed);
    let mut batches = vec![String::new(); spec.batches];
    let mut orders: Vec<Order> = Vec::with_capacity(spec.orders);
    let per_batch = spec.events.div_ceil(spec.batches);
    // Seconds since 2025-12-01T00:00:00Z; each event a little later.
    let mut clock: u64 = 0;
    let mut line = String::new();
    for event in 0..spec.events {
        let batch = (event / per_batch).min(spec.batches - 1);
        clock += 1 + rng.below(3);
        let creates_left = spec.orders - orders.len();
        let events_left = spec.events - event;
        let create = creates_left > 0
            && (orders.is_empty() || rng.below(events_left as u64) < creates_left as u64);
        let (key, op) = if create {
            orders.push(Order {
                customer: rng.below((spec.orders as u64 / 4).max(1)),
                category: rng.below(CATEGORIES.len() as u64) as usize,
                region: rng.below(REGIONS.len() as u64) as usize,
                amount_cents: 100 + rng.below(50_000),
                status: 0,
                day: 1 + (orders.len() * 28 / spec.orders) as u32,
                live: true,
            });
            (orders.len() - 1, "c")
        } else {
            // Updates favour recent orders: pick from the newest tenth most of the time.
            let n = orders.len() as u64;
            let key = if rng.unit() < 0.8 {
                n - 1 - rng.below((n / 10).max(1))
            } else {
                rng.below(n)
            } as usize;
            let order = &mut orders[key];
            if rng.unit() < spec.delete && order.live {
                order.live = false;
                (key, "d")
            } else {
                if rng.unit() >= spec.noop {
                    order.status = (order.status + 1) % STATUSES.len();
                    if rng.unit() < 0.3 {
                        order.amount_cents = 100 + rng.below(50_000);
                    }
                }
                order.live = true;
                (key, "u")
            }
        };
        let order = &orders[key];
        line.clear();
        if rng.unit() < spec.corrupt {
            let _ = write!(line, "{{\"order_id\": \"o{key:07}\", \"amount\": NaN");
        } else {
            let amount = if rng.unit() < 0.2 {
                format!(
                    "\"{}.{:02}\"",
                    order.amount_cents / 100,
                    order.amount_cents % 100
                )
            } else {
                format!(
                    "{}.{:02}",
                    order.amount_cents / 100,
                    order.amount_cents % 100
                )
            };
            let _ = write!(
                line,
                "{{\"order_id\":\"o{key:07}\",\"customer_id\":\"c{:06}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{amount},\"status\":\"{}\",\"order_date\":\"2025-11-{:02}\",\"op\":\"{op}\",\"updated_at\":\"{}\",\"metadata\":{{\"channel\":\"web\",\"attempt\":{}}}}}",
                order.customer,
                CATEGORIES[order.category],
                REGIONS[order.region],
                STATUSES[order.status],
                order.day,
                instant(clock),
                rng.below(3),
            );
        }
        line.push('\n');
        let target = if batch + 1 < spec.batches && rng.unit() < spec.late {
            batch + 1
        } else {
            batch
        };
        batches[target].push_str(&line);
        if rng.unit() < spec.duplicate {
            let again = (target + rng.below(2) as usize).min(spec.batches - 1);
            batches[again].push_str(&line);
        }
    }
    batches
}

/// The RFC 3339 text of `clock` seconds after 2025-12-01T00:00:00Z.
///
/// The calendar goes on past December. It once wrapped at the 28th, which
/// made a large workload's events jump four weeks back every few batches:
/// far later arrivals than the `late` option says.
fn instant(clock: u64) -> String {
    let start = chrono::DateTime::from_timestamp(1_764_547_200, 0).expect("2025-12-01 is valid");
    let at = start + chrono::TimeDelta::seconds(clock as i64);
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let spec = WorkloadSpec::sized(2_000, 400, 4);
        assert_eq!(generate(&spec), generate(&spec));
        let other = WorkloadSpec {
            seed: 7,
            ..spec.clone()
        };
        assert_ne!(generate(&spec), generate(&other));
    }

    #[test]
    fn instants_go_on_past_the_end_of_the_month() {
        assert_eq!(instant(0), "2025-12-01T00:00:00Z");
        assert_eq!(instant(86_400 * 27 + 3_661), "2025-12-28T01:01:01Z");
        assert_eq!(instant(86_400 * 40), "2026-01-10T00:00:00Z");
    }

    #[test]
    fn every_order_is_created_and_lines_are_mostly_json() {
        let spec = WorkloadSpec::sized(5_000, 1_000, 5);
        let text: String = generate(&spec).concat();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines.len() >= 5_000, "duplicates only add lines");
        let creates = lines.iter().filter(|l| l.contains("\"op\":\"c\"")).count();
        assert!(creates >= 1_000);
        let broken = lines
            .iter()
            .filter(|l| serde_json::from_str::<serde_json::Value>(l).is_err())
            .count();
        assert!(broken < 50, "{broken} broken lines");
    }
}
