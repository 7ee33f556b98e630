//! `lake lifecycle`: the S3 lifecycle rules that match the lake.

use clap::Args;

use super::output::json;
use super::{LakeArgs, Outcome};

/// Prints (and with --apply, sets) the bucket's lifecycle rules for the lake.
///
/// For an `s3://` lake: objects under `temp/` expire, unfinished multipart
/// uploads are aborted, and prefixes the configuration's `[lifecycle] cold`
/// list names move to a cheaper storage class that Athena and Spark still
/// read directly. Table data never gets an expiry rule: Delta tables expire
/// rows through retention and vacuum (`lake maintain`). Prints the JSON
/// `aws s3api put-bucket-lifecycle-configuration` takes; --apply puts it,
/// keeping the bucket's rules that are not the lake's.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  lake lifecycle --config s3.toml\n  lake lifecycle --config s3.toml --apply"
)]
pub(crate) struct LifecycleArgs {
    #[command(flatten)]
    lake: LakeArgs,
    /// Put the rules into the bucket's lifecycle configuration.
    #[arg(long)]
    apply: bool,
}

pub(crate) async fn lifecycle(args: LifecycleArgs) -> Outcome {
    let config = args.lake.config()?;
    let storage = config.storage(None)?;
    let (bucket, rules) = lake::lifecycle::rules(storage.layout(), &config.lifecycle)?;
    if !args.apply {
        json(&lake::lifecycle::to_json(&rules));
        return Ok(());
    }
    apply(&config, &bucket, &rules).await
}

#[cfg(feature = "aws")]
async fn apply(
    config: &lake::config::PipelineConfig,
    bucket: &str,
    rules: &[lake::lifecycle::LifecycleRule],
) -> Outcome {
    let options = config.storage.clone().into_iter().collect();
    let ids = lake::lifecycle::apply(&options, bucket, rules).await?;
    println!(
        "bucket {bucket} has {} lifecycle rules: {}",
        ids.len(),
        ids.join(", ")
    );
    Ok(())
}

#[cfg(not(feature = "aws"))]
async fn apply(
    _: &lake::config::PipelineConfig,
    _: &str,
    _: &[lake::lifecycle::LifecycleRule],
) -> Outcome {
    Err(super::Failure::Usage(
        "this lake binary was built without the `aws` feature: print the rules without --apply and put them with the AWS CLI, or build with --features aws".into(),
    ))
}
