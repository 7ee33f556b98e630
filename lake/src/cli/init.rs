//! `lake init`: a starting point to edit.

use std::path::{Path, PathBuf};

use clap::Args;

use super::{Failure, Outcome};

/// Writes commented configurations to edit, with sample inputs.
///
/// `lake.toml` for the reference `orders` workload (JSON lines → SCD2
/// silver → a daily summary), and `customers.toml` for a table of your own
/// (CSV → a declarative silver spec → an aggregation of your own). Refuses
/// to overwrite a file unless `--force`.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  lake init demo\n  lake run --config demo/lake.toml --input demo/incoming/orders"
)]
pub(crate) struct InitArgs {
    /// The folder to write into (created when missing).
    #[arg(default_value = ".")]
    dir: PathBuf,
    /// Overwrite files that exist.
    #[arg(long)]
    force: bool,
}

pub(crate) fn init(args: InitArgs) -> Outcome {
    let dir = &args.dir;
    let mut files: Vec<(PathBuf, String)> = vec![
        (dir.join("lake.toml"), REFERENCE.to_string()),
        (dir.join("customers.toml"), CUSTOMERS.to_string()),
    ];
    for (i, text) in order_batches().into_iter().enumerate() {
        files.push((
            dir.join(format!("incoming/orders/batch-{:05}.jsonl", i + 1)),
            text,
        ));
    }
    files.push((
        dir.join("incoming/customers/customers-00001.csv"),
        CUSTOMERS_1.to_string(),
    ));
    files.push((
        dir.join("incoming/customers/customers-00002.csv"),
        CUSTOMERS_2.to_string(),
    ));
    if !args.force
        && let Some((path, _)) = files.iter().find(|(path, _)| path.exists())
    {
        return Err(Failure::Usage(
            format!("{} exists: pass --force to overwrite", path.display()).into(),
        ));
    }
    for (path, text) in &files {
        write(path, text)?;
    }
    let d = dir.display();
    println!("wrote {d}/lake.toml, {d}/customers.toml and sample inputs under {d}/incoming/");
    println!("next:");
    println!("  lake run --config {d}/lake.toml --input {d}/incoming/orders");
    println!("  lake status --config {d}/lake.toml");
    println!(
        "  lake sql --config {d}/lake.toml \"SELECT * FROM gold.analytics.daily_summary ORDER BY order_date LIMIT 5\""
    );
    println!("  lake run --config {d}/customers.toml --input {d}/incoming/customers");
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), Failure> {
    let failed = |e: std::io::Error| Failure::Run(format!("{}: {e}", path.display()).into());
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    std::fs::write(path, text).map_err(failed)
}

/// The reference workload: three small batches of the `orders` change
/// stream with the mess real streams have (late and repeated events, a
/// numeric string, a delete, a broken line, a blank line, CRLF).
pub(crate) fn order_batches() -> Vec<String> {
    let categories = ["books", "garden", "toys", "music"];
    let regions = ["eu", "us", "apac"];
    (0..3)
        .map(|b| {
            let mut text = String::new();
            for e in 0..400usize {
                let n = b * 400 + e;
                let order = n % 300;
                let op = match n {
                    n if n < 300 => "c",
                    n if n.is_multiple_of(53) => "d",
                    _ => "u",
                };
                let amount = match n.is_multiple_of(5) {
                    true => format!("\"{}.50\"", n % 200),
                    false => format!("{}.25", n % 200),
                };
                // Every 7th event of a later batch is late: it happened
                // before events an earlier batch delivered.
                let minute = match (b > 0, n.is_multiple_of(7)) {
                    (true, true) => n - 350,
                    _ => n,
                };
                text.push_str(&format!(
                    "{{\"order_id\":\"o{order:04}\",\"customer_id\":\"c{:03}\",\"category\":\"{}\",\"region\":\"{}\",\"amount\":{amount},\"status\":\"{}\",\"order_date\":\"2025-11-{:02}\",\"op\":\"{op}\",\"updated_at\":\"2025-11-{:02}T{:02}:{:02}:00Z\",\"metadata\":{{\"channel\":\"web\"}}}}\n",
                    order % 90,
                    categories[order % 4],
                    regions[order % 3],
                    ["placed", "paid", "shipped"][n / 300 % 3],
                    1 + order % 28,
                    1 + minute / 1440,
                    minute / 60 % 24,
                    minute % 60,
                ));
                if e == 100 {
                    // A redelivered event and a broken line.
                    let last = text.lines().last().unwrap_or_default().to_string();
                    text.push_str(&last);
                    text.push_str("\r\n{\"order_id\": broken\n\n");
                }
            }
            text
        })
        .collect()
}

const REFERENCE: &str = r#"# The reference `orders` workload: JSON-lines change events into bronze,
# an SCD Type 2 silver table, and a daily summary in gold.
# Run it:   lake run --config lake.toml --input incoming/orders
# Relative paths here are relative to this file's folder.

