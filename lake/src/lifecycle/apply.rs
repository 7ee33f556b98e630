//! Applying lifecycle rules with the AWS SDK (`PutBucketLifecycleConfiguration`).

use std::collections::HashMap;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, ExpirationStatus,
    LifecycleExpiration, LifecycleRule as SdkRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    Transition, TransitionStorageClass,
};
use lake_core::{LakeError, Result};

use super::{LifecycleRule, RULE_PREFIX};

/// A client for the bucket, configured from the lake's object_store
/// options (`aws_region`, `aws_endpoint`, `aws_access_key_id`,
/// `aws_secret_access_key`), falling back to the AWS defaults (environment,
/// profile, role) for what they leave out.
async fn client(options: &HashMap<String, String>) -> Result<Client> {
    let option = |key: &str| {
        options
            .get(key)
            .or_else(|| options.get(&key.to_ascii_uppercase()))
            .cloned()
    };
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = option("aws_region") {
        loader = loader.region(Region::new(region));
    }
    if let (Some(key), Some(secret)) =
        (option("aws_access_key_id"), option("aws_secret_access_key"))
    {
        loader = loader.credentials_provider(Credentials::new(key, secret, None, None, "lake"));
    }
    let shared = loader.load().await;
    if shared.region().is_none() {
        return Err(LakeError::config(
            "lifecycle",
            "no AWS region: set aws_region in [storage] or AWS_REGION",
        ));
    }
    let mut config = aws_sdk_s3::config::Builder::from(&shared);
    if let Some(endpoint) = option("aws_endpoint") {
        // A local endpoint (moto, MinIO) serves buckets by path.
        config = config.endpoint_url(endpoint).force_path_style(true);
    }
    Ok(Client::from_conf(config.build()))
}

fn sdk_error(bucket: &str, e: impl Into<lake_core::BoxError>) -> LakeError {
    LakeError::other(format!("lifecycle configuration of bucket {bucket}"), e)
}

/// The rules of `bucket`'s lifecycle configuration (none when it has none).
pub async fn bucket_rules(options: &HashMap<String, String>, bucket: &str) -> Result<Vec<SdkRule>> {
    let client = client(options).await?;
    match client
        .get_bucket_lifecycle_configuration()
        .bucket(bucket)
        .send()
        .await
    {
        Ok(out) => Ok(out.rules().to_vec()),
        Err(e)
            if e.as_service_error()
                .and_then(|s| aws_sdk_s3::error::ProvideErrorMetadata::code(s))
                == Some("NoSuchLifecycleConfiguration") =>
        {
            Ok(Vec::new())
        }
        Err(e) => Err(sdk_error(
            bucket,
            aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
        )),
    }
}

/// Puts `rules` into `bucket`'s lifecycle configuration: the lake's rules
/// (ids starting with [`RULE_PREFIX`]) are replaced, the bucket's others
/// kept (S3 replaces a bucket's whole configuration at once). The ids of
/// the rules the bucket has after.
pub async fn apply(
    options: &HashMap<String, String>,
    bucket: &str,
    rules: &[LifecycleRule],
) -> Result<Vec<String>> {
    let mut merged: Vec<SdkRule> = bucket_rules(options, bucket)
        .await?
        .into_iter()
        .filter(|rule| !rule.id().is_some_and(|id| id.starts_with(RULE_PREFIX)))
        .collect();
    for rule in rules {
        merged.push(sdk_rule(rule).map_err(|e| sdk_error(bucket, e))?);
    }
    let ids = merged
        .iter()
        .filter_map(|r| r.id().map(str::to_string))
        .collect();
    let configuration = BucketLifecycleConfiguration::builder()
        .set_rules(Some(merged))
        .build()
        .map_err(|e| sdk_error(bucket, e))?;
    client(options)
        .await?
        .put_bucket_lifecycle_configuration()
        .bucket(bucket)
        .lifecycle_configuration(configuration)
        .send()
        .await
        .map_err(|e| {
            sdk_error(
                bucket,
                aws_sdk_s3::error::DisplayErrorContext(e).to_string(),
            )
        })?;
    Ok(ids)
}

fn sdk_rule(rule: &LifecycleRule) -> std::result::Result<SdkRule, aws_sdk_s3::error::BuildError> {
    let days = |d: u32| i32::try_from(d).unwrap_or(i32::MAX);
    let filter = match rule.min_size {
        Some(size) => LifecycleRuleFilter::builder()
            .and(
                LifecycleRuleAndOperator::builder()
                    .prefix(rule.prefix.clone())
                    .object_size_greater_than(i64::try_from(size).unwrap_or(i64::MAX))
                    .build(),
            )
            .build(),
        None => LifecycleRuleFilter::builder()
            .prefix(rule.prefix.clone())
            .build(),
    };
    let mut built = SdkRule::builder()
        .id(rule.id.clone())
        .filter(filter)
        .status(ExpirationStatus::Enabled);
    if let Some(d) = rule.expiration_days {
        built = built.expiration(LifecycleExpiration::builder().days(days(d)).build());
    }
    if let Some((d, class)) = &rule.transition {
        built = built.transitions(
            Transition::builder()
                .days(days(*d))
                .storage_class(TransitionStorageClass::from(class.as_str()))
                .build(),
        );
    }
    if let Some(d) = rule.abort_incomplete_upload_days {
        built = built.abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(days(d))
                .build(),
        );
    }
    built.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transition_rule_filters_by_prefix_and_size_and_never_expires() {
        let mut rule = LifecycleRule::expiring("lake-cold-bronze", "lake/bronze/", 1);
        rule.expiration_days = None;
        rule.transition = Some((90, "STANDARD_IA".to_string()));
        rule.min_size = Some(super::super::MIN_TRANSITION_BYTES);
        let sdk = sdk_rule(&rule).unwrap();
        let and = sdk.filter().and_then(|f| f.and()).unwrap();
        assert_eq!(and.prefix(), Some("lake/bronze/"));
        assert_eq!(and.object_size_greater_than(), Some(128 * 1024));
        assert_eq!(
            sdk.transitions()[0].storage_class(),
            Some(&TransitionStorageClass::StandardIa)
        );
        assert!(sdk.expiration().is_none());
        assert_eq!(sdk.status(), &ExpirationStatus::Enabled);
    }
}
