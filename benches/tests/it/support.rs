//! Shared by the tests: the workload and row comparison.

use lake_bench::workload::{WorkloadSpec, generate};

/// A small reference workload with 1 % broken lines, in 4 batches.
pub fn workload() -> Vec<String> {
    let mut spec = WorkloadSpec::sized(1_500, 300, 4);
    spec.corrupt = 0.01;
    generate(&spec)
}

/// Whether two `|`-joined rows are equal, numbers within a relative 1e-9:
/// sums depend on the order rows are read in, which follows the order the
/// store lists files.
pub fn same_row(a: &str, b: &str) -> bool {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.split('|').collect(), b.split('|').collect());
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| {
            x == y
                || match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
                    _ => false,
                }
        })
}