# The lake root: a folder, or s3://bucket/prefix (with the `aws` feature).
lake = "lake"
# "file" (the embedded catalog under {lake}/_catalog), "memory", "glue" or "none".
catalog = "file"

# [storage]                    # object_store options of an s3:// root
# aws_region = "eu-west-1"     # AWS_* environment variables are read too

[[bronze]]
table = "bronze.shop.orders"
# Which inputs `lake run` sends here: globs on the file name ("*.jsonl"),
# globs on the path ("data/*/orders-*.jsonl") or prefixes ("s3://b/orders/").
# With one bronze table, it takes every input.
inputs = ["*.jsonl", "*.ndjson"]
# schema_policy = "evolve" adds new columns; "strict" dead-letters records
# with columns the table does not have.
options = { schema_policy = "evolve" }

[[silver]]
stage = "orders"                # the reference typing rules (SEMANTICS.md)
source = "bronze.shop.orders"
target = "silver.sales.orders"
mode = "scd2"                   # or "scd1": the latest state of each key only

[[gold]]
daily_summary = { source = "silver.sales.orders", target = "gold.analytics.daily_summary" }

# Expectations on silver's typed rows: warn, drop (quarantine) or fail.
[[expectations]]
table = "silver.sales.orders"
suite = { name = "orders", expectation = [
    { expect = "not_null", column = "customer_id", action = "warn" },
] }
"#;

const CUSTOMERS: &str = r#"# A table of your own: customers from CSV, versioned in silver by a
# declarative spec, aggregated in gold by a spec of your own.
# Run it:   lake run --config customers.toml --input incoming/customers

lake = "lake"
catalog = "file"

[[bronze]]
table = "bronze.crm.customers"
inputs = ["*.csv"]
# CSV lands as text, as delivered; here an empty field means null.
options = { csv = { null_values = [""] } }

[[silver]]
[silver.spec]
source = "bronze.crm.customers"
target = "silver.crm.customers"
keys = ["customer_id"]            # several columns make a compound key
sequence_by = "updated_at"        # orders the changes of a key
mode = "scd2"
deletes = { column = "op", values = ["d"] }
# A change of these columns does not open a new version on its own.
track_history = { exclude = ["last_login"] }

[[silver.spec.columns]]
name = "customer_id"
from = "id"                       # renamed from the CSV header
type = "int64"                    # a cast that fails quarantines the row
[[silver.spec.columns]]
name = "name"
[[silver.spec.columns]]
name = "email_domain"
expr = "lower(split_part(email, '@', 2))"   # derived, DataFusion SQL
[[silver.spec.columns]]
name = "country"
[[silver.spec.columns]]
name = "plan"
[[silver.spec.columns]]
name = "monthly_fee"
type = "float64"
[[silver.spec.columns]]
name = "signup_date"
type = "date"
[[silver.spec.columns]]
name = "last_login"
type = "timestamp"
[[silver.spec.columns]]
name = "updated_at"
type = "timestamp"

[[gold]]
[gold.spec]
target = "gold.crm.revenue_by_country"
source = "silver.crm.customers"   # its current rows
group_by = ["signup_date", "country"]
partition_by = "signup_date"
metrics = [
    { name = "customers", fn = "count" },
    { name = "monthly_revenue", fn = "sum", column = "monthly_fee" },
]
"#;

const CUSTOMERS_1: &str =
    "id,name,email,country,plan,monthly_fee,signup_date,last_login,updated_at,op
1,Ada,ada@Example.com,FR,pro,49.00,2025-10-01,2025-11-01T08:00:00Z,2025-11-01T09:00:00Z,c
2,Grace,grace@example.org,US,basic,9.00,2025-10-01,2025-11-01T08:30:00Z,2025-11-01T09:05:00Z,c
3,Linus,linus@example.net,FI,basic,9.00,2025-10-02,,2025-11-01T09:10:00Z,c
4,Barbara,barbara@example.com,US,pro,forty-nine,2025-10-02,,2025-11-01T09:15:00Z,c
";

const CUSTOMERS_2: &str =
    "id,name,email,country,plan,monthly_fee,signup_date,last_login,updated_at,op
1,Ada,ada@Example.com,FR,enterprise,199.00,2025-10-01,2025-11-02T08:00:00Z,2025-11-02T10:00:00Z,u
2,Grace,grace@example.org,US,basic,9.00,2025-10-01,2025-11-02T07:00:00Z,2025-11-02T10:05:00Z,u
3,Linus,linus@example.net,FI,basic,9.00,2025-10-02,,2025-11-02T10:10:00Z,d
4,Barbara,barbara@example.com,US,pro,49.00,2025-10-02,,2025-11-02T10:15:00Z,c
";
