//! The `lake` binary's commands, one module each.

mod cost;
mod erase;
mod grant;
mod init;
mod lifecycle;
mod maintain;
mod output;
mod pending;
mod run;
mod sql;
mod status;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use lake::LakeError;
use lake::config::PipelineConfig;

/// Runs, inspects and queries a medallion data lake of Delta tables.
///
/// Start with `lake init demo`, then follow what it prints.
#[derive(Debug, Parser)]
#[command(name = "lake", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Init(init::InitArgs),
    Run(run::RunArgs),
    Pending(pending::PendingArgs),
    Status(status::StatusArgs),
    Sql(sql::SqlArgs),
    Maintain(maintain::MaintainArgs),
    Erase(erase::EraseArgs),
    Grant(grant::GrantArgs),
    Revoke(grant::RevokeArgs),
    Grants(grant::GrantsArgs),
    Cost(cost::CostArgs),
    Lifecycle(lifecycle::LifecycleArgs),
}

/// Where the lake is and how its pipeline is configured: on every command
/// that reads a lake.
#[derive(Debug, Clone, Args)]
pub(crate) struct LakeArgs {
    /// The pipeline configuration (TOML; see `lake init`). Without it, the
    /// reference `orders` workload on the file catalog.
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// The lake root: a folder or an `s3://bucket/prefix` URL. Overrides
    /// the configuration's `lake`; the default is `./lake`.
    #[arg(long, short = 'l', value_name = "ROOT")]
    lake: Option<String>,
    /// Print one JSON document for machines instead of text for people.
    #[arg(long)]
    json: bool,
    /// Run as this principal: its grants in the catalog decide which
    /// tables it may read and write (`lake grant`). Overrides the
    /// configuration's `principal`.
    #[arg(long, value_name = "PRINCIPAL", env = "LAKE_PRINCIPAL")]
    principal: Option<String>,
}

impl LakeArgs {
    /// The configuration, with its `lake` root resolved: `--lake` first,
    /// then the file's `lake` (relative to the file's folder), then `./lake`.
    pub(crate) fn config(&self) -> lake::Result<PipelineConfig> {
        let mut config = match &self.config {
            Some(path) => {
                let mut config = PipelineConfig::from_file(path)?;
                if let Some(root) = &config.lake
                    && !root.contains("://")
                    && std::path::Path::new(root).is_relative()
                {
                    let base = path.parent().unwrap_or(std::path::Path::new(""));
                    config.lake = Some(base.join(root).to_string_lossy().to_string());
                }
                config
            }
            None => PipelineConfig::reference()?,
        };
        if let Some(root) = &self.lake {
            config.lake = Some(root.clone());
        }
        if config.lake.is_none() {
            config.lake = Some("lake".to_string());
        }
        if let Some(principal) = &self.principal {
            config.principal = Some(principal.parse()?);
        }
        Ok(config)
    }

    /// The pipeline the configuration describes.
    pub(crate) async fn pipeline(&self) -> lake::Result<(PipelineConfig, lake::Pipeline)> {
        let config = self.config()?;
        let pipeline = config.build(None).await?;
        Ok((config, pipeline))
    }
}

/// A command's failure: a run that failed (exit 1) or bad usage or
/// configuration (exit 2).
#[derive(Debug)]
pub(crate) enum Failure {
    Run(Box<dyn std::error::Error + Send + Sync>),
    Usage(Box<dyn std::error::Error + Send + Sync>),
}

impl From<LakeError> for Failure {
    fn from(e: LakeError) -> Self {
        match is_config(&e) {
            true => Failure::Usage(Box::new(e)),
            false => Failure::Run(Box::new(e)),
        }
    }
}

/// Whether `e` is, or is a stage's failure because of, bad configuration.
fn is_config(e: &LakeError) -> bool {
    match e {
        LakeError::Config { .. } => true,
        LakeError::Stage { source, .. } => is_config(source),
        _ => false,
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Self {
        Failure::Run(Box::new(e))
    }
}

impl Failure {
    /// The same failure, with `message` as its first line and the error as its cause.
    pub(crate) fn context(self, message: String) -> Self {
        let wrap = |source| Box::new(Context { message, source });
        match self {
            Failure::Run(source) => Failure::Run(wrap(source)),
            Failure::Usage(source) => Failure::Usage(wrap(source)),
        }
    }
}

/// An error with what the command was doing when it happened.
#[derive(Debug)]
struct Context {
    message: String,
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl std::fmt::Display for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

pub(crate) type Outcome = Result<(), Failure>;

pub(crate) fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return code;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return report(&Failure::Run(Box::new(e))),
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Init(args) => init::init(args),
            Command::Run(args) => run::run(args).await,
            Command::Pending(args) => pending::pending(args).await,
            Command::Status(args) => status::status(args).await,
            Command::Sql(args) => sql::sql(args).await,
            Command::Maintain(args) => maintain::maintain(args).await,
            Command::Erase(args) => erase::erase(args).await,
            Command::Grant(args) => grant::grant(args).await,
            Command::Revoke(args) => grant::revoke(args).await,
            Command::Grants(args) => grant::grants(args).await,
            Command::Cost(args) => cost::cost(args).await,
            Command::Lifecycle(args) => lifecycle::lifecycle(args).await,
        }
    });
    match outcome {
        Ok(()) => 0,
        Err(failure) => report(&failure),
    }
}

/// Prints a failure as one line per cause (never a backtrace, whatever
/// `RUST_BACKTRACE` says) and returns its exit code.
fn report(failure: &Failure) -> i32 {
    let (error, code) = match failure {
        Failure::Run(e) => (e.as_ref(), 1),
        Failure::Usage(e) => (e.as_ref(), 2),
    };
    let mut lines = lake::error_lines(error).into_iter();
    eprintln!("lake: error: {}", lines.next().unwrap_or_default());
    for cause in lines {
        eprintln!("  caused by: {cause}");
    }
    code
}
