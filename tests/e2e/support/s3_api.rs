//! The S3 API of the run's object store, as the tests reach it without
//! ferry: SeaweedFS's, or an external endpoint (`FERRY_E2E_S3_ENDPOINT`,
//! e.g. the three-node Garage of scripts/garage.sh). Apache Arrow's
//! `object_store` (ferry's own S3 client, so nothing new to build), each
//! call on a runtime of its own: the helpers are called from async tests
//! and must not block their runtime's threads.

use std::future::Future;

use futures_util::TryStreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as Key;
use object_store::{ObjectStore, PutMode, PutOptions, PutPayload};

/// Where an external store is named (all four, and optionally the region).
pub const ENDPOINT_ENV: &str = "FERRY_E2E_S3_ENDPOINT";
pub const ACCESS_KEY_ENV: &str = "FERRY_E2E_S3_ACCESS_KEY";
pub const SECRET_KEY_ENV: &str = "FERRY_E2E_S3_SECRET_KEY";
pub const BUCKET_ENV: &str = "FERRY_E2E_S3_BUCKET";
pub const REGION_ENV: &str = "FERRY_E2E_S3_REGION";

#[derive(Debug, Clone)]
pub struct S3Api {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    access_key: String,
    secret_key: String,
}

/// What a create-only PUT (`If-None-Match: *`) of an existing key got.
#[derive(Debug, PartialEq, Eq)]
pub enum CreateOnly {
    /// The engine honoured it: 412, nothing written.
    Refused,
    /// The engine wrote the object anyway (Garage 2.5 ignores the header).
    Overwritten,
}

impl S3Api {
    pub fn new(endpoint: &str, bucket: &str, region: &str, key: &str, secret: &str) -> S3Api {
        S3Api {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            bucket: bucket.into(),
            region: region.into(),
            access_key: key.into(),
            secret_key: secret.into(),
        }
    }

    /// The external store the environment names, if any (all of endpoint,
    /// keys and bucket, or a panic naming what is missing).
    pub fn from_env() -> Option<S3Api> {
        let endpoint = std::env::var(ENDPOINT_ENV).ok().filter(|e| !e.is_empty())?;
        let need = |name: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("{ENDPOINT_ENV} is set: {name} is needed too"))
        };
        let region = std::env::var(REGION_ENV).unwrap_or_else(|_| "us-east-1".into());
        Some(S3Api::new(
            &endpoint,
            &need(BUCKET_ENV),
            &region,
            &need(ACCESS_KEY_ENV),
            &need(SECRET_KEY_ENV),
        ))
    }

    /// The secret key (a cluster's default `secret` is derived from it).
    pub fn secret_key(&self) -> &str {
        &self.secret_key
    }

    /// ferry's `[storage]` section for this store, keys under `prefix`.
    pub fn storage_toml(&self, prefix: &str) -> String {
        format!(
            "\n[storage]\nkind = \"s3\"\nendpoint = \"{}\"\nbucket = \"{}\"\n\
             region = \"{}\"\npath_style = true\nprefix = \"{prefix}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            self.endpoint, self.bucket, self.region, self.access_key, self.secret_key
        )
    }

    fn client(&self) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(&self.endpoint)
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_access_key_id(&self.access_key)
            .with_secret_access_key(&self.secret_key)
            .with_virtual_hosted_style_request(false)
            .with_allow_http(true)
            .build()
            .expect("S3 client")
    }

    /// The objects directly under `dir` (e.g. `e2e-1-0/blobs/sha256`): name
    /// and size.
    pub fn list(&self, dir: &str) -> Vec<(String, u64)> {
        let (client, under) = (self.client(), Key::from(dir.trim_matches('/')));
        let listed = on_own_runtime(async move { client.list_with_delimiter(Some(&under)).await })
            .unwrap_or_else(|e| panic!("list {dir}: {e}"));
        listed
            .objects
            .into_iter()
            .filter_map(|o| Some((o.location.filename()?.to_string(), o.size)))
            .collect()
    }

    /// Every key under `prefix`, at any depth.
    pub fn keys_under(&self, prefix: &str) -> Vec<String> {
        let (client, under) = (self.client(), Key::from(prefix.trim_matches('/')));
        on_own_runtime(async move { client.list(Some(&under)).try_collect::<Vec<_>>().await })
            .unwrap_or_else(|e| panic!("list {prefix}: {e}"))
            .into_iter()
            .map(|o| o.location.to_string())
            .collect()
    }

    /// The bytes of object `key`, or `None` when there is none.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        let (client, key) = (self.client(), Key::from(key));
        on_own_runtime(async move {
            match client.get(&key).await {
                Ok(got) => Some(got.bytes().await.expect("object body").to_vec()),
                Err(object_store::Error::NotFound { .. }) => None,
                Err(e) => panic!("GET {key}: {e}"),
            }
        })
    }

    /// Writes `bytes` as object `key`.
    pub fn put(&self, key: &str, bytes: &[u8]) {
        let (client, key, body) = (self.client(), Key::from(key), bytes.to_vec());
        on_own_runtime(async move { client.put(&key, PutPayload::from(body)).await })
            .unwrap_or_else(|e| panic!("PUT: {e}"));
    }

    /// A create-only PUT of `bytes` at `key`, as ferry sends one.
    pub fn put_create_only(&self, key: &str, bytes: &[u8]) -> CreateOnly {
        let (client, key, body) = (self.client(), Key::from(key), bytes.to_vec());
        let options = PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let put =
            on_own_runtime(
                async move { client.put_opts(&key, PutPayload::from(body), options).await },
            );
        match put {
            Ok(_) => CreateOnly::Overwritten,
            Err(object_store::Error::AlreadyExists { .. }) => CreateOnly::Refused,
            Err(e) => panic!("create-only PUT: {e}"),
        }
    }

    /// The status and `Content-Type` a multi-range GET of `key` gets from
    /// the engine itself (curl's SigV4 signing), for the record.
    pub fn multi_range_answer(&self, key: &str, ranges: &str) -> String {
        let out = std::process::Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}"])
            .arg("--aws-sigv4")
            .arg(format!("aws:amz:{}:s3", self.region))
            .arg("--user")
            .arg(format!("{}:{}", self.access_key, self.secret_key))
            .args(["-H", &format!("Range: {ranges}")])
            .args([
                "-H",
                "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            ])
            .arg(format!("{}/{}/{key}", self.endpoint, self.bucket))
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// Runs `work` to completion on a runtime of its own, on a thread of its own.
fn on_own_runtime<T: Send>(work: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime")
                    .block_on(work)
            })
            .join()
            .expect("S3 call")
    })
}
