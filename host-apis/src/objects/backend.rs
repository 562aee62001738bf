//! Choosing the object storage backend from one setting (`--object-store`):
//!
//! - `file:<directory>` (or a plain path): the local filesystem (default: `<data-dir>/objects`);
//! - `memory:`: in memory, gone at exit (tests, trials);
//! - `s3://<bucket>[/<prefix>]?region=<r>&endpoint=<url>&allow_http=true`: S3 or an
//!   S3-compatible server. Credentials come from the environment (`AWS_ACCESS_KEY_ID`,
//!   `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from the URL.

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use object_store::ObjectStore;

/// A parsed `--object-store` setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectBackend {
    Local(std::path::PathBuf),
    Memory,
    S3 {
        bucket: String,
        prefix: String,
        region: Option<String>,
        endpoint: Option<String>,
        allow_http: bool,
    },
}

impl ObjectBackend {
    pub fn parse(setting: &str) -> Result<Self, String> {
        if setting == "memory:" || setting == "memory" {
            return Ok(Self::Memory);
        }
        if let Some(rest) = setting.strip_prefix("s3://") {
            return parse_s3(rest);
        }
        if setting.contains("://") {
            return Err(format!(
                "object store {:?} is not supported: use file:<dir>, memory: or s3://<bucket>",
                setting.split("://").next().unwrap_or_default()
            ));
        }
        let path = setting.strip_prefix("file:").unwrap_or(setting);
        if path.is_empty() {
            return Err("object store: file: needs a directory".into());
        }
        Ok(Self::Local(path.into()))
    }

    /// How keys are laid out in this backend's store: encoded on the local filesystem, as they
    /// are elsewhere.
    pub fn layout(&self) -> super::KeyLayout {
        match self {
            Self::Local(_) => super::KeyLayout::Filesystem,
            Self::Memory | Self::S3 { .. } => super::KeyLayout::Plain,
        }
    }

    /// A description safe to log (no credentials ever appear in the setting).
    pub fn describe(&self) -> String {
        match self {
            Self::Local(path) => format!("local filesystem at {}", path.display()),
            Self::Memory => "memory".into(),
            Self::S3 { bucket, endpoint, .. } => {
                format!(
                    "S3 bucket {bucket}{}",
                    endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default()
                )
            }
        }
    }

    /// Builds the store (creating a local directory when needed). No network traffic.
    pub fn build(&self) -> Result<Arc<dyn ObjectStore>, String> {
        match self {
            Self::Memory => Ok(Arc::new(InMemory::new())),
            Self::Local(path) => {
                std::fs::create_dir_all(path).map_err(|e| {
                    format!("cannot create object store directory {}: {e}", path.display())
                })?;
                let store = LocalFileSystem::new_with_prefix(path).map_err(|e| {
                    format!("cannot open object store directory {}: {e}", path.display())
                })?;
                Ok(Arc::new(store))
            }
            Self::S3 { bucket, prefix, region, endpoint, allow_http } => {
                let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
                if let Some(region) = region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = endpoint {
                    builder =
                        builder.with_endpoint(endpoint).with_virtual_hosted_style_request(false);
                }
                let store = builder
                    .with_allow_http(*allow_http)
                    .build()
                    .map_err(|e| format!("S3 object store: {e}"))?;
                if prefix.is_empty() {
                    Ok(Arc::new(store))
                } else {
                    Ok(Arc::new(PrefixStore::new(store, prefix.as_str())))
                }
            }
        }
    }
}

fn parse_s3(rest: &str) -> Result<ObjectBackend, String> {
    let url =
        url::Url::parse(&format!("s3://{rest}")).map_err(|e| format!("object store URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("object store URL: put S3 credentials in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, not in the URL".into());
    }
    let bucket =
        url.host_str().filter(|b| !b.is_empty()).ok_or("object store URL: s3:// needs a bucket")?;
    let mut backend = ObjectBackend::S3 {
        bucket: bucket.to_string(),
        prefix: url.path().trim_matches('/').to_string(),
        region: None,
        endpoint: None,
        allow_http: false,
    };
    let ObjectBackend::S3 { region, endpoint, allow_http, .. } = &mut backend else {
        unreachable!()
    };
    for (name, value) in url.query_pairs() {
        match name.as_ref() {
            "region" => *region = Some(value.into_owned()),
            "endpoint" => *endpoint = Some(value.into_owned()),
            "allow_http" => *allow_http = value == "true" || value == "1",
            other => {
                return Err(format!(
                    "object store URL: unknown option {other:?} (region, endpoint, allow_http)"
                ))
            }
        }
    }
    Ok(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_to_backends() {
        assert_eq!(ObjectBackend::parse("memory:"), Ok(ObjectBackend::Memory));
        assert_eq!(ObjectBackend::parse("file:/var/x"), Ok(ObjectBackend::Local("/var/x".into())));
        assert_eq!(ObjectBackend::parse("/var/y"), Ok(ObjectBackend::Local("/var/y".into())));
        assert_eq!(
            ObjectBackend::parse("s3://bucket/some/prefix?region=eu-west-1&endpoint=http://127.0.0.1:9000&allow_http=true"),
            Ok(ObjectBackend::S3 {
                bucket: "bucket".into(),
                prefix: "some/prefix".into(),
                region: Some("eu-west-1".into()),
                endpoint: Some("http://127.0.0.1:9000".into()),
                allow_http: true,
            })
        );
        for bad in ["gs://b", "s3://", "s3://key:secret@bucket", "s3://b?colour=red", "file:"] {
            assert!(ObjectBackend::parse(bad).is_err(), "{bad}");
        }
        let error = ObjectBackend::parse("s3://AKIA:hunter2@bucket").unwrap_err();
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn an_s3_store_builds_from_the_setting_and_environment_without_network() {
        let backend = ObjectBackend::parse(
            "s3://reports?region=eu-west-1&endpoint=http://127.0.0.1:1&allow_http=true",
        )
        .unwrap();
        let store = backend.build().expect("S3 store");
        assert!(store.to_string().contains("reports"), "{store}");
        assert_eq!(backend.describe(), "S3 bucket reports at http://127.0.0.1:1");
    }
}
